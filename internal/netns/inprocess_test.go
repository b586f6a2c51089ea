// SPDX-License-Identifier: Apache-2.0

package netns_test

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"

	"github.com/wirefleet/wirefleet/internal/memtun"
	"github.com/wirefleet/wirefleet/internal/netns"
	"github.com/wirefleet/wirefleet/wgkey"
)

// TestInProcessEngineTalksToWireGuardGo is the template of an interop test:
// an in-process engine (here golang.zx2c4.com/wireguard's device, standing in
// for ours) listens in the root namespace on the root end of a veth the test
// made; Debian's wireguard-go runs in a namespace at the other end. A UDP
// socket inside the namespace (opened through NS.Do) sends through the tunnel;
// the engine's memtun.Chan hands the inner packet to the test, which answers
// it; the answer comes back through the tunnel to the socket.
func TestInProcessEngineTalksToWireGuardGo(t *testing.T) {
	env := netns.New(t)
	ns := env.NewNS("p")
	rootEnd, _ := env.Veth(nil, netip.MustParsePrefix("10.203.0.1/24"), ns, netip.MustParsePrefix("10.203.0.2/24"))
	wg := ns.StartWireGuardGo("")

	engineKey, err := wgkey.NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	tunDev := memtun.NewChan(0, 0, 64)
	dev := device.NewDevice(tunDev, conn.NewStdNetBind(), device.NewLogger(device.LogLevelError, "engine: "))
	defer dev.Close()
	engineInner, peerInner := netip.MustParseAddr("10.98.0.1"), netip.MustParseAddr("10.98.0.2")
	// listen_port=0: the root namespace is shared with everything else on the
	// machine, so take a free port and read it back.
	if err := dev.IpcSet(fmt.Sprintf("private_key=%x\nlisten_port=0\npublic_key=%x\nallowed_ip=%s/32\n",
		engineKey[:], wg.Public[:], peerInner)); err != nil {
		t.Fatal(err)
	}
	if err := dev.Up(); err != nil {
		t.Fatal(err)
	}
	uapi, err := dev.IpcGet()
	if err != nil {
		t.Fatal(err)
	}
	var enginePort uint16
	for _, line := range strings.Split(uapi, "\n") {
		if v, ok := strings.CutPrefix(line, "listen_port="); ok {
			fmt.Sscan(v, &enginePort)
		}
	}
	if enginePort == 0 {
		t.Fatalf("no listen port in %q", uapi)
	}

	wg.Configure(netns.Config{Peers: []netns.Peer{{
		PublicKey:  engineKey.Public(),
		Endpoint:   netip.AddrPortFrom(rootEnd.Addr(), enginePort),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.98.0.0/24")},
	}}})
	wg.AddAddr(netip.PrefixFrom(peerInner, 24))
	wg.Up()

	var sock *net.UDPConn
	ns.MustDo(func() (err error) {
		sock, err = net.ListenUDP("udp4", &net.UDPAddr{IP: peerInner.AsSlice(), Port: 7000})
		return err
	})
	defer sock.Close()
	if _, err := sock.WriteToUDP([]byte("hello engine"), &net.UDPAddr{IP: engineInner.AsSlice(), Port: 7}); err != nil {
		t.Fatal(err)
	}

	var inner []byte
	select {
	case inner = <-tunDev.Out():
	case <-time.After(10 * time.Second):
		t.Fatal("no inner packet reached the engine")
	}
	if len(inner) < 28 || inner[9] != 17 || netip.AddrFrom4([4]byte(inner[12:16])) != peerInner ||
		netip.AddrFrom4([4]byte(inner[16:20])) != engineInner || string(inner[28:]) != "hello engine" {
		t.Fatalf("unexpected inner packet % x", inner)
	}

	// Answer like an echo service: swap addresses and ports, new payload.
	payload := []byte("hello wireguard-go")
	reply := memtun.UDPPacket(netip.AddrPortFrom(engineInner, 7),
		netip.AddrPortFrom(peerInner, binary.BigEndian.Uint16(inner[20:])), 28+len(payload))
	copy(reply[28:], payload)
	tunDev.Send(reply)

	_ = sock.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 100)
	n, from, err := sock.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("no answer through the tunnel: %v", err)
	}
	if string(buf[:n]) != string(payload) || from.AddrPort() != netip.AddrPortFrom(engineInner, 7) {
		t.Fatalf("answer %q from %v", buf[:n], from)
	}
	if !strings.Contains(wg.Show("endpoints"), rootEnd.Addr().String()) {
		t.Fatalf("wireguard-go endpoints: %s", wg.Show("endpoints"))
	}
}
