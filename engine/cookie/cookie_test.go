// SPDX-License-Identifier: Apache-2.0

package cookie

import (
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/engine/wire"
	"github.com/wirefleet/wirefleet/internal/clock"
	"github.com/wirefleet/wirefleet/wgkey"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func setup(t *testing.T) (*Checker, *Generator, *fakeClock) {
	priv, _ := wgkey.NewPrivate()
	clk := &fakeClock{t: time.Unix(1000, 0)}
	c := NewChecker(priv.Public(), clock.Func(clk.now))
	g := new(Generator)
	g.Init(priv.Public())
	return c, g, clk
}

func TestMAC1(t *testing.T) {
	c, g, clk := setup(t)
	msg := make([]byte, wire.InitiationSize)
	msg[0] = 1
	g.AddMACs(msg, clk.t)
	if !c.CheckMAC1(msg) {
		t.Fatal("valid MAC1 refused")
	}
	msg[10] ^= 1
	if c.CheckMAC1(msg) {
		t.Fatal("MAC1 accepted over modified bytes")
	}
	other, _ := wgkey.NewPrivate()
	g.Init(other.Public())
	g.AddMACs(msg, clk.t)
	if c.CheckMAC1(msg) {
		t.Fatal("MAC1 for another key accepted")
	}
}

func TestCookieRoundTrip(t *testing.T) {
	c, g, clk := setup(t)
	src := []byte{127, 0, 0, 1, 0x12, 0x34}
	msg := make([]byte, wire.InitiationSize)
	g.AddMACs(msg, clk.t)
	if c.CheckMAC2(msg, src) {
		t.Fatal("MAC2 valid before any cookie")
	}
	reply, err := c.MakeReply(msg, 77, src)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.ConsumeReply(&reply, clk.t); err != nil {
		t.Fatalf("reply refused: %v", err)
	}
	g.AddMACs(msg, clk.t)
	if !c.CheckMAC2(msg, src) {
		t.Fatal("MAC2 with cookie refused")
	}
	if c.CheckMAC2(msg, []byte{127, 0, 0, 2, 0x12, 0x34}) {
		t.Fatal("MAC2 accepted from another source")
	}
	// A reply cannot be replayed against a message with another MAC1.
	msg[5] ^= 1
	g.AddMACs(msg, clk.t)
	if err := g.ConsumeReply(&reply, clk.t); err == nil {
		t.Fatal("stale reply accepted")
	}
	// The secret expires.
	clk.t = clk.t.Add(RefreshTime + time.Second)
	if c.CheckMAC2(msg, src) {
		t.Fatal("MAC2 valid after the secret expired")
	}
}

// FuzzCookieReply: arbitrary replies never panic and never authenticate.
func FuzzCookieReply(f *testing.F) {
	f.Add(make([]byte, wire.CookieReplySize))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, g, clk := setup(t)
		msg := make([]byte, wire.InitiationSize)
		g.AddMACs(msg, clk.t)
		r, err := wire.ParseCookieReply(b)
		if err != nil {
			return
		}
		if g.ConsumeReply(&r, clk.t) == nil {
			t.Fatal("forged cookie reply accepted")
		}
	})
}

// FuzzCheck: arbitrary handshake-sized messages never panic nor pass MAC1.
func FuzzCheck(f *testing.F) {
	f.Add(make([]byte, wire.InitiationSize), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, msg, src []byte) {
		c, _, _ := setup(t)
		if c.CheckMAC1(msg) {
			t.Fatal("random bytes passed MAC1")
		}
		c.CheckMAC2(msg, src)
		if len(msg) >= 2*wire.MACSize {
			if _, err := c.MakeReply(msg, 1, src); err != nil {
				t.Fatal(err)
			}
		}
	})
}
