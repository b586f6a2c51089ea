// SPDX-License-Identifier: Apache-2.0

package mqttbridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/wirefleet/wirefleet/services/mqttbridge/mosquittotest"
)

// observer connects straight to the broker (not through the bridge) as
// the observer account, and subscribes to filter.
func observer(t *testing.T, b *mosquittotest.Broker, v byte, filter string) *rawClient {
	t.Helper()
	rc := dialRaw(t, b.Addr, v)
	ack := rc.connect(60, func(pk *packets.Packet) {
		pk.Connect.ClientIdentifier = fmt.Sprintf("observer-%d", time.Now().UnixNano())
		pk.Connect.Username, pk.Connect.Password = []byte(observerUser), []byte(observerPass)
	})
	if ack.ReasonCode != 0 {
		t.Fatalf("observer CONNACK 0x%02x", ack.ReasonCode)
	}
	rc.send(subscribe(1, filter))
	if sa, err := rc.recv(10 * time.Second); err != nil || sa.FixedHeader.Type != packets.Suback || sa.ReasonCodes[0] >= 0x80 {
		t.Fatalf("observer SUBACK: %+v %v", sa, err)
	}
	return rc
}

// expectPublish reads the next PUBLISH (acknowledging QoS 1).
func (rc *rawClient) expectPublish(within time.Duration) *packets.Packet {
	rc.t.Helper()
	pk, err := rc.recv(within)
	if err != nil || pk.FixedHeader.Type != packets.Publish {
		rc.t.Fatalf("want PUBLISH, got %+v %v", pk, err)
	}
	if pk.FixedHeader.Qos == 1 {
		rc.send(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
	}
	return pk
}

func TestUnsupportedProtocolVersion(t *testing.T) {
	mosquittotest.Need(t, "mosquitto_pub")
	br := startBridge(t, Upstream{Addr: "127.0.0.1:1"}, testIdentity)
	_, errOut, err := client(t, 20*time.Second, "mosquitto_pub", "-h", "127.0.0.1", "-p", br.Port, "-V", "mqttv31", "-t", "x", "-m", "y")
	if err == nil || !strings.Contains(strings.ToLower(errOut), "unacceptable protocol version") {
		t.Errorf("MQTT 3.1 device: %v\n%s", err, errOut)
	}
	if err := br.nextEnd(t, 10*time.Second); !errors.Is(err, ErrUnsupportedVersion) {
		t.Errorf("Serve returned %v", err)
	}
}

// A connection that does not start with CONNECT, or sends nothing, is
// closed.
func TestNoConnect(t *testing.T) {
	old := connectWait
	connectWait = time.Second
	t.Cleanup(func() { connectWait = old })
	br := startBridge(t, Upstream{Addr: "127.0.0.1:1"}, testIdentity)

	rc := dialRaw(t, br.Addr, 4)
	rc.send(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	rc.expectClosed(10 * time.Second)
	if err := br.nextEnd(t, 10*time.Second); err == nil || !strings.Contains(err.Error(), "before CONNECT") {
		t.Errorf("Serve returned %v", err)
	}

	rc = dialRaw(t, br.Addr, 4)
	if d := rc.expectClosed(20 * time.Second); d < 900*time.Millisecond {
		t.Errorf("silent connection closed after %v, before the 1 s CONNECT wait", d)
	}
	br.nextEnd(t, 10*time.Second)
	if n := br.Stats.Refused.Load(); n != 0 {
		t.Errorf("Stats.Refused = %d for connections that never sent CONNECT", n)
	}
}

// A device identity that cannot be templated safely is refused with a
// CONNACK, not bridged.
func TestBadIdentityRefused(t *testing.T) {
	for _, id := range []Identity{{IMSI: "1/2", SIMID: "s"}, {IMSI: "", SIMID: "s"}, {IMSI: "+", SIMID: "s"}} {
		br := startBridge(t, Upstream{Addr: "127.0.0.1:1", TopicTemplate: "devices/{imsi}/{topic}"}, id)
		for _, v := range []byte{4, 5} {
			rc := dialRaw(t, br.Addr, v)
			want := byte(v3ServerUnavailable)
			if v == 5 {
				want = v5ServerUnavailable
			}
			if ack := rc.connect(30, nil); ack.ReasonCode != want {
				t.Errorf("IMSI %q v%d: CONNACK 0x%02x, want 0x%02x", id.IMSI, v, ack.ReasonCode, want)
			}
			rc.expectClosed(10 * time.Second)
			br.nextEnd(t, 10*time.Second)
		}
	}
}

func TestUpstreamValidate(t *testing.T) {
	good := Upstream{Addr: "broker:8883", TopicTemplate: "devices/{imsi}/{topic}", ClientID: "wf-{simId}", Username: "u", Password: "p"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Upstream{
		{Addr: "broker"},
		{Addr: "broker:1883", TopicTemplate: "devices/{imsi}"},
		{Addr: "broker:1883", ClientID: "{serial}"},
		{Addr: "broker:1883", Password: "p"},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// Packets over the size limit end the session with a clear failure: a v5
// device gets DISCONNECT 0x95 (and learned the limit from CONNACK's
// Maximum Packet Size), a 3.1.1 device is closed. Nothing of it reaches
// the broker.
func TestPacketTooLarge(t *testing.T) {
	b := startBroker(t)
	up := platformTLS(b)
	up.MaxPacketSize = 64 << 10
	br := startBridge(t, up, testIdentity)
	for _, v := range []byte{4, 5} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			rc := dialRaw(t, br.Addr, v)
			ack := rc.connect(30, nil)
			if ack.ReasonCode != 0 {
				t.Fatalf("CONNACK 0x%02x", ack.ReasonCode)
			}
			if v == 5 && ack.Properties.MaximumPacketSize != 64<<10 {
				t.Errorf("CONNACK Maximum Packet Size %d, want %d", ack.Properties.MaximumPacketSize, 64<<10)
			}
			rc.send(publish("big", 0, 0, strings.Repeat("x", 64<<10)))
			if v == 5 {
				d, err := rc.recv(10 * time.Second)
				if err != nil || d.FixedHeader.Type != packets.Disconnect || d.ReasonCode != v5PacketTooLarge {
					t.Fatalf("want DISCONNECT 0x95, got %+v %v", d, err)
				}
			}
			rc.expectClosed(10 * time.Second)
			if err := br.nextEnd(t, 10*time.Second); !errors.Is(err, ErrPacketTooLarge) {
				t.Errorf("Serve returned %v", err)
			}
		})
	}
	if strings.Contains(b.Log(), "'devices/"+deviceIMSI+"/big'") {
		t.Errorf("the oversize publish reached the broker")
	}
}

// A publish to a topic the bridge refuses is answered visibly: v5 with a
// PUBACK/PUBREC 0x90 (QoS 1/2, the session goes on) or DISCONNECT (QoS
// 0, or a protocol violation); 3.1.1, which has no failure acks, by
// closing.
func TestPublishRefused(t *testing.T) {
	b := startBroker(t)
	br := startBridge(t, platformTLS(b), testIdentity)

	rc := dialRaw(t, br.Addr, 5)
	if ack := rc.connect(30, nil); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK 0x%02x", ack.ReasonCode)
	}
	rc.send(publish("$SYS/x", 1, 1, "no"))
	if a, err := rc.recv(10 * time.Second); err != nil || a.FixedHeader.Type != packets.Puback || a.ReasonCode != v5TopicInvalid || a.Properties.ReasonString == "" {
		t.Fatalf("want PUBACK 0x90 with a reason, got %+v %v", a, err)
	}
	rc.send(publish("../other/x", 2, 2, "no"))
	if a, err := rc.recv(10 * time.Second); err != nil || a.FixedHeader.Type != packets.Pubrec || a.ReasonCode != v5TopicInvalid {
		t.Fatalf("want PUBREC 0x90, got %+v %v", a, err)
	}
	// Still usable.
	rc.send(publish("ok", 1, 3, "yes"))
	if a, err := rc.recv(10 * time.Second); err != nil || a.FixedHeader.Type != packets.Puback || a.PacketID != 3 || a.ReasonCode >= 0x80 {
		t.Fatalf("want PUBACK 3, got %+v %v", a, err)
	}
	rc.send(publish("$SYS/y", 0, 0, "no"))
	if d, err := rc.recv(10 * time.Second); err != nil || d.FixedHeader.Type != packets.Disconnect || d.ReasonCode != v5TopicInvalid {
		t.Fatalf("want DISCONNECT 0x90, got %+v %v", d, err)
	}
	rc.expectClosed(10 * time.Second)
	br.nextEnd(t, 10*time.Second)

	rc = dialRaw(t, br.Addr, 5)
	rc.connect(30, nil)
	rc.send(publish("a/+", 1, 1, "no"))
	if d, err := rc.recv(10 * time.Second); err != nil || d.FixedHeader.Type != packets.Disconnect || d.ReasonCode != v5ProtocolError {
		t.Fatalf("wildcard in a topic name: want DISCONNECT 0x82, got %+v %v", d, err)
	}
	br.nextEnd(t, 10*time.Second)

	rc = dialRaw(t, br.Addr, 5)
	rc.connect(30, nil)
	pk := publish("t", 0, 0, "aliased")
	pk.Properties.TopicAlias, pk.Properties.TopicAliasFlag = 1, true
	rc.send(pk)
	if d, err := rc.recv(10 * time.Second); err != nil || d.FixedHeader.Type != packets.Disconnect || d.ReasonCode != v5TopicAliasInvalid {
		t.Fatalf("topic alias: want DISCONNECT 0x94, got %+v %v", d, err)
	}
	br.nextEnd(t, 10*time.Second)

	rc = dialRaw(t, br.Addr, 4)
	rc.connect(30, nil)
	rc.send(publish("$SYS/x", 1, 1, "no"))
	rc.expectClosed(10 * time.Second)
	if err := br.nextEnd(t, 10*time.Second); err == nil || !strings.Contains(err.Error(), "$SYS/x") {
		t.Errorf("Serve returned %v", err)
	}
	if strings.Contains(b.Log(), "$SYS/x") || strings.Contains(b.Log(), "other/x") {
		t.Errorf("a refused topic reached the broker:\n%s", b.Log())
	}
}

// The device's will is kept, on the rewritten topic: when the device
// vanishes, the broker publishes it; a will on a refused topic refuses
// the connection.
func TestWillIsRewritten(t *testing.T) {
	b := startBroker(t)
	br := startBridge(t, platformTLS(b), testIdentity)
	for _, v := range []byte{4, 5} {
		obs := observer(t, b, v, "devices/#")
		rc := dialRaw(t, br.Addr, v)
		ack := rc.connect(30, func(pk *packets.Packet) {
			pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillPayload, pk.Connect.WillQos = true, "status", []byte("offline"), 1
		})
		if ack.ReasonCode != 0 {
			t.Fatalf("v%d: CONNACK 0x%02x", v, ack.ReasonCode)
		}
		rc.c.Close() // vanish, without DISCONNECT
		w := obs.expectPublish(20 * time.Second)
		if w.TopicName != "devices/"+deviceIMSI+"/status" || string(w.Payload) != "offline" {
			t.Errorf("v%d: will arrived as %q %q", v, w.TopicName, w.Payload)
		}
		br.nextEnd(t, 10*time.Second)

		rc = dialRaw(t, br.Addr, v)
		ack = rc.connect(30, func(pk *packets.Packet) {
			pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillPayload = true, "$SYS/status", []byte("x")
		})
		want := byte(v3NotAuthorized)
		if v == 5 {
			want = v5TopicInvalid
		}
		if ack.ReasonCode != want {
			t.Errorf("v%d: will on $SYS/status: CONNACK 0x%02x, want 0x%02x", v, ack.ReasonCode, want)
		}
		br.nextEnd(t, 10*time.Second)
	}
}

// Retained messages work through the bridge both ways: a device's
// retained publish is kept by the broker and served to a later
// subscription of the device.
func TestRetained(t *testing.T) {
	mosquittotest.Need(t, "mosquitto_pub", "mosquitto_sub")
	b := startBroker(t)
	br := startBridge(t, platformTLS(b), testIdentity)
	if _, errOut, err := client(t, 20*time.Second, "mosquitto_pub", "-h", "127.0.0.1", "-p", br.Port, "-r", "-q", "1", "-t", "config/rate", "-m", "5s"); err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	out, errOut, err := client(t, 20*time.Second, "mosquitto_sub", "-h", "127.0.0.1", "-p", br.Port, "-t", "config/#", "-v", "-C", "1", "-W", "10")
	if err != nil || out != "config/rate 5s\n" {
		t.Errorf("retained message: %q %v\n%s", out, err, errOut)
	}
}

// With the identity after the topic ("{topic}/{imsi}"), publishes get it
// appended; "+" works in filters, "#" cannot and is refused.
func TestSuffixTemplate(t *testing.T) {
	b := startBroker(t)
	up := Upstream{Addr: b.Addr, Username: platformUser, Password: platformPass, TopicTemplate: "devices/{topic}/{imsi}"}
	br := startBridge(t, up, testIdentity)
	for _, v := range []byte{4, 5} {
		obs := observer(t, b, 5, "devices/#")
		rc := dialRaw(t, br.Addr, v)
		if ack := rc.connect(30, nil); ack.ReasonCode != 0 {
			t.Fatalf("CONNACK 0x%02x", ack.ReasonCode)
		}
		rc.send(publish("temp/out", 1, 1, "20"))
		if a, err := rc.recv(10 * time.Second); err != nil || a.FixedHeader.Type != packets.Puback {
			t.Fatalf("want PUBACK, got %+v %v", a, err)
		}
		if p := obs.expectPublish(10 * time.Second); p.TopicName != "devices/temp/out/"+deviceIMSI {
			t.Errorf("broker saw %q", p.TopicName)
		}
		rc.send(subscribe(2, "#", "cmd/+"))
		a, err := rc.recv(10 * time.Second)
		wantFail := byte(v3SubFailure)
		if v == 5 {
			wantFail = v5WildcardUnsupported
		}
		if err != nil || a.FixedHeader.Type != packets.Suback || string(a.ReasonCodes) != string([]byte{wantFail, 1}) {
			t.Fatalf("want SUBACK [%02x 01], got %+v %v", wantFail, a, err)
		}
		for _, tp := range []string{"devices/cmd/x/" + otherIMSI, "devices/cmd/x/" + deviceIMSI} {
			obs.send(publish(tp, 1, 9, "go"))
			if a, err := obs.recv(10 * time.Second); err != nil || a.FixedHeader.Type != packets.Puback {
				// The observer's own subscription may deliver first.
				if a == nil || a.FixedHeader.Type != packets.Publish {
					t.Fatalf("observer: %+v %v", a, err)
				}
			}
		}
		if p := rc.expectPublish(10 * time.Second); p.TopicName != "cmd/x" {
			t.Errorf("device received %q, want cmd/x", p.TopicName)
		}
		if p, err := rc.recv(time.Second); err == nil {
			t.Errorf("device received %s %q", packetName(p.FixedHeader.Type), p.TopicName)
		}
	}
}

// v5 extras pass through: user properties, and the response topic
// rewritten into the device's namespace and back.
func TestV5Properties(t *testing.T) {
	b := startBroker(t)
	br := startBridge(t, platformTLS(b), testIdentity)
	obs := observer(t, b, 5, "devices/#")
	rc := dialRaw(t, br.Addr, 5)
	if ack := rc.connect(30, nil); ack.ReasonCode != 0 || ack.Properties.TopicAliasMaximum != 0 || !ack.Properties.SharedSubAvailableFlag {
		t.Fatalf("CONNACK %+v", ack)
	}
	rc.send(subscribe(1, "reply/#"))
	rc.recv(10 * time.Second)
	pk := publish("req", 1, 2, "ping")
	pk.Properties.ResponseTopic = "reply/1"
	pk.Properties.CorrelationData = []byte("c1")
	pk.Properties.User = []packets.UserProperty{{Key: "k", Val: "v"}}
	rc.send(pk)
	rc.recv(10 * time.Second) // PUBACK
	got := obs.expectPublish(10 * time.Second)
	if got.Properties.ResponseTopic != "devices/"+deviceIMSI+"/reply/1" || string(got.Properties.CorrelationData) != "c1" ||
		len(got.Properties.User) != 1 || got.Properties.User[0] != (packets.UserProperty{Key: "k", Val: "v"}) {
		t.Fatalf("broker saw properties %+v", got.Properties)
	}
	// The service answers on the response topic, naming its own.
	ans := publish(got.Properties.ResponseTopic, 1, 3, "pong")
	ans.Properties.ResponseTopic = "devices/" + deviceIMSI + "/req"
	ans.Properties.CorrelationData = got.Properties.CorrelationData
	obs.send(ans)
	r := rc.expectPublish(10 * time.Second)
	if r.TopicName != "reply/1" || string(r.Payload) != "pong" || r.Properties.ResponseTopic != "req" || string(r.Properties.CorrelationData) != "c1" {
		t.Errorf("device received %q %q %+v", r.TopicName, r.Payload, r.Properties)
	}
}

// The broker going away mid-session is visible: a v5 device gets a
// DISCONNECT with a reason, a 3.1.1 device is closed.
func TestBrokerGoesAway(t *testing.T) {
	b := startBroker(t)
	br := startBridge(t, platformTLS(b), testIdentity)
	rc5, rc4 := dialRaw(t, br.Addr, 5), dialRaw(t, br.Addr, 4)
	rc5.connect(30, nil)
	rc4.connect(30, nil)
	b.Stop()
	d, err := rc5.recv(20 * time.Second)
	if err != nil || d.FixedHeader.Type != packets.Disconnect || d.ReasonCode < 0x80 {
		t.Fatalf("v5: want DISCONNECT failure, got %+v %v", d, err)
	}
	rc5.expectClosed(10 * time.Second)
	rc4.expectClosed(20 * time.Second)
	for range 2 {
		if err := br.nextEnd(t, 10*time.Second); !errors.Is(err, ErrBrokerUnavailable) {
			t.Errorf("Serve returned %v", err)
		}
	}
}

// Ending ctx (the gateway shutting down) tells a v5 device why.
func TestShutdown(t *testing.T) {
	b := startBroker(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		up := platformTLS(b)
		up.Logger = discardLog
		done <- Serve(ctx, c, testIdentity, up)
	}()
	rc := dialRaw(t, l.Addr().String(), 5)
	rc.connect(30, nil)
	cancel()
	d, err := rc.recv(10 * time.Second)
	if err != nil || d.FixedHeader.Type != packets.Disconnect || d.ReasonCode != v5ServerShutdown {
		t.Fatalf("want DISCONNECT 0x8B, got %+v %v", d, err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Serve returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
}

// Protocol violations end a v5 session with the matching DISCONNECT.
func TestProtocolViolations(t *testing.T) {
	b := startBroker(t)
	br := startBridge(t, platformTLS(b), testIdentity)
	for _, tc := range []struct {
		name string
		raw  []byte
		code byte
	}{
		{"AUTH", []byte{0xF0, 0x00}, v5ProtocolError},
		{"second CONNECT", nil, v5ProtocolError},
		{"PUBLISH QoS 3", []byte{0x36, 0x03, 0, 1, 'a'}, v5Malformed},
		{"SUBACK from a device", []byte{0x90, 0x03, 0, 1, 0}, v5ProtocolError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, br.Addr, 5)
			rc.connect(30, nil)
			if tc.raw == nil {
				rc.send(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: "x"}})
			} else {
				rc.c.Write(tc.raw)
			}
			if d, err := rc.recv(10 * time.Second); err != nil || d.FixedHeader.Type != packets.Disconnect || d.ReasonCode != tc.code {
				t.Fatalf("want DISCONNECT 0x%02x, got %+v %v", tc.code, d, err)
			}
			rc.expectClosed(10 * time.Second)
			br.nextEnd(t, 10*time.Second)
		})
	}
}

// A persistent session (clean session off) survives the device's
// absence: the upstream client id is the same each time, so the broker
// keeps the subscription and queues QoS 1 messages, delivered through the
// bridge when the device is back.
func TestPersistentSession(t *testing.T) {
	b := startBroker(t)
	br := startBridge(t, platformTLS(b), testIdentity)
	persistent := func(pk *packets.Packet) { pk.Connect.Clean = false }
	rc := dialRaw(t, br.Addr, 4)
	if ack := rc.connect(30, persistent); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK 0x%02x", ack.ReasonCode)
	}
	rc.send(subscribe(1, "cmd/#"))
	rc.recv(10 * time.Second)
	rc.send(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	rc.expectClosed(10 * time.Second)
	br.nextEnd(t, 10*time.Second)

	obs := observer(t, b, 4, "none")
	obs.send(publish("devices/"+deviceIMSI+"/cmd/update", 1, 5, "v2"))
	if a, err := obs.recv(10 * time.Second); err != nil || a.FixedHeader.Type != packets.Puback {
		t.Fatalf("observer: %+v %v", a, err)
	}

	rc = dialRaw(t, br.Addr, 4)
	ack := rc.connect(30, persistent)
	if ack.ReasonCode != 0 || !ack.SessionPresent {
		t.Fatalf("CONNACK 0x%02x, session present %v", ack.ReasonCode, ack.SessionPresent)
	}
	if p := rc.expectPublish(10 * time.Second); p.TopicName != "cmd/update" || string(p.Payload) != "v2" {
		t.Errorf("queued message arrived as %q %q", p.TopicName, p.Payload)
	}
}

// Enhanced authentication is refused (the tunnel authenticates the
// device), and a broker that is down is reported without its address.
func TestConnectRefusalReasons(t *testing.T) {
	br := startBridge(t, Upstream{Addr: "127.0.0.1:1", DialTimeout: 2 * time.Second}, testIdentity)
	rc := dialRaw(t, br.Addr, 5)
	ack := rc.connect(30, func(pk *packets.Packet) { pk.Properties.AuthenticationMethod = "SCRAM-SHA-1" })
	if ack.ReasonCode != v5BadAuthMethod {
		t.Errorf("enhanced auth: CONNACK 0x%02x, want 0x8C", ack.ReasonCode)
	}
	br.nextEnd(t, 10*time.Second)
	rc = dialRaw(t, br.Addr, 5)
	ack = rc.connect(30, nil)
	if ack.ReasonCode != v5ServerUnavailable || ack.Properties.ReasonString != "broker unavailable" {
		t.Errorf("broker down: CONNACK 0x%02x %q", ack.ReasonCode, ack.Properties.ReasonString)
	}
	br.nextEnd(t, 10*time.Second)
}

// "#" under a prefix also matches the prefix's own level
// (devices/<imsi>/# matches devices/<imsi>), which has no device topic:
// such messages are acknowledged to the broker by the bridge — QoS 1 and
// the whole QoS 2 exchange — and not delivered.
func TestUndeliverableAcknowledged(t *testing.T) {
	b := startBroker(t)
	br := startBridge(t, platformTLS(b), testIdentity)
	rc := dialRaw(t, br.Addr, 4)
	rc.connect(30, nil)
	sub := subscribe(1, "#")
	sub.Filters[0].Qos = 2
	rc.send(sub)
	rc.recv(10 * time.Second)
	obs := observer(t, b, 4, "none")
	// The observer completes its own QoS 1 and 2 exchanges, one at a time.
	expect := func(typ byte) {
		t.Helper()
		if a, err := obs.recv(10 * time.Second); err != nil || a.FixedHeader.Type != typ {
			t.Fatalf("observer: want %s, got %+v %v", packetName(typ), a, err)
		}
	}
	obs.send(publish("devices/"+deviceIMSI, 1, 10, "no topic for the device"))
	expect(packets.Puback)
	obs.send(publish("devices/"+deviceIMSI, 2, 11, "no topic for the device"))
	expect(packets.Pubrec)
	obs.send(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: 11})
	expect(packets.Pubcomp)
	obs.send(publish("devices/"+deviceIMSI+"/ok", 1, 20, "fine"))
	if p := rc.expectPublish(10 * time.Second); p.TopicName != "ok" {
		t.Fatalf("device received %q", p.TopicName)
	}
	waitLog(t, b, "Received PUBCOMP from "+deviceIMSI)
	waitLog(t, b, "Received PUBACK from "+deviceIMSI)
	if n := br.Stats.Undeliverable.Load(); n != 2 {
		t.Errorf("Undeliverable = %d, want 2", n)
	}
	if n := br.Stats.ToDevice.Load(); n != 1 {
		t.Errorf("ToDevice = %d, want 1", n)
	}
}

// Two connections of one device share its upstream client id: the
// second takes the session over, and the first learns it has ended (a v5
// broker's DISCONNECT 0x8E is relayed as is; Mosquitto 2.0.11 just
// closes the connection, which reaches a v5 device as DISCONNECT 0x80).
func TestSecondConnectionTakesOver(t *testing.T) {
	b := startBroker(t)
	br := startBridge(t, platformTLS(b), testIdentity)
	first := dialRaw(t, br.Addr, 5)
	first.connect(30, nil)
	second := dialRaw(t, br.Addr, 5)
	if ack := second.connect(30, nil); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK 0x%02x", ack.ReasonCode)
	}
	d, err := first.recv(10 * time.Second)
	if err != nil || d.FixedHeader.Type != packets.Disconnect || d.ReasonCode < 0x80 {
		t.Fatalf("first connection: want a failure DISCONNECT, got %+v %v", d, err)
	}
	first.expectClosed(10 * time.Second)
	if err := br.nextEnd(t, 10*time.Second); !errors.Is(err, ErrBrokerUnavailable) {
		t.Errorf("Serve returned %v", err)
	}
	second.send(publish("still", 1, 1, "ok"))
	if a, err := second.recv(10 * time.Second); err != nil || a.FixedHeader.Type != packets.Puback {
		t.Errorf("second connection: %+v %v", a, err)
	}
}

// A v5 device asking for no problem information (Request Problem
// Information 0) gets its refusals without reason strings.
func TestRequestProblemInfo(t *testing.T) {
	b := startBroker(t)
	br := startBridge(t, platformTLS(b), testIdentity)
	for _, want := range []bool{true, false} {
		rc := dialRaw(t, br.Addr, 5)
		rc.connect(30, func(pk *packets.Packet) {
			if !want {
				pk.Properties.RequestProblemInfo, pk.Properties.RequestProblemInfoFlag = 0, true
			}
		})
		rc.send(subscribe(1, "$SYS/#"))
		a, err := rc.recv(10 * time.Second)
		if err != nil || a.FixedHeader.Type != packets.Suback || a.ReasonCodes[0] != v5FilterInvalid {
			t.Fatalf("want SUBACK 0x8F, got %+v %v", a, err)
		}
		if got := a.Properties.ReasonString != ""; got != want {
			t.Errorf("problem information requested %v: reason string %q", want, a.Properties.ReasonString)
		}
	}
}

// A v5 broker imposing a shorter keepalive (Mosquitto's max_keepalive,
// sent as Server Keep Alive) is honoured by the bridge's own pings, while
// the device keeps the keepalive it asked for.
func TestServerKeepAlive(t *testing.T) {
	t.Parallel() // mostly waiting
	// 10 s is the least Mosquitto accepts.
	b := mosquittotest.Start(t, mosquittotest.Options{Users: map[string]string{platformUser: platformPass}, MaxKeepalive: 10})
	br := startBridge(t, Upstream{Addr: b.Addr, Username: platformUser, Password: platformPass, TopicTemplate: "d/{imsi}/{topic}"}, testIdentity)
	rc := dialRaw(t, br.Addr, 5)
	ack := rc.connect(60, nil)
	if ack.ReasonCode != 0 || ack.Properties.ServerKeepAliveFlag {
		t.Fatalf("CONNACK 0x%02x, server keepalive passed to the device: %v", ack.ReasonCode, ack.Properties.ServerKeepAliveFlag)
	}
	// 24 s of device silence: well past Mosquitto's 1.5 × 10 s limit
	// (which it checks coarsely: a silent client is dropped after 15–18 s).
	time.Sleep(24 * time.Second)
	rc.send(publish("alive", 1, 1, "yes"))
	if a, err := rc.recv(10 * time.Second); err != nil || a.FixedHeader.Type != packets.Puback {
		t.Fatalf("want PUBACK, got %+v %v", a, err)
	}
	if strings.Contains(b.Log(), "exceeded timeout") {
		t.Errorf("the broker timed the bridge out:\n%s", b.Log())
	}
}
