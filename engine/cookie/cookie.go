// SPDX-License-Identifier: Apache-2.0

// Package cookie implements WireGuard's MAC1/MAC2 fields and cookie replies:
// the cheap checks that let a responder drop unauthenticated handshake
// messages before any Curve25519 work, and make a flooding source prove it
// owns its address when the responder is under load.
package cookie

import (
	"crypto/hmac"
	"crypto/rand"
	"errors"
	"sync"
	"time"

	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/wirefleet/wirefleet/engine/wire"
	"github.com/wirefleet/wirefleet/internal/clock"
	"github.com/wirefleet/wirefleet/wgkey"
)

// RefreshTime is how long a cookie secret (responder) and a received cookie
// (initiator) stay valid.
const RefreshTime = 120 * time.Second

const (
	labelMAC1   = "mac1----"
	labelCookie = "cookie--"
)

// ErrBadReply is returned for a cookie reply that does not decrypt.
var ErrBadReply = errors.New("cookie: reply does not authenticate")

func labelledKey(label string, pub wgkey.Public) [32]byte {
	h, _ := blake2s.New256(nil)
	h.Write([]byte(label))
	h.Write(pub[:])
	var k [32]byte
	h.Sum(k[:0])
	return k
}

func mac(dst *[wire.MACSize]byte, key []byte, parts ...[]byte) {
	h, _ := blake2s.New128(key)
	for _, p := range parts {
		h.Write(p)
	}
	h.Sum(dst[:0])
}

// macOffsets returns where MAC1 and MAC2 sit in an encoded handshake message.
func macOffsets(msg []byte) (mac1, mac2 int) {
	return len(msg) - 2*wire.MACSize, len(msg) - wire.MACSize
}

// Checker validates the MACs of handshake messages sent to us and makes
// cookie replies. It is safe for concurrent use.
type Checker struct {
	mac1Key [32]byte
	encKey  [32]byte
	clk     clock.Clock

	mu        sync.RWMutex
	secret    [32]byte
	secretSet time.Time
}

// NewChecker returns a Checker for our static public key; clk times the
// cookie secret's refresh.
func NewChecker(ours wgkey.Public, clk clock.Clock) *Checker {
	return &Checker{
		mac1Key: labelledKey(labelMAC1, ours),
		encKey:  labelledKey(labelCookie, ours),
		clk:     clk,
	}
}

// CheckMAC1 reports whether msg (an encoded initiation or response) carries
// a MAC1 made with our public key. It costs one BLAKE2s.
func (c *Checker) CheckMAC1(msg []byte) bool {
	if len(msg) < 2*wire.MACSize {
		return false
	}
	o1, o2 := macOffsets(msg)
	var want [wire.MACSize]byte
	mac(&want, c.mac1Key[:], msg[:o1])
	return hmac.Equal(want[:], msg[o1:o2])
}

// CheckMAC2 reports whether msg carries a MAC2 made with the cookie we would
// give its source (src: the encoded source address).
func (c *Checker) CheckMAC2(msg, src []byte) bool {
	if len(msg) < 2*wire.MACSize {
		return false
	}
	c.mu.RLock()
	if c.secretSet.IsZero() || c.clk.Now().Sub(c.secretSet) > RefreshTime {
		c.mu.RUnlock()
		return false
	}
	var ck [wire.MACSize]byte
	mac(&ck, c.secret[:], src)
	c.mu.RUnlock()
	_, o2 := macOffsets(msg)
	var want [wire.MACSize]byte
	mac(&want, ck[:], msg[:o2])
	return hmac.Equal(want[:], msg[o2:])
}

// MakeReply returns the cookie reply for msg (a handshake message whose
// MAC1 checked out) from src, addressed to the sender's index.
func (c *Checker) MakeReply(msg []byte, receiver uint32, src []byte) (wire.CookieReply, error) {
	r := wire.CookieReply{Receiver: receiver}
	c.mu.Lock()
	if now := c.clk.Now(); c.secretSet.IsZero() || now.Sub(c.secretSet) > RefreshTime {
		if _, err := rand.Read(c.secret[:]); err != nil {
			c.mu.Unlock()
			return r, err
		}
		c.secretSet = now
	}
	var ck [wire.MACSize]byte
	mac(&ck, c.secret[:], src)
	c.mu.Unlock()

	if _, err := rand.Read(r.Nonce[:]); err != nil {
		return r, err
	}
	aead, _ := chacha20poly1305.NewX(c.encKey[:])
	o1, o2 := macOffsets(msg)
	aead.Seal(r.Cookie[:0], r.Nonce[:], ck[:], msg[o1:o2])
	return r, nil
}

// Generator adds MACs to the handshake messages we send to one peer and
// keeps the cookie that peer gave us. It is safe for concurrent use.
type Generator struct {
	mu        sync.Mutex
	mac1Key   [32]byte
	encKey    [32]byte
	cookie    [wire.MACSize]byte
	cookieSet time.Time
	lastMAC1  [wire.MACSize]byte
	sentMAC1  bool
}

// Init prepares g for the peer with static key peer.
func (g *Generator) Init(peer wgkey.Public) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.mac1Key = labelledKey(labelMAC1, peer)
	g.encKey = labelledKey(labelCookie, peer)
	g.cookieSet = time.Time{}
	g.sentMAC1 = false
}

// ConsumeReply takes the cookie out of a reply to the last message we sent.
func (g *Generator) ConsumeReply(r *wire.CookieReply, now time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.sentMAC1 {
		return ErrBadReply
	}
	aead, _ := chacha20poly1305.NewX(g.encKey[:])
	var ck [wire.MACSize]byte
	if _, err := aead.Open(ck[:0], r.Nonce[:], r.Cookie[:], g.lastMAC1[:]); err != nil {
		return ErrBadReply
	}
	g.cookie = ck
	g.cookieSet = now
	return nil
}

// AddMACs fills MAC1 and, when we hold a fresh cookie, MAC2 of msg.
func (g *Generator) AddMACs(msg []byte, now time.Time) {
	o1, o2 := macOffsets(msg)
	g.mu.Lock()
	defer g.mu.Unlock()
	var m [wire.MACSize]byte
	mac(&m, g.mac1Key[:], msg[:o1])
	copy(msg[o1:o2], m[:])
	g.lastMAC1 = m
	g.sentMAC1 = true
	if g.cookieSet.IsZero() || now.Sub(g.cookieSet) > RefreshTime {
		clear(msg[o2:])
		return
	}
	mac(&m, g.cookie[:], msg[:o2])
	copy(msg[o2:], m[:])
}

// HasCookie reports whether g holds a cookie still fresh at now (the peer
// is under load and asked for it).
func (g *Generator) HasCookie(now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.cookieSet.IsZero() && now.Sub(g.cookieSet) <= RefreshTime
}
