// SPDX-License-Identifier: Apache-2.0

package mqttbridge

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// samplePackets are valid packets of every type the bridge relays, as
// fuzz seeds and round-trip cases.
func samplePackets(v byte) []*packets.Packet {
	h := func(t, qos byte) packets.FixedHeader { return packets.FixedHeader{Type: t, Qos: qos} }
	pub := &packets.Packet{FixedHeader: h(packets.Publish, 1), TopicName: "a/b", PacketID: 7, Payload: []byte("hello")}
	if v == 5 {
		pub.Properties.ResponseTopic = "r/t"
		pub.Properties.CorrelationData = []byte{1, 2}
		pub.Properties.User = []packets.UserProperty{{Key: "k", Val: "v"}}
	}
	conn := &packets.Packet{FixedHeader: h(packets.Connect, 0), Connect: packets.ConnectParams{
		ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: "c",
		WillFlag: true, WillTopic: "w", WillPayload: []byte("gone"), WillQos: 1,
		UsernameFlag: true, Username: []byte("u"), PasswordFlag: true, Password: []byte("p"),
	}}
	return []*packets.Packet{
		conn,
		{FixedHeader: h(packets.Connack, 0), ReasonCode: 0, SessionPresent: true},
		pub,
		{FixedHeader: h(packets.Publish, 0), TopicName: "x", Payload: []byte{}},
		{FixedHeader: h(packets.Puback, 0), PacketID: 7},
		{FixedHeader: h(packets.Pubrec, 0), PacketID: 8},
		{FixedHeader: h(packets.Pubrel, 1), PacketID: 8},
		{FixedHeader: h(packets.Pubcomp, 0), PacketID: 8},
		{FixedHeader: h(packets.Subscribe, 1), PacketID: 9, Filters: packets.Subscriptions{{Filter: "a/#", Qos: 1}, {Filter: "+/b", Qos: 2}}},
		{FixedHeader: h(packets.Suback, 0), PacketID: 9, ReasonCodes: []byte{1, 0x80}},
		{FixedHeader: h(packets.Unsubscribe, 1), PacketID: 10, Filters: packets.Subscriptions{{Filter: "a/#"}}},
		{FixedHeader: h(packets.Unsuback, 0), PacketID: 10, ReasonCodes: []byte{0}},
		{FixedHeader: h(packets.Pingreq, 0)},
		{FixedHeader: h(packets.Pingresp, 0)},
		{FixedHeader: h(packets.Disconnect, 0), ReasonCode: 4},
	}
}

func encodeAll(t testing.TB, v byte, pks []*packets.Packet) []byte {
	var buf bytes.Buffer
	for _, pk := range pks {
		pk.ProtocolVersion = v
		if err := encodePacket(&buf, pk); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestCodecRoundTrip(t *testing.T) {
	for _, v := range []byte{4, 5} {
		pks := samplePackets(v)
		r := bufio.NewReader(bytes.NewReader(encodeAll(t, v, pks)))
		for _, want := range pks {
			got, err := readPacket(r, v, DefaultMaxPacketSize)
			if err != nil {
				t.Fatalf("v%d %s: %v", v, packetName(want.FixedHeader.Type), err)
			}
			if got.FixedHeader.Type != want.FixedHeader.Type || got.PacketID != want.PacketID || got.TopicName != want.TopicName ||
				!bytes.Equal(got.Payload, want.Payload) || len(got.Filters) != len(want.Filters) ||
				got.Properties.ResponseTopic != want.Properties.ResponseTopic {
				t.Errorf("v%d: got %+v, want %+v", v, got, want)
			}
			if v == 5 && want.FixedHeader.Type == packets.Disconnect && got.ReasonCode != 4 {
				t.Errorf("v5 DISCONNECT reason lost: %d", got.ReasonCode)
			}
		}
		if _, err := readPacket(r, v, DefaultMaxPacketSize); err != io.EOF {
			t.Errorf("after the last packet: %v", err)
		}
	}
}

// The size limit is enforced from the fixed header, before any body
// byte is read or allocated.
func TestReadPacketTooLarge(t *testing.T) {
	// PUBLISH declaring 268,435,455 bytes (the maximum), with no body.
	r := bufio.NewReader(bytes.NewReader([]byte{0x30, 0xff, 0xff, 0xff, 0x7f}))
	if _, err := readPacket(r, 4, DefaultMaxPacketSize); !errors.Is(err, ErrPacketTooLarge) {
		t.Fatalf("got %v, want ErrPacketTooLarge", err)
	}
	big := &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "t", Payload: make([]byte, DefaultMaxPacketSize)}
	r = bufio.NewReader(bytes.NewReader(encodeAll(t, 4, []*packets.Packet{big})))
	if _, err := readPacket(r, 4, DefaultMaxPacketSize); !errors.Is(err, ErrPacketTooLarge) {
		t.Fatalf("got %v, want ErrPacketTooLarge", err)
	}
	// A variable-length integer of five bytes is malformed.
	r = bufio.NewReader(bytes.NewReader([]byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}))
	if _, err := readPacket(r, 4, DefaultMaxPacketSize); !errors.Is(err, errMalformed) {
		t.Fatalf("got %v, want malformed", err)
	}
}

// The packet library indexes past a truncated v5 SUBSCRIBE (a filter
// without its options byte); the bridge must return an error instead.
func TestTruncatedV5SubscribeIsAnError(t *testing.T) {
	// SUBSCRIBE, id 1, no properties, filter "a" — and no options byte.
	r := bufio.NewReader(bytes.NewReader([]byte{0x82, 6, 0, 1, 0, 0, 1, 'a'}))
	if _, err := readPacket(r, 5, DefaultMaxPacketSize); !errors.Is(err, errMalformed) {
		t.Fatalf("got %v, want malformed", err)
	}
}

// FuzzReadPacket feeds arbitrary bytes to the packet reader as 3.1.1 and
// as 5.0: it must return packets or errors, never panic or read past the
// size limit, and every packet it returns must encode again and decode
// to the same type.
func FuzzReadPacket(f *testing.F) {
	for _, v := range []byte{4, 5} {
		for _, pk := range samplePackets(v) {
			f.Add(v, encodeAll(f, v, []*packets.Packet{pk}))
		}
	}
	f.Add(byte(5), []byte{0x82, 6, 0, 1, 0, 0, 1, 'a'})
	f.Fuzz(func(t *testing.T, v byte, data []byte) {
		v = 4 + v%2
		const max = 4096
		r := bufio.NewReaderSize(bytes.NewReader(data), 16)
		for {
			// completePacketBuffered decides when relayed writes are
			// flushed: if it says a whole packet is there, reading it must
			// not need more bytes.
			r.Peek(1)
			whole := completePacketBuffered(r)
			pk, err := readPacket(r, v, max)
			if whole && (errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)) {
				t.Fatalf("completePacketBuffered said a whole packet was buffered, reading it gave %v", err)
			}
			if err != nil {
				return
			}
			if pk.FixedHeader.Type == packets.Connect {
				if pk.ProtocolVersion != 4 && pk.ProtocolVersion != 5 {
					continue
				}
				v = pk.ProtocolVersion
			}
			var buf bytes.Buffer
			if err := encodePacket(&buf, pk); err != nil {
				continue
			}
			again, err := readPacket(bufio.NewReader(&buf), v, 1<<20)
			if err != nil {
				t.Fatalf("%s re-encoded does not decode: %v", packetName(pk.FixedHeader.Type), err)
			}
			if again.FixedHeader.Type != pk.FixedHeader.Type || again.PacketID != pk.PacketID || again.TopicName != pk.TopicName {
				t.Fatalf("round trip changed %+v into %+v", pk, again)
			}
		}
	})
}
