// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/gateway/monitor"
	"github.com/wirefleet/wirefleet/wgkey"
)

// A group whose security action is "rotate": an alert (a scan) requires
// the SIM's key to be replaced; the device reads that in its metadata;
// past the deadline its session ends and the old key is refused; a new key
// connects again (and clears the requirement).
func TestRequiredRotation(t *testing.T) {
	f := newFixture(t)
	grp := f.group("g", fleet.GroupSettings{
		DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup},
		Security:       fleet.SecurityProfile{Action: fleet.ActionRotate, ActOn: []string{monitor.KindFanout}, RotateWithinHours: 6},
	})
	a := f.newDevice(grp.ID)
	if err := a.ping(MetadataAddr.String(), 1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	a.ns.MustDo(func() error { // a scan: 50 addresses
		for i := 1; i <= 50; i++ {
			c, err := net.Dial("udp", netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 128, 3, byte(i)}), 22).String())
			if err != nil {
				return err
			}
			c.Write([]byte("probe"))
			c.Close()
		}
		return nil
	})
	ctx := context.Background()
	var sim fleet.SIM
	waitFor(t, "the rotation required", func() bool {
		var err error
		sim, err = f.svc.View().SIM(ctx, a.sim.ID)
		return err == nil && !sim.RotateBy.IsZero()
	})
	if d := time.Until(sim.RotateBy); d < 5*time.Hour || d > 6*time.Hour {
		t.Fatalf("deadline in %v, want the profile's 6 h", d)
	}
	out, err := a.curl("http://" + MetadataAddr.String() + "/v1/subscriber")
	if err != nil || !strings.Contains(out, `"keyRotationRequired":true`) {
		t.Fatalf("metadata does not tell the device: %v %s", err, out)
	}
	if err := a.ping(MetadataAddr.String(), 1, 5*time.Second); err != nil {
		t.Fatal("the session must live until the deadline")
	}

	// The deadline comes (moved close, as hours pass): the session ends.
	err = f.st.Update(ctx, func(tx store.Tx) error {
		s, err := tx.SIM(ctx, a.sim.ID)
		if err != nil {
			return err
		}
		s.RotateBy = time.Now().Add(time.Second)
		tx.Publish(fleet.Change{Kind: fleet.ChangeSIM, ID: s.ID})
		return tx.UpdateSIM(ctx, s)
	})
	if err != nil {
		t.Fatal(err)
	}
	waitForWithin(t, 10*time.Second, "the overdue session ended", func() bool { return !a.connection().Online })
	if err := a.ping(MetadataAddr.String(), 2, 2*time.Second); err == nil {
		t.Fatal("the overdue key still reaches the platform")
	}
	waitFor(t, "a rotation_overdue event", func() bool {
		p, _ := f.svc.ListEvents(ctx, f.admin, store.EventFilter{ObjectID: a.sim.ID, Action: "device.rotation_overdue"})
		return len(p.Items) == 1
	})

	// The operator (or the device, before the deadline) gives it a new key.
	priv, err := wgkey.NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	a.wg.Private, a.wg.Public = priv, priv.Public()
	if sim, _, err = f.svc.SetSIMKey(ctx, f.admin, a.sim.ID, controlplane.KeySpec{PublicKey: a.wg.Public}); err != nil {
		t.Fatal(err)
	}
	if !sim.RotateBy.IsZero() || time.Since(sim.KeySet) > time.Minute {
		t.Fatalf("a new key must clear the deadline and restart the key's age: %+v", sim)
	}
	a.configure()
	if err := a.pingUntil(MetadataAddr.String(), 10*time.Second); err != nil {
		t.Fatalf("the new key does not connect: %v", err)
	}
}
