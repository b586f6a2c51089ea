// SPDX-License-Identifier: Apache-2.0

// Package wfengine plugs wirefleet's own engine into the benchmark harness
// as the subject enginebench.Ours.
package wfengine

import (
	"context"
	"io"
	"log/slog"
	"net/netip"

	"github.com/wirefleet/wirefleet/engine"
	"github.com/wirefleet/wirefleet/internal/enginebench"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
	"golang.zx2c4.com/wireguard/tun"
)

// Subject is our engine. Responders resolve peers lazily through the
// harness's Lookup, as a gateway resolves SIMs from its store.
type Subject struct{}

// Name implements enginebench.Subject.
func (Subject) Name() string { return enginebench.Ours }

// MaxPeers implements enginebench.Subject: there is no cap.
func (Subject) MaxPeers() int { return 0 }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newEngine(priv wgkey.Private, t tun.Device, res engine.Resolver) (*engine.Engine, error) {
	e, err := engine.New(engine.Config{
		KeyStore: keystore.NewMemory(priv),
		TUN:      t, // the engine's own bind, as shipped (udpbind)
		Resolver: res,
		Logger:   quiet,
	})
	if err != nil {
		return nil, err
	}
	if err := e.Up(); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

type tunnel struct{ a, b *engine.Engine }

func (t tunnel) Close() error {
	t.a.Close()
	t.b.Close()
	return nil
}

var loopback = netip.AddrFrom4([4]byte{127, 0, 0, 1})

// NewTunnel implements enginebench.Subject.
func (Subject) NewTunnel(cfg enginebench.TunnelConfig) (io.Closer, error) {
	a, err := newEngine(cfg.A.PrivateKey, cfg.A.Tun, nil)
	if err != nil {
		return nil, err
	}
	b, err := newEngine(cfg.B.PrivateKey, cfg.B.Tun, nil)
	if err != nil {
		a.Close()
		return nil, err
	}
	ends := [2]*engine.Engine{a, b}
	cfgs := [2]enginebench.TunnelEnd{cfg.A, cfg.B}
	for i, e := range ends {
		other := cfgs[1-i]
		_, err := e.AddPeer(engine.PeerConfig{
			PublicKey:  other.PrivateKey.Public(),
			AllowedIPs: []netip.Prefix{netip.PrefixFrom(other.Inner, other.Inner.BitLen())},
			Endpoint:   netip.AddrPortFrom(loopback, ends[1-i].Port()),
		})
		if err != nil {
			a.Close()
			b.Close()
			return nil, err
		}
	}
	return tunnel{a, b}, nil
}

type responder struct{ e *engine.Engine }

func (r responder) Addr() netip.AddrPort { return netip.AddrPortFrom(loopback, r.e.Port()) }
func (r responder) Close() error         { return r.e.Close() }

// NewResponder implements enginebench.Subject. Peers are not configured up
// front: the engine asks cfg.Lookup when an initiation arrives.
func (Subject) NewResponder(cfg enginebench.ResponderConfig) (enginebench.Responder, error) {
	lookup := cfg.Lookup
	if lookup == nil {
		m := make(map[wgkey.Public]enginebench.PeerConfig, len(cfg.Peers))
		for _, p := range cfg.Peers {
			m[p.PublicKey] = p
		}
		lookup = func(k wgkey.Public) (enginebench.PeerConfig, bool) { p, ok := m[k]; return p, ok }
	}
	res := engine.ResolverFunc(func(_ context.Context, key wgkey.Public, _ netip.AddrPort) (engine.PeerConfig, error) {
		p, ok := lookup(key)
		if !ok {
			return engine.PeerConfig{}, engine.ErrUnknownPeer
		}
		return engine.PeerConfig{PublicKey: key, AllowedIPs: []netip.Prefix{p.AllowedIP}}, nil
	})
	e, err := newEngine(cfg.PrivateKey, cfg.Tun, res)
	if err != nil {
		return nil, err
	}
	return responder{e}, nil
}
