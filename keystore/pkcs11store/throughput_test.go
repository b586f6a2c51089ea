// SPDX-License-Identifier: Apache-2.0

//go:build cgo

package pkcs11store_test

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/engine"
	"github.com/wirefleet/wirefleet/internal/enginebench"
	"github.com/wirefleet/wirefleet/internal/enginebench/wfengine"
	"github.com/wirefleet/wirefleet/keystore"
	"golang.zx2c4.com/wireguard/conn"
)

// tokenSubject is our engine with end A's static key on a PKCS#11 token
// instead of in memory: the same harness as the engine benchmark.
type tokenSubject struct{ ks keystore.Store }

func (tokenSubject) Name() string  { return "wirefleet-pkcs11" }
func (tokenSubject) MaxPeers() int { return 0 }
func (tokenSubject) NewResponder(enginebench.ResponderConfig) (enginebench.Responder, error) {
	panic("not used")
}

type pair struct{ a, b *engine.Engine }

func (p pair) Close() error { p.a.Close(); p.b.Close(); return nil }

func (s tokenSubject) NewTunnel(cfg enginebench.TunnelConfig) (io.Closer, error) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := engine.New(engine.Config{KeyStore: s.ks, Bind: conn.NewStdNetBind(), TUN: cfg.A.Tun, Logger: quiet})
	if err != nil {
		return nil, err
	}
	b, err := engine.New(engine.Config{KeyStore: keystore.NewMemory(cfg.B.PrivateKey), Bind: conn.NewStdNetBind(), TUN: cfg.B.Tun, Logger: quiet})
	if err != nil {
		return nil, err
	}
	a.Up()
	b.Up()
	lo := netip.MustParseAddr("127.0.0.1")
	a.AddPeer(engine.PeerConfig{PublicKey: b.PublicKey(), AllowedIPs: []netip.Prefix{netip.PrefixFrom(cfg.B.Inner, 32)}, Endpoint: netip.AddrPortFrom(lo, b.Port())})
	b.AddPeer(engine.PeerConfig{PublicKey: a.PublicKey(), AllowedIPs: []netip.Prefix{netip.PrefixFrom(cfg.A.Inner, 32)}, Endpoint: netip.AddrPortFrom(lo, a.Port())})
	return pair{a, b}, nil
}

// countingStore counts the DH operations asked of the token.
type countingStore struct {
	keystore.Store
	n atomic.Int64
}

func (c *countingStore) DH(ctx context.Context, req keystore.DHRequest) ([32]byte, error) {
	c.n.Add(1)
	return c.Store.DH(ctx, req)
}

// Throughput with the key on the token equals the memory key's because
// the token is used at handshakes only: a second of traffic at full speed
// through an engine whose static key is on SoftHSM asks the token for a
// handful of DHs (the handshake), not one per packet. (The speed itself is
// compared in BenchmarkThroughputTokenKey: timing is a benchmark's job.)
func TestTokenKeyOffTheDataPath(t *testing.T) {
	tok := openToken(t, "tput", nil)
	k, err := tok.Generate("wg")
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{Store: keystore.InitiatorOnly{Store: k}}
	r, err := enginebench.Throughput(tokenSubject{cs}, 300*time.Millisecond, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	packets := r.PacketsPerSec * r.DurationSec
	t.Logf("%.0f packets (%.2f Gbit/s) with %d token DHs", packets, r.Gbps, cs.n.Load())
	if packets < 1000 {
		t.Fatalf("only %.0f packets went through", packets)
	}
	if n := cs.n.Load(); n > 4 {
		t.Fatalf("%d DHs on the token for %.0f packets: the store is on the data path", n, packets)
	}
}

// BenchmarkThroughputTokenKey compares throughput with the static key on
// the token and in memory (same harness, rounds alternating); reported as
// Gbit/s each and their ratio.
//
//	go test -run XXX -bench ThroughputTokenKey -benchtime 3x ./keystore/pkcs11store
func BenchmarkThroughputTokenKey(b *testing.B) {
	tok := openToken(b, "tput", nil)
	k, err := tok.Generate("wg")
	if err != nil {
		b.Fatal(err)
	}
	var mem, hw []float64
	for i := 0; i < b.N; i++ {
		r, err := enginebench.Throughput(wfengine.Subject{}, 300*time.Millisecond, time.Second)
		if err != nil {
			b.Fatal(err)
		}
		mem = append(mem, r.Gbps)
		r, err = enginebench.Throughput(tokenSubject{keystore.InitiatorOnly{Store: k}}, 300*time.Millisecond, time.Second)
		if err != nil {
			b.Fatal(err)
		}
		hw = append(hw, r.Gbps)
	}
	sort.Float64s(mem)
	sort.Float64s(hw)
	m, h := mem[len(mem)/2], hw[len(hw)/2]
	b.ReportMetric(m, "memory-Gbit/s")
	b.ReportMetric(h, "token-Gbit/s")
	b.ReportMetric(h/m, "ratio")
}
