// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/gateway/monitor"
	"github.com/wirefleet/wirefleet/keyproof"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

// The key of an online SIM replaced from outside its tunnel (an operator
// here; an auth key where a group allows Arc re-keys without proof) raises
// a key-replaced alert; the device's own rotation — announced over the
// tunnel, completed by a handshake with the new key — does not.
func TestKeyReplacedAlert(t *testing.T) {
	f := newFixture(t)
	grp := f.group("g", fleet.GroupSettings{})
	a := f.newDevice(grp.ID)
	if err := a.ping(MetadataAddr.String(), 1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// The device rotates: announce the next key in the tunnel, switch.
	next, err := wgkey.NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	out, err := a.curl("-X", "PUT", "-d", `{"publicKey":"`+next.Public().String()+`"}`, "http://"+MetadataAddr.String()+"/v1/subscriber/key")
	if err != nil || !strings.HasSuffix(out, "200") {
		t.Fatalf("announcing the next key: %v %s", err, out)
	}
	a.wg.Private, a.wg.Public = next, next.Public()
	a.configure()
	if err := a.pingUntil(MetadataAddr.String(), 10*time.Second); err != nil {
		t.Fatalf("the next key does not connect: %v", err)
	}
	waitFor(t, "the rotation completed", func() bool {
		sim, err := f.svc.View().SIM(ctx, a.sim.ID)
		return err == nil && sim.PublicKey == next.Public() && sim.NextPublicKey.IsZero()
	})
	// The old key's session is revoked by that change; give the feed time.
	time.Sleep(500 * time.Millisecond)
	if kinds := f.alerts(a.sim.ID); contains(kinds, monitor.KindKeyReplaced) {
		t.Fatalf("the device's own rotation raised %v", kinds)
	}

	// An operator replaces the key under the live session.
	other, _ := wgkey.NewPrivate()
	if _, _, err := f.svc.SetSIMKey(ctx, f.admin, a.sim.ID, controlplane.KeySpec{PublicKey: other.Public()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a key-replaced alert", func() bool { return contains(f.alerts(a.sim.ID), monitor.KindKeyReplaced) })
	p, _ := f.svc.ListEvents(ctx, f.admin, store.EventFilter{ObjectID: a.sim.ID, Action: "device.alert"})
	for _, ev := range p.Items {
		if ev.Details["kind"] == monitor.KindKeyReplaced {
			ev2, _ := ev.Details["evidence"].(map[string]any)
			if ev2["oldKey"] != next.Public().String() || ev2["newKey"] != other.Public().String() {
				t.Fatalf("evidence %v", ev.Details)
			}
		}
	}
	waitForWithin(t, 5*time.Second, "the replaced key's session ended", func() bool { return !a.connection().Online })
	for _, ev := range p.Items {
		if ev.Details["kind"] == monitor.KindKeyReplaced {
			if e, _ := ev.Details["evidence"].(map[string]any); e["actor"] != f.admin.String() {
				t.Fatalf("the alert does not name who set the key: %v", ev.Details)
			}
		}
	}

	// A device re-keying through the Arc route with a proof made by its
	// current key did it itself: no alert.
	n := f.nDev + 1
	f.nDev = n
	b := &device{f: f, ns: f.env.NewNS(fmt.Sprintf("d%d", n))}
	b.gwLink, b.link = f.join(b.ns, netip.MustParsePrefix(fmt.Sprintf("10.230.%d.2/16", n)))
	b.wg = b.ns.StartWireGuardGo("")
	_, secret, err := f.svc.CreateAuthKey(ctx, f.admin, controlplane.AuthKeySpec{GroupID: grp.ID})
	if err != nil {
		t.Fatal(err)
	}
	if b.sim, _, err = f.svc.Bootstrap(ctx, controlplane.BootstrapRequest{AuthKey: secret, PublicKey: b.wg.Public}); err != nil {
		t.Fatal(err)
	}
	b.configure()
	if err := b.pingUntil(MetadataAddr.String(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	k, err := f.svc.UsableAuthKey(ctx, b.sim.AuthKeyID)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := f.svc.KeyProofChallenge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fresh, _ := wgkey.NewPrivate()
	proof, err := keyproof.Answer(ctx, keystore.NewMemory(b.wg.Private), keyproof.Statement{Purpose: keyproof.Rekey, Nonce: ch.Nonce, ServerKey: ch.ServerKey, SIMID: b.sim.ID, NewKey: fresh.Public()})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.ScopedRekey(ctx, k, b.sim.ID, fresh.Public(), &keyproof.Reply{Nonce: ch.Nonce, Proof: proof}); err != nil {
		t.Fatal(err)
	}
	waitForWithin(t, 5*time.Second, "the old key's session ended", func() bool { return !b.connection().Online })
	time.Sleep(500 * time.Millisecond) // the alert, if any, is raised off the feed's goroutine
	if kinds := f.alerts(b.sim.ID); contains(kinds, monitor.KindKeyReplaced) {
		t.Fatalf("a proved re-key by the device raised %v", kinds)
	}
}
