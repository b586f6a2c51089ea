// SPDX-License-Identifier: Apache-2.0

package enginebench

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/wirefleet/wirefleet/wgkey"
)

// fakeMaker makes messages that look like initiations (type 1, 148 bytes)
// carrying the initiator index, enough to test the set's bookkeeping.
type fakeMaker struct{}

func (fakeMaker) Initiations(_ wgkey.Public, initiators []KeyPair) ([][]byte, error) {
	out := make([][]byte, len(initiators))
	for i := range out {
		out[i] = make([]byte, initiationSize)
		out[i][0] = msgInitiation
		out[i][4] = byte(i)
	}
	return out, nil
}

func TestHandshakeSetFileRoundTrip(t *testing.T) {
	hs, err := NewHandshakeSet(fakeMaker{}, 5)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "set")
	if err := hs.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	got, err := ReadHandshakeFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Responder != hs.Responder || len(got.Messages) != 5 {
		t.Fatalf("read back %d messages, responder equal %v", len(got.Messages), got.Responder == hs.Responder)
	}
	for i := range hs.Messages {
		if got.Initiators[i] != hs.Initiators[i] || !bytes.Equal(got.Messages[i], hs.Messages[i]) {
			t.Fatalf("entry %d differs", i)
		}
	}
	if p := got.Prefix(3); len(p.Messages) != 3 || len(p.Peers()) != 3 {
		t.Fatal("Prefix(3) is not 3 long")
	}
	peers := hs.Peers()
	if peers[0].AllowedIP.String() != "10.128.0.1/32" || peers[4].AllowedIP.String() != "10.128.0.5/32" {
		t.Fatalf("allowed IPs %v %v", peers[0].AllowedIP, peers[4].AllowedIP)
	}
}

func TestHandshakeSetRejectsMalformedMessages(t *testing.T) {
	if _, err := NewHandshakeSet(badMaker{}, 2); err == nil {
		t.Fatal("a maker returning non-initiations was accepted")
	}
}

type badMaker struct{}

func (badMaker) Initiations(_ wgkey.Public, initiators []KeyPair) ([][]byte, error) {
	return make([][]byte, len(initiators)), nil
}

func TestHandshakeSetLookup(t *testing.T) {
	hs, err := NewHandshakeSet(fakeMaker{}, 3)
	if err != nil {
		t.Fatal(err)
	}
	lookup := hs.Lookup()
	p, ok := lookup(hs.Initiators[2])
	if !ok || p.PublicKey != hs.Initiators[2] || p.AllowedIP != hs.Peers()[2].AllowedIP {
		t.Fatalf("lookup(initiator 2) = %+v, %v", p, ok)
	}
	if _, ok := lookup(NewPrivateKey().Public()); ok {
		t.Fatal("lookup found an unknown key")
	}
}
