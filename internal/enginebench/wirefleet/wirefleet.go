// Package wirefleet is our engine (package engine) as a subject of the engine
// benchmark: static peers for the tunnel, a lazy Resolver over the harness's
// Lookup for the responder, memory key stores, conn.NewStdNetBind() as for
// the wireguard-go subject.
package wirefleet

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"

	"github.com/wirefleet/wirefleet/engine"
	"github.com/wirefleet/wirefleet/internal/enginebench"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

// Subject is our engine as an enginebench.Subject.
type Subject struct{}

// Name returns enginebench.Ours.
func (Subject) Name() string { return enginebench.Ours }

// MaxPeers is 0: the engine resolves peers lazily and has no cap.
func (Subject) MaxPeers() int { return 0 }

var loopback = netip.AddrFrom4([4]byte{127, 0, 0, 1})

// warnLogger keeps the engine's "up" lines out of the bench's progress output
// while still showing its warnings and errors.
var warnLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

type tunnel struct{ a, b *engine.Engine }

func (t tunnel) Close() error {
	t.a.Close()
	t.b.Close()
	return nil
}

// NewTunnel starts two engines with TUNs, each holding the other as a static peer.
func (Subject) NewTunnel(cfg enginebench.TunnelConfig) (io.Closer, error) {
	ends := []enginebench.TunnelEnd{cfg.A, cfg.B}
	engines := make([]*engine.Engine, 2)
	closeAll := func() {
		for _, e := range engines {
			if e != nil {
				e.Close()
			}
		}
	}
	for i, end := range ends {
		e, err := engine.New(engine.Config{KeyStore: keystore.NewMemory(end.PrivateKey), TUN: end.Tun, Logger: warnLogger})
		if err == nil {
			err = e.Up()
		}
		if err != nil {
			closeAll()
			return nil, err
		}
		engines[i] = e
	}
	for i, e := range engines {
		other := ends[1-i]
		if _, err := e.AddPeer(engine.PeerConfig{
			PublicKey:  other.PrivateKey.Public(),
			AllowedIPs: []netip.Prefix{netip.PrefixFrom(other.Inner, 32)},
			Endpoint:   netip.AddrPortFrom(loopback, engines[1-i].Port()),
		}); err != nil {
			closeAll()
			return nil, err
		}
	}
	return tunnel{engines[0], engines[1]}, nil
}

type responder struct{ e *engine.Engine }

func (r responder) Addr() netip.AddrPort { return netip.AddrPortFrom(loopback, r.e.Port()) }
func (r responder) Close() error         { return r.e.Close() }

// NewResponder starts an engine holding no peer: every initiator is resolved
// at handshake time through cfg.Lookup, as the gateway resolves SIMs.
func (Subject) NewResponder(cfg enginebench.ResponderConfig) (enginebench.Responder, error) {
	if cfg.Lookup == nil {
		return nil, fmt.Errorf("wirefleet subject needs ResponderConfig.Lookup")
	}
	lookup := cfg.Lookup
	e, err := engine.New(engine.Config{
		KeyStore: keystore.NewMemory(cfg.PrivateKey),
		TUN:      cfg.Tun,
		Logger:   warnLogger,
		Resolver: engine.ResolverFunc(func(_ context.Context, key wgkey.Public, _ netip.AddrPort) (engine.PeerConfig, error) {
			p, ok := lookup(key)
			if !ok {
				return engine.PeerConfig{}, engine.ErrUnknownPeer
			}
			return engine.PeerConfig{PublicKey: key, AllowedIPs: []netip.Prefix{p.AllowedIP}}, nil
		}),
	})
	if err != nil {
		return nil, err
	}
	if err := e.Up(); err != nil {
		e.Close()
		return nil, err
	}
	return responder{e}, nil
}

var _ enginebench.Subject = Subject{}
