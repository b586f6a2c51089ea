// SPDX-License-Identifier: Apache-2.0

package remoteaccess_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	wgdevice "golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/netstack"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/controlplane/store/pgstore"
	"github.com/wirefleet/wirefleet/controlplane/store/pgstore/pgtest"
	"github.com/wirefleet/wirefleet/gateway"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/services/platform"
	"github.com/wirefleet/wirefleet/services/remoteaccess"
	"github.com/wirefleet/wirefleet/wgkey"
)

// node is one wirefleetd's worth: a store connection, the control plane, a
// gateway and its remote-access service, on loopback.
type node struct {
	svc    *controlplane.Service
	gw     *gateway.Gateway
	remote *remoteaccess.Service
	host   string
}

// The ports are below Linux's ephemeral range (32768-60999), where an
// outgoing connection of any other program could hold one.
func startNode(t *testing.T, dsn, host string, ks keystore.Store, log *slog.Logger) *node {
	ctx := context.Background()
	st, err := pgstore.Open(ctx, dsn, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	n := &node{host: host}
	n.svc = controlplane.New(st, controlplane.Config{GatewayPublicKey: func() wgkey.Public { return ks.PublicKey() }, Logger: log,
		Remote: controlplane.RemotePolicy{Host: "remote.example", PortMin: 20400, PortMax: 20409}})
	n.remote = remoteaccess.New(remoteaccess.Config{ListenHost: host, Logger: log, Resync: time.Hour, ControlPlane: n.svc})
	n.gw, err = gateway.New(gateway.Config{ControlPlane: n.svc, KeyStore: ks, Logger: log, Services: []platform.Service{n.remote}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.gw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.gw.Close() })
	return n
}

func (n *node) listening(id string) bool {
	for _, l := range n.remote.Listening() {
		if l == id {
			return true
		}
	}
	return false
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTwoNodesOnePostgres: two wirefleetd sharing PostgreSQL both listen on
// a mapping made through either; the one whose gateway holds the device's
// session carries the connection, the other refuses it as sim-offline;
// a delete through one closes both; an expiry (with a third node by
// then) closes it on all three and is recorded once. The device is golang.zx2c4.com/wireguard on a userspace stack,
// over 127.0.0.1.
func TestTwoNodesOnePostgres(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ks, _ := keystore.GenerateMemory()
	a := startNode(t, dsn, "127.0.0.1", ks, log)
	b := startNode(t, dsn, "127.0.0.2", ks, log)

	// The device, connected to node a.
	devKey, _ := wgkey.NewPrivate()
	sim, _, err := b.svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{PublicKey: devKey.Public()})
	if err != nil {
		t.Fatal(err)
	}
	tunDev, tnet, err := netstack.CreateNetTUN([]netip.Addr{sim.Address}, nil, 1420)
	if err != nil {
		t.Fatal(err)
	}
	dev := wgdevice.NewDevice(tunDev, conn.NewStdNetBind(), wgdevice.NewLogger(wgdevice.LogLevelError, "dev: "))
	defer dev.Close()
	gwPub := ks.PublicKey()
	if err := dev.IpcSet(fmt.Sprintf("private_key=%x\nlisten_port=0\npublic_key=%x\nendpoint=127.0.0.1:%d\nallowed_ip=100.127.0.0/16\npersistent_keepalive_interval=1\n", devKey[:], gwPub[:], a.gw.Port())); err != nil {
		t.Fatal(err)
	}
	if err := dev.Up(); err != nil {
		t.Fatal(err)
	}
	ln, err := tnet.ListenTCPAddrPort(netip.AddrPortFrom(sim.Address, devPort))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	seen := make(chan net.Addr, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			seen <- c.RemoteAddr()
			io.WriteString(c, greeting)
			c.Close()
		}
	}()
	waitUntil(t, "the device's session on node a", func() bool { return a.gw.Connection(sim.ID).Online })

	m, err := b.svc.CreateMapping(ctx, controlplane.System, controlplane.MappingSpec{SIMID: sim.ID, Port: devPort,
		AllowedSources: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "both nodes listening", func() bool { return a.listening(m.ID) && b.listening(m.ID) })
	dial := func(n *node) (string, error) {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(n.host, fmt.Sprint(m.PublicPort)), 5*time.Second)
		if err != nil {
			return "", err
		}
		defer c.Close()
		return readGreeting(c)
	}
	if g, err := dial(a); err != nil || g != greeting {
		t.Fatalf("through node a (holding the session): %q %v", g, err)
	}
	if src := <-seen; netip.MustParseAddrPort(src.String()).Addr() != remoteaccess.DefaultSource {
		t.Fatalf("device saw %s", src)
	}
	if g, _ := dial(b); g != "" {
		t.Fatalf("node b carried a connection to a device it has no session with: %q", g)
	}
	waitUntil(t, "node b's sim-offline refusal in the trail", func() bool {
		p, _ := a.svc.ListEvents(ctx, controlplane.System, store.EventFilter{ObjectID: m.ID, Action: "mapping.deny"})
		return len(p.Items) > 0 && p.Items[0].Details["reason"] == remoteaccess.DenyOffline
	})

	// Deleted through a: both close.
	if err := a.svc.DeleteMapping(ctx, controlplane.System, m.ID); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "both nodes closing the deleted mapping", func() bool { return !a.listening(m.ID) && !b.listening(m.ID) })

	// Expiry, with a third node: all close, one expiry event.
	c := startNode(t, dsn, "127.0.0.3", ks, log)
	short, err := a.svc.CreateMapping(ctx, controlplane.System, controlplane.MappingSpec{SIMID: sim.ID, Port: devPort, Duration: 2 * time.Second,
		AllowedSources: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the three nodes listening", func() bool { return a.listening(short.ID) && b.listening(short.ID) && c.listening(short.ID) })
	waitUntil(t, "the three nodes closing at expiry", func() bool {
		return !a.listening(short.ID) && !b.listening(short.ID) && !c.listening(short.ID)
	})
	time.Sleep(500 * time.Millisecond)
	p, err := a.svc.ListEvents(ctx, controlplane.System, store.EventFilter{ObjectID: short.ID, Action: "mapping.expire"})
	if err != nil || len(p.Items) != 1 {
		t.Fatalf("expiry events: %+v %v (want exactly one)", p.Items, err)
	}
}
