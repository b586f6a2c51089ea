// SPDX-License-Identifier: Apache-2.0

package engine

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/internal/netns"
	"github.com/wirefleet/wirefleet/keystore"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun"
)

// TestDebianWireGuardGo runs our engine on a kernel TUN in one network
// namespace and Debian's wireguard-go (configured with wg) in another: a
// real, separate WireGuard. Ping and TCP go through the tunnel, and the
// wireguard-go side roams to another link and address mid-transfer; the
// transfer carries on and our engine follows it.
func TestDebianWireGuardGo(t *testing.T) {
	env := netns.New(t)
	nsA, nsB := env.NewNS("a"), env.NewNS("b")
	env.Veth(nsA, netip.MustParsePrefix("10.210.0.1/24"), nsB, netip.MustParsePrefix("10.210.0.2/24"))
	_, link2B := env.Veth(nsA, netip.MustParsePrefix("10.211.0.1/24"), nsB, netip.MustParsePrefix("10.211.0.2/24"))
	innerA, innerB := netip.MustParseAddr("10.98.0.1"), netip.MustParseAddr("10.98.0.2")

	ks, _ := keystore.GenerateMemory()
	tunName := env.Name("t")
	var eng *Engine
	endpoints := make(chan EndpointEvent, 8)
	nsA.MustDo(func() error {
		dev, err := tun.CreateTUN(tunName, 1420)
		if err != nil {
			return fmt.Errorf("creating TUN: %w", err)
		}
		eng, err = New(Config{
			KeyStore: ks, Bind: conn.NewStdNetBind(), TUN: dev,
			Hooks: Hooks{EndpointChanged: func(ev EndpointEvent) { endpoints <- ev }},
		})
		if err != nil {
			dev.Close()
			return err
		}
		return eng.Up() // opens the UDP sockets in nsA
	})
	t.Cleanup(func() { eng.Close() })
	nsA.MustExec("ip", "addr", "add", netip.PrefixFrom(innerA, 24).String(), "dev", tunName)
	nsA.MustExec("ip", "link", "set", tunName, "up")

	wg := nsB.StartWireGuardGo("")
	wg.Configure(netns.Config{ListenPort: 51820, Peers: []netns.Peer{{
		PublicKey:  ks.PublicKey(),
		Endpoint:   netip.AddrPortFrom(netip.MustParseAddr("10.210.0.1"), eng.Port()),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.98.0.0/24")},
	}}})
	wg.AddAddr(netip.PrefixFrom(innerB, 24))
	wg.Up()
	p, err := eng.AddPeer(PeerConfig{PublicKey: wg.Public, AllowedIPs: pfx(innerB)})
	if err != nil {
		t.Fatal(err)
	}

	// Ping both ways: B initiates the handshake, then A pings back.
	if out, err := nsB.Exec("ping", "-c", "3", "-i", "0.2", "-W", "5", innerA.String()); err != nil {
		t.Fatalf("ping from wireguard-go to our engine: %v\n%s", err, out)
	}
	if out, err := nsA.Exec("ping", "-c", "3", "-i", "0.2", "-W", "5", innerB.String()); err != nil {
		t.Fatalf("ping from our engine to wireguard-go: %v\n%s", err, out)
	}
	if got := p.Endpoint(); got != netip.MustParseAddrPort("10.210.0.2:51820") {
		t.Fatalf("peer endpoint %v", got)
	}

	// TCP from B to A, with B roaming to its second link in the middle.
	var ln net.Listener
	nsA.MustDo(func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(innerA, 5001).String())
		return err
	})
	defer ln.Close()
	const chunk, total, moveAt = 16 << 10, 200, 60
	var mu sync.Mutex
	var moved bool
	type result struct {
		n, afterMove int64
		err          error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		defer func() { done <- r }()
		c, err := ln.Accept()
		if err != nil {
			r.err = err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(60 * time.Second))
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			for i := 0; i < n; i++ {
				if buf[i] != byte((r.n+int64(i))%251) {
					r.err = fmt.Errorf("byte %d corrupted", r.n+int64(i))
					return
				}
			}
			r.n += int64(n)
			mu.Lock()
			if moved {
				r.afterMove += int64(n)
			}
			mu.Unlock()
			if err == io.EOF {
				return
			}
			if err != nil {
				r.err = err
				return
			}
		}
	}()
	var c net.Conn
	nsB.MustDo(func() (err error) {
		c, err = net.DialTimeout("tcp", netip.AddrPortFrom(innerA, 5001).String(), 10*time.Second)
		return err
	})
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	buf := make([]byte, chunk)
	var sent int64
	for i := 0; i < total; i++ {
		for j := range buf {
			buf[j] = byte((sent + int64(j)) % 251)
		}
		if _, err := c.Write(buf); err != nil {
			t.Fatalf("write after %d bytes: %v", sent, err)
		}
		sent += chunk
		if i == moveAt {
			mu.Lock()
			moved = true
			mu.Unlock()
			// Like a device leaving Wi-Fi for cellular: a new link, a new
			// source address, the old one gone.
			env.ReplaceRoute(nsB, "10.210.0.1/32", "via", "10.211.0.1", "dev", link2B.Name)
			nsB.MustExec("ip", "addr", "flush", "dev", linkName(t, nsB, "10.210.0.2"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.(*net.TCPConn).CloseWrite()
	r := <-done
	if r.err != nil {
		t.Fatalf("receiver after %d bytes: %v", r.n, r.err)
	}
	if r.n != sent {
		t.Fatalf("received %d bytes, sent %d", r.n, sent)
	}
	if min := int64(total-moveAt-1) * chunk / 2; r.afterMove < min {
		t.Fatalf("only %d bytes arrived after the move, want at least %d", r.afterMove, min)
	}
	want := netip.MustParseAddrPort("10.211.0.2:51820")
	if got := p.Endpoint(); got != want {
		t.Fatalf("endpoint after roaming %v, want %v", got, want)
	}
	select {
	case ev := <-endpoints:
		if ev.New != want || ev.Peer != p {
			t.Fatalf("endpoint event %+v", ev)
		}
	default:
		t.Fatal("no endpoint-changed event")
	}
}

// linkName returns the interface in ns that holds addr.
func linkName(t *testing.T, ns *netns.NS, addr string) string {
	t.Helper()
	for _, line := range strings.Split(ns.MustExec("ip", "-o", "-4", "addr", "show"), "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && strings.HasPrefix(f[3], addr+"/") {
			return strings.TrimSuffix(f[1], "@")
		}
	}
	t.Fatalf("no interface with %s", addr)
	return ""
}
