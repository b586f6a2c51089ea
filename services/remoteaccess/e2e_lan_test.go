// SPDX-License-Identifier: Apache-2.0

package remoteaccess_test

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/services/remoteaccess"
)

// An operator reaches a host on a LAN behind a router through a mapping
// whose target is the host's mapped address: the host sees the platform's
// remote-access address, the bytes go both ways; a target on no LAN of
// the SIM is refused.
func TestRemoteAccessToLANHost(t *testing.T) {
	f := newFixture(t, controlplane.RemotePolicy{})
	ctx := context.Background()
	router := f.newDevice()
	lan := f.env.NewNS("lan")
	f.env.Veth(router.ns, netip.MustParsePrefix("192.168.1.1/24"), lan, netip.MustParsePrefix("192.168.1.10/24"))
	f.env.AddRoute(lan, "default", "via", "192.168.1.1")
	router.ns.MustExec("sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
	r, err := f.svc.AddSIMRoute(ctx, f.admin, router.sim.ID, controlplane.RouteSpec{Prefix: netip.MustParsePrefix("192.168.1.0/24"), Map: true})
	if err != nil {
		t.Fatal(err)
	}
	a4 := r.Mapped.Addr().As4()
	host := netip.AddrFrom4([4]byte{a4[0], a4[1], a4[2], 10})

	// The LAN host's service: a greeting, then an echo; it reports who called.
	seen := make(chan netip.AddrPort, 4)
	var ln net.Listener
	lan.MustDo(func() (err error) {
		ln, err = net.Listen("tcp", "192.168.1.10:7022")
		return err
	})
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			seen <- netip.MustParseAddrPort(c.RemoteAddr().String())
			go func() {
				defer c.Close()
				io.WriteString(c, greeting)
				io.Copy(c, c)
			}()
		}
	}()

	op := f.newOperator(1)
	if _, err := f.svc.CreateMapping(ctx, f.admin, controlplane.MappingSpec{SIMID: router.sim.ID, Port: 7022, Target: netip.MustParseAddr("10.99.0.1"),
		AllowedSources: []netip.Prefix{netip.PrefixFrom(op.addr, 32)}}); !isCode(err, fleet.CodeInvalid, "target") {
		t.Fatalf("a target on no LAN of the SIM: %v", err)
	}
	m, err := f.svc.CreateMapping(ctx, f.admin, controlplane.MappingSpec{SIMID: router.sim.ID, Port: 7022, Target: host,
		AllowedSources: []netip.Prefix{netip.PrefixFrom(op.addr, 32)}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Target != host {
		t.Fatalf("mapping %+v", m)
	}
	f.waitListening(m.ID, true)
	c, err := op.dial(m.PublicPort)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if g, err := readGreeting(c); err != nil || g != greeting {
		t.Fatalf("greeting from the LAN host: %q %v", g, err)
	}
	select {
	case src := <-seen:
		if src.Addr() != remoteaccess.DefaultSource {
			t.Fatalf("the LAN host saw %s, want %s", src, remoteaccess.DefaultSource)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the LAN host saw no connection")
	}
	payload := make([]byte, 200_000)
	for i := range payload {
		payload[i] = byte(i)
	}
	go c.Write(payload)
	got := make([]byte, len(payload))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != string(payload) {
		t.Fatalf("echo through the LAN: %v", err)
	}
}

// A mapping to the device's own IPv6 address: an operator's connection
// reaches a service the device offers on IPv6 alone, from the IPv6 twin
// of the remote-access source; the mapping's check names the field for
// an IPv6 address that is not the SIM's.
func TestRemoteAccessOverIPv6(t *testing.T) {
	f := newFixture(t, controlplane.RemotePolicy{})
	ctx := context.Background()
	d := f.newDevice()
	o6, err := f.svc.Overlay6(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a6 := o6.Addr(d.sim.Address)
	d.wg.AddAddr(netip.PrefixFrom(a6, 128))
	seen := make(chan netip.AddrPort, 4)
	var ln net.Listener
	d.ns.MustDo(func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(a6, 7023).String())
		return err
	})
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			seen <- netip.MustParseAddrPort(c.RemoteAddr().String())
			go func() {
				defer c.Close()
				io.WriteString(c, greeting)
				io.Copy(c, c)
			}()
		}
	}()
	op := f.newOperator(1)
	if _, err := f.svc.CreateMapping(ctx, f.admin, controlplane.MappingSpec{SIMID: d.sim.ID, Port: 7023, Target: o6.Addr(netip.MustParseAddr("10.128.255.1")),
		AllowedSources: []netip.Prefix{netip.PrefixFrom(op.addr, 32)}}); !isCode(err, fleet.CodeInvalid, "target") {
		t.Fatalf("another SIM's IPv6 address as target: %v", err)
	}
	m, err := f.svc.CreateMapping(ctx, f.admin, controlplane.MappingSpec{SIMID: d.sim.ID, Port: 7023, Target: a6,
		AllowedSources: []netip.Prefix{netip.PrefixFrom(op.addr, 32)}})
	if err != nil {
		t.Fatal(err)
	}
	f.waitListening(m.ID, true)
	c, err := op.dial(m.PublicPort)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if g, err := readGreeting(c); err != nil || g != greeting {
		t.Fatalf("greeting over IPv6: %q %v", g, err)
	}
	select {
	case src := <-seen:
		if want := o6.Addr(remoteaccess.DefaultSource); src.Addr() != want {
			t.Fatalf("the device saw %s, want %s", src, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the device saw no connection")
	}
}
