// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store/pgstore"
	"github.com/wirefleet/wirefleet/controlplane/store/pgstore/pgtest"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/packet"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

// Two wirefleetd on one PostgreSQL: the gateway runs on the first, the
// operator suspends the SIM through the second; the session still ends
// within a second (the change reaches the gateway through the database's
// notifications). The device is golang.zx2c4.com/wireguard over 127.0.0.1.
func TestRevocationFromAnotherProcess(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st1, err := pgstore.Open(ctx, dsn, log)
	if err != nil {
		t.Fatal(err)
	}
	defer st1.Close()
	st2, err := pgstore.Open(ctx, dsn, log)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	ks, _ := keystore.GenerateMemory()
	gwKey := func() wgkey.Public { return ks.PublicKey() }
	svc1 := controlplane.New(st1, controlplane.Config{GatewayPublicKey: gwKey, Logger: log})
	svc2 := controlplane.New(st2, controlplane.Config{GatewayPublicKey: gwKey, Logger: log})
	gw, err := New(Config{ControlPlane: svc1, KeyStore: ks, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	defer gw.Close()

	devKey, _ := wgkey.NewPrivate()
	sim, _, err := svc2.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{PublicKey: devKey.Public()})
	if err != nil {
		t.Fatal(err)
	}
	tunDev, _ := memDevice(t, devKey, ks.PublicKey(), gw.Port(), "")
	echo := func() bool {
		tunDev.Send(echoRequest(sim.Address, MetadataAddr))
		select {
		case <-tunDev.Out():
			return true
		case <-time.After(2 * time.Second):
			return false
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for !echo() {
		if time.Now().After(deadline) {
			t.Fatalf("no echo reply from the metadata address; %+v", gw.Engine().Counters())
		}
	}
	if _, err := svc2.SetSIMStatus(ctx, controlplane.System, sim.ID, fleet.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	waitFor(t, "the peer to be removed", func() bool { return gw.Engine().Peer(devKey.Public()) == nil })
	if d := time.Since(t0); d > time.Second {
		t.Fatalf("suspension by another process took %v to end the session", d)
	}
	t.Logf("session ended %v after the other process's suspension", time.Since(t0).Round(time.Millisecond))
	if echo() {
		t.Fatal("a suspended SIM still gets answers")
	}
}

// echoRequest builds an ICMP echo request with valid checksums.
func echoRequest(src, dst netip.Addr) []byte {
	pkt := make([]byte, 20+8+8)
	pkt[0] = 0x45
	binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
	pkt[8], pkt[9] = 64, packet.ICMP
	s, d := src.As4(), dst.As4()
	copy(pkt[12:], s[:])
	copy(pkt[16:], d[:])
	binary.BigEndian.PutUint16(pkt[10:], packet.Checksum(pkt[:20]))
	icmp := pkt[20:]
	icmp[0] = 8
	binary.BigEndian.PutUint16(icmp[4:], 0x77)
	binary.BigEndian.PutUint16(icmp[2:], packet.Checksum(icmp))
	return pkt
}
