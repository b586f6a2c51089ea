// SPDX-License-Identifier: Apache-2.0

package mqttbridge

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/wirefleet/wirefleet/services/mqttbridge/mosquittotest"
)

// platformTLS is the usual bridge configuration in these tests: MQTTS to
// the broker as the platform, device topics under devices/<imsi>/.
func platformTLS(b *mosquittotest.Broker) Upstream {
	return Upstream{
		Addr: b.TLSAddr, TLS: b.ClientTLS(),
		Username: platformUser, Password: platformPass,
		TopicTemplate: "devices/{imsi}/{topic}",
		DialTimeout:   5 * time.Second,
	}
}

// observerSub subscribes directly on the broker (as the observer) and
// returns once the broker has acknowledged the subscription.
func observerSub(t *testing.T, b *mosquittotest.Broker, id, filter string, count int) *bgClient {
	t.Helper()
	c := startClient(t, "mosquitto_sub", "-h", "127.0.0.1", "-p", port(b.Addr), "-u", observerUser, "-P", observerPass,
		"-i", id, "-t", filter, "-v", "-C", fmt.Sprint(count), "-W", "30")
	waitLog(t, b, "Sending SUBACK to "+id)
	return c
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// versions are the mosquitto_pub/sub -V values the bridge supports.
var versions = []string{"mqttv311", "mqttv5"}

// A device publishing through the bridge, with credentials of its own
// that the broker does not know, reaches the broker as the platform on
// its rewritten topic; the broker never sees the device's username.
func TestPublishReachesBrokerOnRewrittenTopic(t *testing.T) {
	mosquittotest.Need(t, "mosquitto_pub", "mosquitto_sub")
	b := startBroker(t)
	br := startBridge(t, platformTLS(b), testIdentity)
	for i, v := range versions {
		t.Run(v, func(t *testing.T) {
			obs := observerSub(t, b, fmt.Sprintf("obs-pub-%d", i), "devices/#", 2)
			for _, qos := range []string{"1", "2"} {
				_, errOut, err := client(t, 20*time.Second, "mosquitto_pub", "-h", "127.0.0.1", "-p", br.Port, "-V", v,
					"-u", "device-user", "-P", "wrong-password", "-i", "device-chosen-id",
					"-q", qos, "-t", "telemetry/temp", "-m", "21.5 q"+qos)
				if err != nil {
					t.Fatalf("mosquitto_pub through the bridge: %v\n%s", err, errOut)
				}
			}
			out, code := obs.wait(t, 30*time.Second)
			if code != 0 {
				t.Fatalf("observer exited %d:\n%s", code, out)
			}
			want := "devices/" + deviceIMSI + "/telemetry/temp 21.5 q1\ndevices/" + deviceIMSI + "/telemetry/temp 21.5 q2\n"
			if out != want {
				t.Errorf("broker saw %q, want %q", out, want)
			}
			if err := br.nextEnd(t, 10*time.Second); err != nil {
				t.Errorf("session ended with %v, want nil (DISCONNECT)", err)
			}
		})
	}
	if n := br.Stats.ToBroker.Load(); n != 4 {
		t.Errorf("Stats.ToBroker = %d, want 4", n)
	}
	log := b.Log()
	if strings.Contains(log, "device-user") || strings.Contains(log, "device-chosen-id") {
		t.Errorf("the broker saw the device's own username or client id:\n%s", log)
	}
	if !strings.Contains(log, "as "+deviceIMSI) || !strings.Contains(log, "u'"+platformUser+"'") {
		t.Errorf("the broker did not see the platform's client id and user:\n%s", log)
	}
}

// A device subscribing through the bridge receives what is published on
// its own topics, under the names it used; another device's topic is
// out of reach even with "#".
func TestSubscribeReceivesOwnTopicsOnly(t *testing.T) {
	mosquittotest.Need(t, "mosquitto_pub", "mosquitto_sub")
	b := startBroker(t)
	br := startBridge(t, platformTLS(b), testIdentity)
	for i, v := range versions {
		t.Run(v, func(t *testing.T) {
			cid := fmt.Sprintf("sub-%d", i)
			dev := startClient(t, "mosquitto_sub", "-h", "127.0.0.1", "-p", br.Port, "-V", v, "-i", cid,
				"-t", "#", "-v", "-C", "1", "-W", "30", "-q", "2")
			// The broker sees the filter inside the device's prefix.
			waitLogN(t, b, "Sending SUBACK to "+deviceIMSI, i+1)
			if !strings.Contains(b.Log(), deviceIMSI+" 2 devices/"+deviceIMSI+"/#") {
				t.Fatalf("the broker did not see the filter devices/<imsi>/#:\n%s", b.Log())
			}
			pub := func(topic, msg string) {
				_, errOut, err := client(t, 20*time.Second, "mosquitto_pub", "-h", "127.0.0.1", "-p", port(b.Addr),
					"-u", observerUser, "-P", observerPass, "-q", "2", "-t", topic, "-m", msg)
				if err != nil {
					t.Fatalf("publishing on the broker: %v\n%s", err, errOut)
				}
			}
			pub("devices/"+otherIMSI+"/cmd/reboot", "not for you")
			pub("elsewhere/cmd/reboot", "not for you either")
			pub("devices/"+deviceIMSI+"/cmd/reboot", "now")
			out, code := dev.wait(t, 30*time.Second)
			if code != 0 || out != "cmd/reboot now\n" {
				t.Fatalf("device mosquitto_sub exited %d, output %q, want \"cmd/reboot now\"", code, out)
			}
			if err := br.nextEnd(t, 10*time.Second); err != nil {
				t.Errorf("session ended with %v, want nil (DISCONNECT)", err)
			}
		})
	}
}

// The platform's password being wrong reaches the device as a CONNACK
// refusal (and nothing hangs).
func TestWrongPlatformPasswordRefusesDevice(t *testing.T) {
	mosquittotest.Need(t, "mosquitto_pub")
	b := startBroker(t)
	up := platformTLS(b)
	up.Password = "not-the-password"
	br := startBridge(t, up, testIdentity)
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			start := time.Now()
			_, errOut, err := client(t, 20*time.Second, "mosquitto_pub", "-h", "127.0.0.1", "-p", br.Port, "-V", v,
				"-t", "x", "-m", "y")
			if err == nil {
				t.Fatalf("mosquitto_pub succeeded with the platform's password wrong")
			}
			if e := strings.ToLower(errOut); !strings.Contains(e, "refused") && !strings.Contains(e, "not authori") {
				t.Errorf("device did not see a CONNACK refusal: %v\n%s", err, errOut)
			}
			if d := time.Since(start); d > 15*time.Second {
				t.Errorf("refusal took %v", d)
			}
			var re *RefusedError
			if err := br.nextEnd(t, 10*time.Second); !errors.As(err, &re) {
				t.Errorf("Serve returned %v, want a RefusedError", err)
			}
		})
	}
	if br.Stats.Refused.Load() != 2 || br.Stats.Sessions.Load() != 0 {
		t.Errorf("stats: refused %d sessions %d", br.Stats.Refused.Load(), br.Stats.Sessions.Load())
	}
}

// A broker that is not there gives the device a CONNACK failure
// ("server unavailable") promptly, not a hang; so does one that does
// not answer within the dial timeout.
func TestBrokerDownRefusesDevice(t *testing.T) {
	mosquittotest.Need(t, "mosquitto_pub")
	// A port nothing listens on: taken and released.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := l.Addr().String()
	l.Close()
	// A listener that accepts but never speaks MQTT.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	go func() {
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	for _, tc := range []struct{ name, addr string }{{"refused", closedAddr}, {"silent", mute.Addr().String()}} {
		t.Run(tc.name, func(t *testing.T) {
			br := startBridge(t, Upstream{Addr: tc.addr, Username: platformUser, Password: platformPass, DialTimeout: 2 * time.Second}, testIdentity)
			for _, v := range versions {
				start := time.Now()
				_, errOut, err := client(t, 20*time.Second, "mosquitto_pub", "-h", "127.0.0.1", "-p", br.Port, "-V", v, "-t", "x", "-m", "y")
				if err == nil {
					t.Fatalf("%s: mosquitto_pub succeeded with no broker", v)
				}
				if !strings.Contains(strings.ToLower(errOut), "unavailable") {
					t.Errorf("%s: device did not see 'server unavailable': %v\n%s", v, err, errOut)
				}
				if d := time.Since(start); d > 10*time.Second {
					t.Errorf("%s: refusal took %v", v, d)
				}
				if err := br.nextEnd(t, 10*time.Second); !errors.Is(err, ErrBrokerUnavailable) {
					t.Errorf("%s: Serve returned %v, want ErrBrokerUnavailable", v, err)
				}
			}
		})
	}
}

// The broker's ACL denying a subscription reaches the device as a SUBACK
// failure; so does the bridge refusing a filter itself.
func TestSubackFailureReachesDevice(t *testing.T) {
	mosquittotest.Need(t, "mosquitto_sub")
	b := startBroker(t)
	br := startBridge(t, platformTLS(b), testIdentity)
	for _, v := range versions {
		for _, filter := range []string{"forbidden/#", "$SYS/#"} {
			t.Run(v+" "+filter, func(t *testing.T) {
				// mosquitto_sub reports a refused subscription and
				// disconnects (exit status 0): the message is the check.
				_, errOut, err := client(t, 20*time.Second, "mosquitto_sub", "-h", "127.0.0.1", "-p", br.Port, "-V", v,
					"-t", filter, "-C", "1", "-W", "10")
				if !strings.Contains(errOut, "All subscription requests were denied") {
					t.Errorf("device did not see the subscription denied: %v\n%s", err, errOut)
				}
			})
		}
	}
	// Go-level: mixed filters keep their places in the SUBACK.
	for _, v := range []byte{4, 5} {
		rc := dialRaw(t, br.Addr, v)
		if ack := rc.connect(30, nil); ack.ReasonCode != 0 {
			t.Fatalf("v%d: CONNACK 0x%02x", v, ack.ReasonCode)
		}
		rc.send(subscribe(7, "ok/#", "$SYS/#", "forbidden/x", "a/#/b", "+/ok", "..", "$share/g/x"))
		ack, err := rc.recv(10 * time.Second)
		if err != nil || ack.FixedHeader.Type != packets.Suback || ack.PacketID != 7 {
			t.Fatalf("v%d: want SUBACK 7, got %+v %v", v, ack, err)
		}
		want := []byte{1, 0x80, 0x80, 0x80, 1, 0x80, 0x80}
		if v == 5 {
			want = []byte{1, v5FilterInvalid, 0x87, v5FilterInvalid, 1, v5FilterInvalid, v5SharedUnsupported}
		}
		if string(ack.ReasonCodes) != string(want) {
			t.Errorf("v%d: SUBACK codes % x, want % x", v, ack.ReasonCodes, want)
		}
	}
}

// A device silent for 1.5 × its keepalive is closed (v5: after a
// DISCONNECT 0x8D); one that pings is not; and the bridge keeps the broker
// connection alive on its own meanwhile (the broker's own keepalive would
// otherwise drop it).
func TestKeepalive(t *testing.T) {
	t.Parallel() // mostly waiting
	b := startBroker(t)
	br := startBridge(t, platformTLS(b), testIdentity)
	for _, v := range []byte{4, 5} {
		t.Run(fmt.Sprintf("silent v%d", v), func(t *testing.T) {
			rc := dialRaw(t, br.Addr, v)
			if ack := rc.connect(2, nil); ack.ReasonCode != 0 {
				t.Fatalf("CONNACK 0x%02x", ack.ReasonCode)
			}
			start := time.Now()
			if v == 5 {
				d, err := rc.recv(20 * time.Second)
				if err != nil || d.FixedHeader.Type != packets.Disconnect || d.ReasonCode != v5KeepaliveTimeout {
					t.Fatalf("want DISCONNECT 0x8D, got %+v %v", d, err)
				}
			}
			rc.expectClosed(20 * time.Second)
			if d := time.Since(start); d < 2900*time.Millisecond {
				t.Errorf("closed after %v, before 1.5 × 2 s", d)
			}
			if err := br.nextEnd(t, 10*time.Second); !errors.Is(err, ErrKeepaliveTimeout) {
				t.Errorf("Serve returned %v, want ErrKeepaliveTimeout", err)
			}
		})
	}
	t.Run("pinging", func(t *testing.T) {
		obs := observerSub(t, b, "obs-ka", "devices/#", 1)
		rc := dialRaw(t, br.Addr, 4)
		if ack := rc.connect(2, nil); ack.ReasonCode != 0 {
			t.Fatalf("CONNACK 0x%02x", ack.ReasonCode)
		}
		// 8 s of pings every second: four device keepalives, and past
		// the broker's own 1.5 × 2 s limit for the bridge's connection.
		for range 8 {
			time.Sleep(time.Second)
			rc.send(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
			pk, err := rc.recv(5 * time.Second)
			if err != nil || pk.FixedHeader.Type != packets.Pingresp {
				t.Fatalf("want PINGRESP, got %+v %v", pk, err)
			}
		}
		rc.send(publish("still/here", 1, 1, "yes"))
		if ack, err := rc.recv(10 * time.Second); err != nil || ack.FixedHeader.Type != packets.Puback || ack.PacketID != 1 {
			t.Fatalf("want PUBACK 1, got %+v %v", ack, err)
		}
		if out, _ := obs.wait(t, 20*time.Second); out != "devices/"+deviceIMSI+"/still/here yes\n" {
			t.Errorf("broker saw %q", out)
		}
		if strings.Contains(b.Log(), "exceeded timeout") {
			t.Errorf("the broker timed out a bridge connection:\n%s", b.Log())
		}
	})
}

// Wildcard filters are rewritten inside the device's prefix and the
// broker's topics mapped back: "+/status" receives devices/<imsi>/x/status
// as x/status, and nothing of another device.
func TestWildcardFiltersMapBothWays(t *testing.T) {
	mosquittotest.Need(t, "mosquitto_pub")
	b := startBroker(t)
	br := startBridge(t, platformTLS(b), testIdentity)
	for _, v := range []byte{4, 5} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			rc := dialRaw(t, br.Addr, v)
			if ack := rc.connect(30, nil); ack.ReasonCode != 0 {
				t.Fatalf("CONNACK 0x%02x", ack.ReasonCode)
			}
			rc.send(subscribe(1, "+/status", "cmd/#"))
			if ack, err := rc.recv(10 * time.Second); err != nil || ack.FixedHeader.Type != packets.Suback || string(ack.ReasonCodes) != "\x01\x01" {
				t.Fatalf("want SUBACK 01 01, got %+v %v", ack, err)
			}
			for _, tp := range []string{
				"devices/" + otherIMSI + "/x/status", "devices/" + otherIMSI + "/cmd/a", "x/status",
				"devices/" + deviceIMSI + "/x/status", "devices/" + deviceIMSI + "/cmd/a/b",
			} {
				if _, errOut, err := client(t, 20*time.Second, "mosquitto_pub", "-h", "127.0.0.1", "-p", port(b.Addr),
					"-u", observerUser, "-P", observerPass, "-q", "1", "-t", tp, "-m", tp); err != nil {
					t.Fatalf("publishing on the broker: %v\n%s", err, errOut)
				}
			}
			for _, want := range []string{"x/status", "cmd/a/b"} {
				pk, err := rc.recv(10 * time.Second)
				if err != nil || pk.FixedHeader.Type != packets.Publish {
					t.Fatalf("want PUBLISH %s, got %+v %v", want, pk, err)
				}
				if pk.TopicName != want || string(pk.Payload) != "devices/"+deviceIMSI+"/"+want {
					t.Errorf("got %q %q, want topic %q", pk.TopicName, pk.Payload, want)
				}
				if pk.FixedHeader.Qos == 1 {
					rc.send(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
				}
			}
			if pk, err := rc.recv(time.Second); err == nil {
				t.Errorf("unexpected %s %q", packetName(pk.FixedHeader.Type), pk.TopicName)
			}
		})
	}
}
