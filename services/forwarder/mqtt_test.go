// SPDX-License-Identifier: Apache-2.0

package forwarder

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
)

// mosquitto is a real broker on loopback with TLS (the test's CA) and a
// password file; anonymous clients are refused.
type mosquitto struct {
	addr   string
	caFile string
}

const (
	brokerUser     = "fleet-bridge"
	brokerPassword = "broker-password-the-device-never-had"
)

func startMosquitto(t *testing.T, ca testCA) *mosquitto {
	t.Helper()
	for _, tool := range []string{"mosquitto", "mosquitto_passwd", "mosquitto_pub", "mosquitto_sub"} {
		requireTool(t, tool)
	}
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caFile, certFile, keyFile := write("ca.pem", ca.pem), write("server.pem", ca.certPEM), write("server.key", ca.keyPEM)
	pwFile := filepath.Join(dir, "passwd")
	if out, err := exec.Command("mosquitto_passwd", "-b", "-c", pwFile, brokerUser, brokerPassword).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v %s", err, out)
	}
	port := freePort(t)
	conf := write("mosquitto.conf", fmt.Sprintf("listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\nallow_anonymous false\npassword_file %s\nuser root\npersistence false\nlog_dest stderr\n",
		port, caFile, certFile, keyFile, pwFile))
	cmd := exec.Command("mosquitto", "-c", conf)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill() // by PID: only the broker this test started
		cmd.Wait()
		t.Logf("mosquitto:\n%s", out.String())
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto does not listen on %s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &mosquitto{addr: addr, caFile: caFile}
}

// cloud runs a mosquitto client on the cloud side, with the credentials.
func (m *mosquitto) cloud(t *testing.T, tool string, args ...string) *exec.Cmd {
	host, port, _ := net.SplitHostPort(m.addr)
	return exec.Command(tool, append([]string{"-h", host, "-p", port, "--cafile", m.caFile, "-u", brokerUser, "-P", brokerPassword}, args...)...)
}

// A device with no credentials publishes and subscribes through
// 100.127.127.100:1883; a real Mosquitto with TLS and a password receives
// its messages under devices/<IMSI>/… and delivers messages back.
func TestMQTTBridgeEndToEnd(t *testing.T) {
	ca := newTestCA(t)
	broker := startMosquitto(t, ca)
	f := newFixture(t, Config{Timeout: 5 * time.Second})
	g := f.group("mq", fleet.GroupSettings{Forwarders: fleet.Forwarders{MQTT: fleet.MQTTForward{Broker: broker.addr, TLS: true, CAPEM: ca.pem,
		Username: brokerUser, Password: brokerPassword, TopicTemplate: "devices/{imsi}/{topic}"}}})
	dev := f.newDevice(g.ID, nil)
	imsi := dev.sim.IMSI

	// Cloud side: wait for one message under the device's topic.
	sub := broker.cloud(t, "mosquitto_sub", "-t", "devices/#", "-v", "-C", "1", "-W", "30")
	var subOut bytes.Buffer
	sub.Stdout, sub.Stderr = &subOut, &subOut
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Process.Kill(); sub.Wait() })
	time.Sleep(time.Second) // let the subscription settle

	if out, err := dev.ns.Exec("mosquitto_pub", "-h", "100.127.127.100", "-p", "1883", "-t", "telemetry", "-m", "hello", "-q", "1",
		"-u", "device-user", "-P", "device-password"); err != nil { // dropped: the bridge uses the platform's
		t.Fatalf("device mosquitto_pub: %v %s", err, out)
	}
	if err := sub.Wait(); err != nil {
		t.Fatalf("cloud mosquitto_sub: %v %s", err, subOut.String())
	}
	if got := strings.TrimSpace(subOut.String()); got != "devices/"+imsi+"/telemetry hello" {
		t.Fatalf("the broker got %q", got)
	}

	// Broker to device: a retained command under the device's topic.
	if out, err := broker.cloud(t, "mosquitto_pub", "-t", "devices/"+imsi+"/cmd", "-m", "reboot", "-r", "-q", "1").CombinedOutput(); err != nil {
		t.Fatalf("cloud mosquitto_pub: %v %s", err, out)
	}
	out, err := dev.ns.Exec("mosquitto_sub", "-h", "100.127.127.100", "-p", "1883", "-t", "cmd", "-C", "1", "-W", "20", "-v")
	if err != nil || strings.TrimSpace(out) != "cmd reboot" {
		t.Fatalf("device mosquitto_sub: %v %q", err, out)
	}
	if strings.Contains(f.logs.String(), brokerPassword) {
		t.Fatal("the broker password is in the logs")
	}
	if n := f.fwd.mqttStats.Sessions.Load(); n != 2 {
		t.Fatalf("bridge sessions counted: %d, want 2", n)
	}

	// A broker that is down: the device's CONNECT is refused, not hung.
	g2 := f.group("mqdown", fleet.GroupSettings{Forwarders: fleet.Forwarders{MQTT: fleet.MQTTForward{Broker: fmt.Sprintf("127.0.0.1:%d", freePort(t))}}})
	dev2 := f.newDevice(g2.ID, nil)
	out, err = dev2.ns.Exec("mosquitto_pub", "-h", "100.127.127.100", "-p", "1883", "-t", "telemetry", "-m", "x", "-q", "1")
	if err == nil || !strings.Contains(out, "Connection Refused") {
		t.Fatalf("device mosquitto_pub with the broker down: %v %q", err, out)
	}
}
