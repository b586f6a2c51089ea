// SPDX-License-Identifier: Apache-2.0

// Package enginebench measures WireGuard implementations side by side with one
// harness: bulk throughput over loopback UDP, responder handshakes per second,
// and memory per peer and per active session.
//
// An implementation plugs in as a Subject: the subject only builds engines
// from plain configurations; the harness owns the traffic (memtun sources and
// sinks, pre-generated handshake initiations, the UDP blaster) and the
// measuring, so every subject is measured the same way.
//
// All traffic goes to 127.0.0.1.
package enginebench

import (
	"fmt"
	"io"
	"net/netip"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/wirefleet/wirefleet/wgkey"
)

// Baseline is the name of the reference subject ratios divide by.
const Baseline = "wireguard-go"

// Ours is the name our engine's subject registers under; the top-level JSON
// figures (throughput_gbps, ...) are this subject's.
const Ours = "wirefleet"

// Subject is one WireGuard implementation under test.
type Subject interface {
	// Name identifies the subject in reports ("wireguard-go", "wirefleet").
	Name() string

	// NewTunnel starts two engines in this process, each listening on UDP on
	// 127.0.0.1 (any free port), peered with each other over 127.0.0.1. Inner
	// packets engine A reads from cfg.A.Tun with destination cfg.B.Inner must
	// come out of cfg.B.Tun, and the reverse. Closing the result stops both.
	NewTunnel(cfg TunnelConfig) (io.Closer, error)

	// NewResponder starts one engine listening on UDP on 127.0.0.1 that
	// accepts handshakes from cfg.Peers.
	NewResponder(cfg ResponderConfig) (Responder, error)

	// MaxPeers is the most peers NewResponder accepts, 0 if unlimited.
	MaxPeers() int
}

// TunnelConfig describes the two ends of a tunnel.
type TunnelConfig struct {
	A, B TunnelEnd
}

// TunnelEnd is one engine of a tunnel.
type TunnelEnd struct {
	PrivateKey wgkey.Private
	Tun        tun.Device
	Inner      netip.Addr // the end's inner address: the other end allows it as source and routes it here
}

// ResponderConfig describes a handshake responder.
//
// Peers and Lookup describe the same peers. An engine that configures peers
// up front (wireguard-go) walks Peers; an engine that resolves peers lazily at
// handshake time (ours) calls Lookup, which stands for the SIM store. Both are
// the harness's: built before the memory baseline and kept alive to the end,
// so they count for no subject — only what the subject builds from them does.
type ResponderConfig struct {
	PrivateKey wgkey.Private
	Peers      []PeerConfig
	Lookup     func(public wgkey.Public) (PeerConfig, bool)
	Tun        tun.Device // where inner packets would go; nothing is sent in handshake tests
}

// PeerConfig is one peer a responder knows.
type PeerConfig struct {
	PublicKey wgkey.Public
	AllowedIP netip.Prefix // distinct per peer, inside 10.128.0.0/9
}

// Responder is a running handshake responder.
type Responder interface {
	// Addr is the UDP address initiations go to (on 127.0.0.1).
	Addr() netip.AddrPort
	Close() error
}

// CloseTimeout bounds how long the harness waits for a subject's engines to
// close: an engine that hangs in Close is reported, not waited for forever.
const CloseTimeout = 10 * time.Second

// closeWithin closes c, giving up after d (the close goes on in the
// background; whatever it holds leaks, which is fine in a benchmark process).
func closeWithin(name string, c io.Closer, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- c.Close() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		return fmt.Errorf("%s: Close did not return within %v", name, d)
	}
}

// KeyPair is a private key and its public key, computed once: a scalar
// multiplication is not free when 100,000 initiators are made.
type KeyPair struct {
	Private wgkey.Private
	Public  wgkey.Public
}

// NewPrivateKey returns a fresh private key; the benchmark cannot go on
// without randomness, so failure panics.
func NewPrivateKey() wgkey.Private {
	k, err := wgkey.NewPrivate()
	if err != nil {
		panic(err)
	}
	return k
}

// peerAllowedIP returns the allowed IP of the i-th generated peer: one /32 per
// peer in the SIM range 10.128.0.0/9, as a gateway would have.
func peerAllowedIP(i int) netip.Prefix {
	base := uint32(10)<<24 | uint32(128)<<16
	v := base + uint32(i) + 1
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), 32)
}
