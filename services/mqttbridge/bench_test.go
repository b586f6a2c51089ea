// SPDX-License-Identifier: Apache-2.0

package mqttbridge

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/wirefleet/wirefleet/services/mqttbridge/mosquittotest"
)

// BenchmarkThroughput measures messages per second from one publisher to
// one subscriber through Mosquitto, both connected directly ("direct")
// or both through the bridge ("bridge", plain and TLS upstream): QoS 1,
// 64-byte payloads, up to 64 messages in flight end to end. The
// ratios bridge/direct and bridge-tls/direct-tls are the bridge's cost
// (in bridge-tls only the bridge's broker connections use TLS: devices
// reach the bridge through their tunnel). Mosquitto runs in its own
// process; cpu-µs/msg is this process's CPU per message, so its increase
// from direct to bridge is the bridge's own CPU cost.
func BenchmarkThroughput(b *testing.B) {
	broker := mosquittotest.Start(b, mosquittotest.Options{Users: map[string]string{platformUser: platformPass}})
	up := func(tls bool) Upstream {
		u := Upstream{Addr: broker.Addr, Username: platformUser, Password: platformPass,
			ClientID: "{simId}", TopicTemplate: "{group}/{topic}", Logger: discardLog}
		if tls {
			u.Addr, u.TLS = broker.TLSAddr, broker.ClientTLS()
		}
		return u
	}
	for _, mode := range []string{"direct", "bridge", "direct-tls", "bridge-tls"} {
		b.Run(mode, func(b *testing.B) {
			pubAddr, subAddr, topic, subTopic := broker.Addr, broker.Addr, "bench/"+mode+"/t", "bench/"+mode+"/t"
			creds := func(id string) func(*packets.Packet) {
				return func(pk *packets.Packet) {
					pk.Connect.ClientIdentifier = id
					pk.Connect.Username, pk.Connect.Password = []byte(platformUser), []byte(platformPass)
				}
			}
			dial := func(addr string) *rawClient { return dialRaw(b, addr, 4) }
			if mode == "direct-tls" {
				pubAddr, subAddr = broker.TLSAddr, broker.TLSAddr
				dial = func(addr string) *rawClient { return dialRawTLS(b, addr, broker.ClientTLS()) }
			}
			if mode == "bridge" || mode == "bridge-tls" {
				// Two devices of one group share the group's namespace.
				u := up(mode == "bridge-tls")
				pubAddr = startBridge(b, u, Identity{SIMID: mode + "-pub", IMSI: "1", GroupName: "bench"}).Addr
				subAddr = startBridge(b, u, Identity{SIMID: mode + "-sub", IMSI: "2", GroupName: "bench"}).Addr
				topic, subTopic = mode+"/t", mode+"/t"
			}
			sub := dial(subAddr)
			if ack := sub.connect(60, creds(mode+"-direct-sub")); ack.ReasonCode != 0 {
				b.Fatalf("CONNACK 0x%02x", ack.ReasonCode)
			}
			sub.send(subscribe(1, subTopic))
			if ack, err := sub.recv(10 * time.Second); err != nil || ack.FixedHeader.Type != packets.Suback {
				b.Fatalf("SUBACK: %+v %v", ack, err)
			}
			pub := dial(pubAddr)
			if ack := pub.connect(60, creds(mode+"-direct-pub")); ack.ReasonCode != 0 {
				b.Fatalf("CONNACK 0x%02x", ack.ReasonCode)
			}
			payload := bytes.Repeat([]byte("x"), 64)

			b.ResetTimer()
			start, cpuStart := time.Now(), processCPU()
			// The window is end to end: a slot frees when the subscriber
			// has the message, so the broker's queue for the subscriber
			// (1000 messages by default, then it drops) never fills.
			window := make(chan struct{}, 64)
			pubErr := make(chan error, 2)
			go func() { // PUBACKs, drained
				for range b.N {
					pk, err := pub.recv(30 * time.Second)
					if err != nil || pk.FixedHeader.Type != packets.Puback {
						pubErr <- fmt.Errorf("publisher: %+v %v", pk, err)
						return
					}
				}
				pubErr <- nil
			}()
			go func() {
				var buf bytes.Buffer
				for i := range b.N {
					window <- struct{}{}
					buf.Reset()
					pk := &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: 4,
						TopicName: topic, PacketID: uint16(i%60000 + 1), Payload: payload}
					encodePacket(&buf, pk)
					if _, err := pub.c.Write(buf.Bytes()); err != nil {
						pubErr <- err
						return
					}
				}
			}()
			var ackBuf bytes.Buffer
			for i := range b.N {
				pk, err := sub.recv(30 * time.Second)
				if err != nil || pk.FixedHeader.Type != packets.Publish {
					b.Fatalf("subscriber, message %d of %d: %+v %v", i, b.N, pk, err)
				}
				<-window
				ackBuf.Reset()
				encodePacket(&ackBuf, &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, ProtocolVersion: 4, PacketID: pk.PacketID})
				sub.c.Write(ackBuf.Bytes())
			}
			elapsed := time.Since(start)
			if err := <-pubErr; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
			// CPU of this process (the clients, plus the bridge in the
			// bridge modes) per message: bridge minus direct is what
			// the bridge spends on one message.
			b.ReportMetric(float64((processCPU()-cpuStart).Microseconds())/float64(b.N), "cpu-µs/msg")
		})
	}
}

func dialRawTLS(t testing.TB, addr string, cfg *tls.Config) *rawClient {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, c: c, r: bufio.NewReader(c), v: 4}
}

// processCPU is the user and system CPU time this process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
