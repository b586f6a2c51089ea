// SPDX-License-Identifier: Apache-2.0

package noise

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/engine/tai64n"
	"github.com/wirefleet/wirefleet/engine/wire"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

func ss(t testing.TB, ks keystore.Store, peer wgkey.Public) *[32]byte {
	v, err := ks.DH(context.Background(), keystore.DHRequest{Purpose: keystore.StaticStatic, Peer: peer})
	if err != nil {
		t.Fatal(err)
	}
	return &v
}

func handshake(t *testing.T, psk wgkey.Preshared) {
	ctx := context.Background()
	ia, _ := keystore.GenerateMemory()
	rb, _ := keystore.GenerateMemory()
	ts := tai64n.From(time.Now())
	st, m1, err := CreateInitiation(InitiationParams{
		Local: ia.PublicKey(), Peer: rb.PublicKey(), StaticStatic: ss(t, ia, rb.PublicKey()),
		PSK: psk, SenderIndex: 5, Timestamp: ts,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Through the wire format, as on the network.
	b := make([]byte, wire.InitiationSize)
	m1.Marshal(b)
	m1, _ = wire.ParseInitiation(b)

	r, err := OpenInitiation(ctx, rb, rb.PublicKey(), &m1, keystore.DHRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r.PeerStatic != ia.PublicKey() || r.PeerIndex != 5 {
		t.Fatal("responder learned the wrong initiator")
	}
	got, err := r.OpenTimestamp(ss(t, rb, r.PeerStatic))
	if err != nil || got != ts {
		t.Fatalf("timestamp: %v", err)
	}
	m2, rk, err := r.CreateResponse(psk, 9)
	if err != nil {
		t.Fatal(err)
	}
	ik, err := st.ConsumeResponse(ctx, ia, &m2)
	if err != nil {
		t.Fatal(err)
	}
	if ik.Send != rk.Recv || ik.Recv != rk.Send || ik.Send == ik.Recv {
		t.Fatal("transport keys do not pair up")
	}
}

func TestHandshake(t *testing.T)    { handshake(t, wgkey.Preshared{}) }
func TestHandshakePSK(t *testing.T) { psk, _ := wgkey.NewPreshared(); handshake(t, psk) }

func TestPSKMismatch(t *testing.T) {
	ctx := context.Background()
	ia, _ := keystore.GenerateMemory()
	rb, _ := keystore.GenerateMemory()
	psk, _ := wgkey.NewPreshared()
	st, m1, _ := CreateInitiation(InitiationParams{Local: ia.PublicKey(), Peer: rb.PublicKey(), StaticStatic: ss(t, ia, rb.PublicKey()), PSK: psk})
	r, err := OpenInitiation(ctx, rb, rb.PublicKey(), &m1, keystore.DHRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.OpenTimestamp(ss(t, rb, r.PeerStatic)); err != nil {
		t.Fatal(err)
	}
	m2, _, _ := r.CreateResponse(wgkey.Preshared{}, 1)
	if _, err := st.ConsumeResponse(ctx, ia, &m2); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("err = %v, want ErrDecrypt", err)
	}
}

func TestWrongResponderKey(t *testing.T) {
	ia, _ := keystore.GenerateMemory()
	rb, _ := keystore.GenerateMemory()
	other, _ := keystore.GenerateMemory()
	_, m1, _ := CreateInitiation(InitiationParams{Local: ia.PublicKey(), Peer: rb.PublicKey(), StaticStatic: ss(t, ia, rb.PublicKey())})
	if _, err := OpenInitiation(context.Background(), other, other.PublicKey(), &m1, keystore.DHRequest{}); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("err = %v, want ErrDecrypt", err)
	}
}

// FuzzOpenInitiation: arbitrary initiations never panic and never open.
func FuzzOpenInitiation(f *testing.F) {
	rb, _ := keystore.GenerateMemory()
	ia, _ := keystore.GenerateMemory()
	_, m1, _ := CreateInitiation(InitiationParams{Local: ia.PublicKey(), Peer: rb.PublicKey(), StaticStatic: ss(f, ia, rb.PublicKey())})
	b := make([]byte, wire.InitiationSize)
	m1.Marshal(b)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := wire.ParseInitiation(b)
		if err != nil {
			return
		}
		r, err := OpenInitiation(context.Background(), rb, rb.PublicKey(), &m, keystore.DHRequest{})
		if err != nil {
			return
		}
		// Only the seed itself (an unmodified real initiation) may open.
		if r.PeerStatic != ia.PublicKey() {
			t.Fatal("a forged static field opened")
		}
	})
}
