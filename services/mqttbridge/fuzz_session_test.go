// SPDX-License-Identifier: Apache-2.0

package mqttbridge

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/wirefleet/wirefleet/services/mqttbridge/mosquittotest"
)

// FuzzDeviceSession runs whole bridge sessions against a real Mosquitto:
// a valid CONNECT, then arbitrary bytes from the device. Every session
// must end (no hang, no panic) once the device goes away, and the broker
// must never receive a PUBLISH or SUBSCRIBE outside the session's
// namespace (its log is checked after every input).
func FuzzDeviceSession(f *testing.F) {
	b := mosquittotest.Start(f, mosquittotest.Options{Users: map[string]string{platformUser: platformPass}})
	for _, v := range []byte{4, 5} {
		seq := [][]*packets.Packet{
			{subscribe(1, "#", "a/+"), publish("a/b", 1, 2, "x"), publish("c", 2, 3, "y"),
				{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: 3},
				{FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe, Qos: 1}, PacketID: 4, Filters: packets.Subscriptions{{Filter: "#"}}},
				{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}}},
			{subscribe(5, "$SYS/#", "..", "+/#"), publish("$x", 0, 0, "z"), publish("../y", 1, 6, "z")},
			{{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}}},
		}
		for _, pks := range seq {
			f.Add(v, encodeAll(f, v, pks))
		}
		f.Add(v, []byte{0x82, 6, 0, 1, 0, 0, 1, 'a'})
	}
	var n atomic.Int64
	logOffset := int64(0)
	f.Fuzz(func(t *testing.T, v byte, data []byte) {
		v = 4 + v%2
		sim := fmt.Sprintf("fz%d-%d", os.Getpid(), n.Add(1))
		up := Upstream{Addr: b.Addr, Username: platformUser, Password: platformPass,
			ClientID: "{simId}", TopicTemplate: "devices/{simId}/{topic}", DialTimeout: 5 * time.Second,
			MaxPacketSize: 8 << 10, Logger: discardLog}
		devSide, bridgeSide := net.Pipe()
		done := make(chan error, 1)
		go func() {
			done <- Serve(context.Background(), bridgeSide, Identity{SIMID: sim, IMSI: "999990000000009"}, up)
		}()
		go io.Copy(io.Discard, devSide)
		connect := &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, ClientIdentifier: "fuzz"}}
		devSide.SetDeadline(time.Now().Add(10 * time.Second))
		devSide.Write(encodeAll(t, v, []*packets.Packet{connect}))
		devSide.Write(data)
		// Give the bridge a moment to relay, then vanish.
		time.Sleep(2 * time.Millisecond)
		devSide.Close()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Fatalf("session did not end after the device went away")
		}
		if _, _, err := checkBrokerLog(b, &logOffset); err != nil {
			t.Fatal(err)
		}
	})
}

var discardLog = slog.New(slog.DiscardHandler)

// checkBrokerLog reads the broker's log from *off and returns an error
// for a PUBLISH or SUBSCRIBE of a fuzz session (client id fz…) outside
// devices/<its client id>/, and how many of each it saw.
func checkBrokerLog(b *mosquittotest.Broker, off *int64) (pubs, subs int, err error) {
	fh, err := os.Open(b.Dir + "/mosquitto.log")
	if err != nil {
		return 0, 0, err
	}
	defer fh.Close()
	fh.Seek(*off, io.SeekStart)
	r := bufio.NewReader(fh)
	subscriber := ""
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return pubs, subs, nil // a partial last line is read again next time
		}
		*off += int64(len(line))
		_, msg, _ := strings.Cut(strings.TrimRight(line, "\n"), ": ")
		// "Received PUBLISH from CLIENT (d0, q1, r0, m2, 'TOPIC', ... (N bytes))"
		if rest, ok := strings.CutPrefix(msg, "Received PUBLISH from fz"); ok {
			client, _, _ := strings.Cut("fz"+rest, " ")
			if !strings.Contains(rest, ", 'devices/"+client+"/") {
				return pubs, subs, fmt.Errorf("broker received a PUBLISH outside the namespace: %s", msg)
			}
			pubs++
		}
		// "Received SUBSCRIBE from CLIENT", then "\tFILTER (QoS n)" and
		// "CLIENT n FILTER" for each filter.
		if rest, ok := strings.CutPrefix(msg, "Received SUBSCRIBE from fz"); ok {
			subscriber = "fz" + rest
			continue
		}
		if subscriber != "" && strings.HasPrefix(msg, "\t") {
			if filter := strings.TrimSpace(msg); !strings.HasPrefix(filter, "devices/"+subscriber+"/") {
				return pubs, subs, fmt.Errorf("broker received a SUBSCRIBE outside the namespace from %s: %q", subscriber, filter)
			}
			subs++
			continue
		}
		if subscriber != "" && strings.HasPrefix(msg, subscriber+" ") {
			continue // "CLIENT QOS FILTER", after each filter
		}
		subscriber = ""
	}
}

// The namespace check of FuzzDeviceSession reads Mosquitto's real log
// format: it counts a bridged session's PUBLISH and SUBSCRIBE, and
// catches a client publishing and subscribing outside its namespace
// (here one connected straight to the broker).
func TestBrokerLogCheck(t *testing.T) {
	b := mosquittotest.Start(t, mosquittotest.Options{Users: map[string]string{platformUser: platformPass}})
	up := Upstream{Addr: b.Addr, Username: platformUser, Password: platformPass, ClientID: "{simId}", TopicTemplate: "devices/{simId}/{topic}"}
	br := startBridge(t, up, Identity{SIMID: "fz-good", IMSI: deviceIMSI})
	rc := dialRaw(t, br.Addr, 4)
	rc.connect(30, nil)
	rc.send(subscribe(1, "#", "x/+"))
	rc.recv(10 * time.Second)
	rc.send(publish("a", 1, 2, "x"))
	rc.recv(10 * time.Second)
	var off int64
	if pubs, subs, err := checkBrokerLog(b, &off); err != nil || pubs != 1 || subs != 2 {
		t.Fatalf("bridged session: %d publishes, %d filters, %v; want 1, 2, nil\n%s", pubs, subs, err, b.Log())
	}
	for _, evil := range []*packets.Packet{publish("devices/fz-good/a", 1, 1, "x"), subscribe(2, "devices/fz-good/#")} {
		direct := dialRaw(t, b.Addr, 4)
		direct.connect(30, func(pk *packets.Packet) {
			pk.Connect.ClientIdentifier = "fz-evil"
			pk.Connect.Username, pk.Connect.Password = []byte(platformUser), []byte(platformPass)
		})
		direct.send(evil)
		direct.recv(10 * time.Second)
		if _, _, err := checkBrokerLog(b, &off); err == nil {
			t.Errorf("%s outside the namespace not caught:\n%s", packetName(evil.FixedHeader.Type), b.Log())
		}
	}
}
