// SPDX-License-Identifier: Apache-2.0

package engine

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/internal/packet"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/tuntest"
)

var (
	addrA = netip.MustParseAddr("10.99.0.1")
	addrB = netip.MustParseAddr("10.99.0.2")
)

// node is one of our engines with its inbound packets on a channel.
type node struct {
	e    *Engine
	ks   keystore.Store
	in   chan []byte
	hs   chan HandshakeEvent
	rej  chan RejectEvent
	drop chan DropEvent
}

func newNode(t testing.TB, ks keystore.Store, mod func(*Config)) *node {
	t.Helper()
	if ks == nil {
		var err error
		if ks, err = keystore.GenerateMemory(); err != nil {
			t.Fatal(err)
		}
	}
	n := &node{ks: ks, in: make(chan []byte, 1024), hs: make(chan HandshakeEvent, 64), rej: make(chan RejectEvent, 1024), drop: make(chan DropEvent, 64)}
	cfg := Config{
		KeyStore: ks,
		Bind:     conn.NewStdNetBind(),
		Handler: HandlerFunc(func(b []InboundPacket) {
			for _, p := range b {
				select {
				case n.in <- append([]byte(nil), p.Data...):
				default:
				}
			}
		}),
		Hooks: Hooks{
			HandshakeCompleted: func(ev HandshakeEvent) {
				select {
				case n.hs <- ev:
				default:
				}
			},
			HandshakeRejected: func(ev RejectEvent) {
				select {
				case n.rej <- ev:
				default:
				}
			},
			PacketDropped: func(ev DropEvent) {
				select {
				case n.drop <- ev:
				default:
				}
			},
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Up(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	n.e = e
	return n
}

func (n *node) endpoint() netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), n.e.Port())
}

// wgGo is a golang.zx2c4.com/wireguard device on a channel TUN: the
// reference implementation, in process.
type wgGo struct {
	dev  *device.Device
	tun  *tuntest.ChannelTUN
	priv wgkey.Private
	pub  wgkey.Public
	port uint16
}

func newWgGo(t *testing.T, extra string) *wgGo {
	t.Helper()
	priv, _ := wgkey.NewPrivate()
	w := &wgGo{tun: tuntest.NewChannelTUN(), priv: priv, pub: priv.Public()}
	w.dev = device.NewDevice(w.tun.TUN(), conn.NewStdNetBind(), device.NewLogger(wgLogLevel, "wggo: "))
	cfg := fmt.Sprintf("private_key=%s\nlisten_port=0\n%s", hex.EncodeToString(priv[:]), extra)
	if err := w.dev.IpcSet(cfg); err != nil {
		t.Fatal(err)
	}
	if err := w.dev.Up(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.dev.Close)
	get, err := w.dev.IpcGet()
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(get))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "listen_port="); ok {
			p, _ := strconv.Atoi(v)
			w.port = uint16(p)
		}
	}
	return w
}

func (w *wgGo) set(t *testing.T, cfg string) {
	t.Helper()
	if err := w.dev.IpcSet(cfg); err != nil {
		t.Fatal(err)
	}
}

func (w *wgGo) endpoint() netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), w.port)
}

func peerUAPI(pub wgkey.Public, allowed string, endpoint netip.AddrPort, psk wgkey.Preshared) string {
	s := fmt.Sprintf("public_key=%s\nallowed_ip=%s\n", pub.Hex(), allowed)
	if endpoint.IsValid() {
		s += fmt.Sprintf("endpoint=%s\n", endpoint)
	}
	if !psk.IsZero() {
		s += fmt.Sprintf("preshared_key=%s\n", hex.EncodeToString(psk[:]))
	}
	return s
}

func recv(t testing.TB, ch <-chan []byte, what string) []byte {
	t.Helper()
	select {
	case b := <-ch:
		return b
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		return nil
	}
}

func ping(dst, src netip.Addr) []byte { return tuntest.Ping(dst, src) }

func checkPing(t testing.TB, b []byte, dst, src netip.Addr) {
	t.Helper()
	var ip packet.Parsed
	if err := ip.Decode(b); err != nil || ip.Src != src {
		t.Fatalf("packet source %v, want %v (%v)", ip.Src, src, err)
	}
	if got, ok := packet.Destination(b); !ok || got != dst {
		t.Fatalf("packet destination %v, want %v", got, dst)
	}
}

// countingStore counts DH calls per purpose; it proves the engine reaches
// the static key only through DH.
type countingStore struct {
	keystore.Store
	mu     sync.Mutex
	counts map[keystore.Purpose]int
	total  atomic.Int64
}

func newCountingStore(t testing.TB) *countingStore {
	ks, err := keystore.GenerateMemory()
	if err != nil {
		t.Fatal(err)
	}
	return &countingStore{Store: ks, counts: map[keystore.Purpose]int{}}
}

func (c *countingStore) DH(ctx context.Context, req keystore.DHRequest) ([32]byte, error) {
	c.mu.Lock()
	c.counts[req.Purpose]++
	c.mu.Unlock()
	c.total.Add(1)
	return c.Store.DH(ctx, req)
}

func (c *countingStore) count(p keystore.Purpose) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[p]
}

func pfx(a netip.Addr) []netip.Prefix { return []netip.Prefix{netip.PrefixFrom(a, a.BitLen())} }

// mapResolver resolves from a map; keys mapped to a config with Identity
// "denied" are refused.
type mapResolver map[wgkey.Public]PeerConfig

func (m mapResolver) ResolvePeer(_ context.Context, key wgkey.Public, _ netip.AddrPort) (PeerConfig, error) {
	pc, ok := m[key]
	if !ok {
		return PeerConfig{}, ErrUnknownPeer
	}
	if pc.Identity == "denied" {
		return PeerConfig{}, &DeniedError{Reason: "suspended"}
	}
	return pc, nil
}

var wgLogLevel = func() int {
	if os.Getenv("WGGO_VERBOSE") != "" {
		return device.LogLevelVerbose
	}
	return device.LogLevelSilent
}()

func netDial(ap netip.AddrPort) (*net.UDPConn, error) {
	return net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(ap))
}
