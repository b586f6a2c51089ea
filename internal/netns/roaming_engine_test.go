// SPDX-License-Identifier: Apache-2.0

package netns_test

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"

	"github.com/wirefleet/wirefleet/internal/memtun"
	"github.com/wirefleet/wirefleet/internal/netns"
	"github.com/wirefleet/wirefleet/wgkey"
)

// TestEngineFollowsRoamingWireGuardGo is the template of the roaming interop
// test: Debian's wireguard-go in a namespace streams UDP through the tunnel to
// an in-process engine (golang.zx2c4.com/wireguard's device standing in for
// ours) in the root namespace, which echoes every datagram. Mid-stream the
// namespace moves to a second uplink and loses its first address; the engine
// must follow it to the new endpoint and the echoes must continue.
func TestEngineFollowsRoamingWireGuardGo(t *testing.T) {
	env := netns.New(t)
	ns := env.NewNS("r")
	up1 := env.Uplink(ns, netip.MustParsePrefix("10.204.1.0/30"))
	up2 := env.Uplink(ns, netip.MustParsePrefix("10.204.2.0/30"))
	engineAddr := up1.RootAddr() // the engine listens on all addresses; this is the one the peer uses
	up1.RouteTo(engineAddr)
	wg := ns.StartWireGuardGo("")

	engineKey, err := wgkey.NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	tunDev := memtun.NewChan(0, 0, 256)
	dev := device.NewDevice(tunDev, conn.NewStdNetBind(), device.NewLogger(device.LogLevelError, "engine: "))
	defer dev.Close()
	engineInner, peerInner := netip.MustParseAddr("10.97.0.1"), netip.MustParseAddr("10.97.0.2")
	if err := dev.IpcSet(fmt.Sprintf("private_key=%x\nlisten_port=0\npublic_key=%x\nallowed_ip=%s/32\n",
		engineKey[:], wg.Public[:], peerInner)); err != nil {
		t.Fatal(err)
	}
	if err := dev.Up(); err != nil {
		t.Fatal(err)
	}
	port := uapiValue(t, dev, "listen_port")
	wg.Configure(netns.Config{Peers: []netns.Peer{{
		PublicKey:  engineKey.Public(),
		Endpoint:   netip.MustParseAddrPort(fmt.Sprintf("%s:%s", engineAddr, port)),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.97.0.0/24")},
	}}})
	wg.AddAddr(netip.PrefixFrom(peerInner, 24))
	wg.Up()

	// The engine side: echo every inner UDP datagram back to its sender.
	go func() {
		for {
			p, ok := tunDev.Recv()
			if !ok {
				return
			}
			if len(p) < 28 || p[9] != 17 {
				continue
			}
			src := netip.AddrPortFrom(netip.AddrFrom4([4]byte(p[12:16])), binary.BigEndian.Uint16(p[20:]))
			dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte(p[16:20])), binary.BigEndian.Uint16(p[22:]))
			reply := memtun.UDPPacket(dst, src, len(p))
			copy(reply[28:], p[28:])
			tunDev.Send(reply)
		}
	}()

	var sock *net.UDPConn
	ns.MustDo(func() (err error) {
		sock, err = net.ListenUDP("udp4", &net.UDPAddr{IP: peerInner.AsSlice()})
		return err
	})
	defer sock.Close()
	var echoes atomic.Int64
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := sock.Read(buf); err != nil {
				return
			}
			echoes.Add(1)
		}
	}()
	target := &net.UDPAddr{IP: engineInner.AsSlice(), Port: 7}
	send := func(n int) {
		for i := 0; i < n; i++ {
			if _, err := sock.WriteToUDP([]byte(fmt.Sprintf("seq %d", i)), target); err != nil {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	send(100)
	before := echoes.Load()
	if before < 50 {
		t.Fatalf("only %d of 100 datagrams echoed before roaming", before)
	}
	if ep := uapiValue(t, dev, "endpoint"); ep != fmt.Sprintf("%s:%d", up1.InnerAddr(), wg.ListenPort()) {
		t.Fatalf("engine's endpoint before roaming %s, want %s:%d", ep, up1.InnerAddr(), wg.ListenPort())
	}

	up2.RouteTo(engineAddr)
	up1.Cut()
	send(100)
	time.Sleep(200 * time.Millisecond)
	after := echoes.Load() - before
	if after < 80 {
		t.Fatalf("only %d of 100 datagrams echoed after roaming", after)
	}
	if ep := uapiValue(t, dev, "endpoint"); ep != fmt.Sprintf("%s:%d", up2.InnerAddr(), wg.ListenPort()) {
		t.Fatalf("engine's endpoint after roaming %s, want %s:%d", ep, up2.InnerAddr(), wg.ListenPort())
	}
}

// uapiValue returns the first value of key in the device's UAPI dump.
func uapiValue(t *testing.T, dev *device.Device, key string) string {
	t.Helper()
	dump, err := dev.IpcGet()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(dump, "\n") {
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			return v
		}
	}
	t.Fatalf("no %s in UAPI dump", key)
	return ""
}
