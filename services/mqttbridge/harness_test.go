// SPDX-License-Identifier: Apache-2.0

package mqttbridge

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/wirefleet/wirefleet/services/mqttbridge/mosquittotest"
)

// The platform's account on the test broker; devices never hold it.
const (
	platformUser = "platform"
	platformPass = "pl4tform-s3cret"
	observerUser = "observer"
	observerPass = "obs3rver"
	deviceIMSI   = "999990000000001"
	otherIMSI    = "999990000000002"
)

var testIdentity = Identity{SIMID: "sim-1", IMSI: deviceIMSI, GroupName: "sensors"}

// testACLs let the platform use only devices/# (and never subscribe
// under a "forbidden" level), the observer everything.
var testACLs = map[string][]mosquittotest.ACL{
	platformUser: {
		{Type: "subscribePattern", Topic: "devices/+/forbidden/#", Allow: false, Priority: 10},
		{Type: "subscribePattern", Topic: "devices/#", Allow: true},
		{Type: "publishClientSend", Topic: "devices/#", Allow: true},
		{Type: "publishClientReceive", Topic: "devices/#", Allow: true},
	},
	observerUser: {
		{Type: "subscribePattern", Topic: "#", Allow: true},
		{Type: "publishClientSend", Topic: "#", Allow: true},
		{Type: "publishClientReceive", Topic: "#", Allow: true},
	},
}

func startBroker(t testing.TB) *mosquittotest.Broker {
	t.Helper()
	return mosquittotest.Start(t, mosquittotest.Options{
		Users: map[string]string{platformUser: platformPass, observerUser: observerPass},
		ACLs:  testACLs,
	})
}

// bridge is a loopback listener that runs Serve for each connection, as
// the gateway's forwarder does on the in-tunnel stack.
type bridge struct {
	Addr  string
	Port  string
	Stats *Stats
	ends  chan error
}

func startBridge(t testing.TB, up Upstream, id Identity) *bridge {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if up.Stats == nil {
		up.Stats = new(Stats)
	}
	if up.Logger == nil {
		up.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	b := &bridge{Addr: l.Addr().String(), Stats: up.Stats, ends: make(chan error, 100)}
	_, b.Port, _ = net.SplitHostPort(b.Addr)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := Serve(ctx, c, id, up)
				select {
				case b.ends <- err:
				default:
				}
			}()
		}
	}()
	t.Cleanup(func() { cancel(); l.Close(); wg.Wait() })
	return b
}

// nextEnd waits for the next session to end and returns Serve's error.
func (b *bridge) nextEnd(t *testing.T, within time.Duration) error {
	t.Helper()
	select {
	case err := <-b.ends:
		return err
	case <-time.After(within):
		t.Fatalf("no bridge session ended within %v", within)
		return nil
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// client runs mosquitto_pub or mosquitto_sub to completion (killed by
// PID after timeout).
func client(t *testing.T, timeout time.Duration, prog string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s did not finish within %v: %w", prog, timeout, ctx.Err())
	}
	return o.String(), e.String(), err
}

// bgClient is a mosquitto_sub running in the background.
type bgClient struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startClient(t *testing.T, prog string, args ...string) *bgClient {
	t.Helper()
	c := &bgClient{cmd: exec.Command(prog, args...), out: new(syncBuffer), done: make(chan struct{})}
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			c.cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

// wait waits for the client to exit and returns its output.
func (c *bgClient) wait(t *testing.T, within time.Duration) (string, int) {
	t.Helper()
	select {
	case <-c.done:
		return c.out.String(), c.cmd.ProcessState.ExitCode()
	case <-time.After(within):
		t.Fatalf("%s did not finish within %v; output so far:\n%s", c.cmd.Path, within, c.out.String())
		return "", 0
	}
}

// waitLog waits until the broker's log holds s.
func waitLog(t *testing.T, b *mosquittotest.Broker, s string) {
	t.Helper()
	waitLogN(t, b, s, 1)
}

// waitLogN waits until the broker's log holds s n times.
func waitLogN(t *testing.T, b *mosquittotest.Broker, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(b.Log(), s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("broker log never showed %q:\n%s", s, b.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rawClient is a device written with the packet library, for what the
// command-line clients cannot do (stay silent, send oversize or odd
// packets, read exact codes).
type rawClient struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
	v byte
}

func dialRaw(t testing.TB, addr string, v byte) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, c: c, r: bufio.NewReader(c), v: v}
}

// connect sends a CONNECT (with credentials the broker must never see)
// and returns the CONNACK.
func (rc *rawClient) connect(keepalive uint16, modify func(*packets.Packet)) *packets.Packet {
	rc.t.Helper()
	pk := &packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: rc.v,
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, Keepalive: keepalive, ClientIdentifier: "raw-device",
			UsernameFlag: true, Username: []byte("device-user"), PasswordFlag: true, Password: []byte("device-pass"),
		},
	}
	if modify != nil {
		modify(pk)
	}
	rc.send(pk)
	ack, err := rc.recv(10 * time.Second)
	if err != nil {
		rc.t.Fatalf("no CONNACK: %v", err)
	}
	if ack.FixedHeader.Type != packets.Connack {
		rc.t.Fatalf("got %s, want CONNACK", packetName(ack.FixedHeader.Type))
	}
	return ack
}

func (rc *rawClient) send(pk *packets.Packet) {
	rc.t.Helper()
	pk.ProtocolVersion = rc.v
	var buf bytes.Buffer
	if err := encodePacket(&buf, pk); err != nil {
		rc.t.Fatal(err)
	}
	if _, err := rc.c.Write(buf.Bytes()); err != nil {
		rc.t.Fatal(err)
	}
}

func (rc *rawClient) recv(within time.Duration) (*packets.Packet, error) {
	rc.c.SetReadDeadline(time.Now().Add(within))
	return readPacket(rc.r, rc.v, 1<<20)
}

// expectClosed waits for the bridge to close the connection (EOF) and
// returns how long it took.
func (rc *rawClient) expectClosed(within time.Duration) time.Duration {
	rc.t.Helper()
	start := time.Now()
	rc.c.SetReadDeadline(start.Add(within))
	for {
		_, err := rc.r.ReadByte()
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			return time.Since(start)
		}
		rc.t.Fatalf("connection not closed within %v: %v", within, err)
	}
}

func publish(topic string, qos byte, id uint16, payload string) *packets.Packet {
	return &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, TopicName: topic, PacketID: id, Payload: []byte(payload)}
}

func subscribe(id uint16, filters ...string) *packets.Packet {
	pk := &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: id}
	for _, f := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f, Qos: 1})
	}
	return pk
}
