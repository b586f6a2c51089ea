// SPDX-License-Identifier: Apache-2.0

package wire

import (
	"bytes"
	"errors"
	"testing"
)

func TestRoundTrips(t *testing.T) {
	in := Initiation{Sender: 0xdeadbeef}
	in.Ephemeral[0], in.Static[47], in.Timestamp[3], in.MAC1[1], in.MAC2[15] = 1, 2, 3, 4, 5
	b := make([]byte, InitiationSize)
	in.Marshal(b)
	if got, err := ParseInitiation(b); err != nil || got != in {
		t.Fatalf("initiation round trip: %v", err)
	}
	r := Response{Sender: 7, Receiver: 9}
	r.Ephemeral[31], r.Empty[0], r.MAC1[2], r.MAC2[3] = 1, 2, 3, 4
	b = make([]byte, ResponseSize)
	r.Marshal(b)
	if got, err := ParseResponse(b); err != nil || got != r {
		t.Fatalf("response round trip: %v", err)
	}
	if ReceiverIndex(TypeResponse, b) != 9 {
		t.Fatal("response receiver index")
	}
	c := CookieReply{Receiver: 11}
	c.Nonce[23], c.Cookie[31] = 1, 2
	b = make([]byte, CookieReplySize)
	c.Marshal(b)
	if got, err := ParseCookieReply(b); err != nil || got != c {
		t.Fatalf("cookie round trip: %v", err)
	}
	b = make([]byte, TransportMinSize)
	PutTransportHeader(b, 42, 1<<40)
	if h, err := ParseTransportHeader(b); err != nil || h.Receiver != 42 || h.Counter != 1<<40 {
		t.Fatalf("transport header: %+v %v", h, err)
	}
}

func TestRejects(t *testing.T) {
	cases := [][]byte{
		nil,
		{1},
		{1, 0, 0, 0}, // initiation, too short
		append([]byte{1, 0, 0, 1}, make([]byte, InitiationSize-4)...), // reserved byte set
		append([]byte{2, 0, 0, 0}, make([]byte, ResponseSize-3)...),   // one byte long
		append([]byte{4, 0, 0, 0}, make([]byte, 20)...),               // transport below minimum
		append([]byte{5, 0, 0, 0}, make([]byte, 100)...),              // unknown type
	}
	for i, c := range cases {
		if _, err := Type(c); !errors.Is(err, ErrMalformed) {
			t.Errorf("case %d: err = %v, want ErrMalformed", i, err)
		}
	}
	if _, err := ParseInitiation(make([]byte, ResponseSize)); err == nil {
		t.Error("ParseInitiation accepted a response-sized zero buffer")
	}
}

// FuzzParse feeds arbitrary bytes to every parser: none may panic, and
// anything accepted must re-encode to the same bytes.
func FuzzParse(f *testing.F) {
	f.Add(make([]byte, InitiationSize))
	f.Add(append([]byte{1, 0, 0, 0}, make([]byte, InitiationSize-4)...))
	f.Add(append([]byte{2, 0, 0, 0}, make([]byte, ResponseSize-4)...))
	f.Add(append([]byte{3, 0, 0, 0}, make([]byte, CookieReplySize-4)...))
	f.Add(append([]byte{4, 0, 0, 0}, make([]byte, TransportMinSize-4)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, err := Type(b)
		if err != nil {
			return
		}
		out := make([]byte, len(b))
		switch typ {
		case TypeInitiation:
			m, err := ParseInitiation(b)
			if err != nil {
				t.Fatal(err)
			}
			m.Marshal(out)
		case TypeResponse:
			m, err := ParseResponse(b)
			if err != nil {
				t.Fatal(err)
			}
			m.Marshal(out)
		case TypeCookieReply:
			m, err := ParseCookieReply(b)
			if err != nil {
				t.Fatal(err)
			}
			m.Marshal(out)
		case TypeTransport:
			h, err := ParseTransportHeader(b)
			if err != nil {
				t.Fatal(err)
			}
			copy(out, b)
			PutTransportHeader(out, h.Receiver, h.Counter)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("type %d: re-encoding differs", typ)
		}
	})
}
