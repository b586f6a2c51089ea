// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/gateway/monitor"
	"github.com/wirefleet/wirefleet/gateway/monitor/webhook"
)

// alerts returns the SIM's monitor alerts from the audit trail.
func (f *fixture) alerts(simID string) []string {
	p, err := f.svc.ListEvents(context.Background(), f.admin, store.EventFilter{ObjectID: simID, Action: "device.alert"})
	if err != nil {
		f.t.Fatal(err)
	}
	var kinds []string
	for _, ev := range p.Items {
		kinds = append(kinds, fmt.Sprint(ev.Details["kind"]))
	}
	return kinds
}

// Two Debian wireguard-go instances use one SIM's key from two addresses:
// a cloned-key alert reaches the audit trail within 10 s. A device that
// roams once raises nothing.
func TestClonedKeyAlert(t *testing.T) {
	f := newFixture(t)
	// The group's profile: quarantine, and a signed webhook.
	type delivery struct {
		body      []byte
		signature string
		timestamp string
	}
	hooks := make(chan delivery, 8)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hooks <- delivery{b, r.Header.Get(webhook.SignatureHeader), r.Header.Get(webhook.TimestampHeader)}
	}))
	defer receiver.Close()
	const secret = "webhook-secret-0123456789"
	quarantine := f.group("quarantine", fleet.GroupSettings{})
	grp := f.group("g", fleet.GroupSettings{Security: fleet.SecurityProfile{
		Action: fleet.ActionQuarantine, QuarantineGroup: "quarantine", WebhookURL: receiver.URL, WebhookSecret: secret}})
	a := f.newDevice(grp.ID)
	if err := a.ping(MetadataAddr.String(), 1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// The clone: another host, the same private key, the same export.
	f.nDev++
	clone := &device{f: f, ns: f.env.NewNS(fmt.Sprintf("d%d", f.nDev)), sim: a.sim}
	clone.gwLink, clone.link = f.join(clone.ns, netip.MustParsePrefix(fmt.Sprintf("10.230.%d.2/16", f.nDev)))
	clone.wg = clone.ns.StartWireGuardGo("")
	clone.wg.Private, clone.wg.Public = a.wg.Private, a.wg.Public
	clone.configure()

	start := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	for _, d := range []*device{a, clone} {
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				d.ns.Exec("ping", "-c", "3", "-i", "0.2", "-W", "1", "-n", MetadataAddr.String())
			}
		}()
	}
	for {
		if kinds := f.alerts(a.sim.ID); contains(kinds, monitor.KindClonedKey) {
			t.Logf("cloned-key alert after %v", time.Since(start).Round(time.Millisecond))
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("no cloned-key alert within 10 s; alerts %v", f.alerts(a.sim.ID))
		}
		time.Sleep(100 * time.Millisecond)
	}

	// With that profile, the SIM is quarantined...
	waitForWithin(t, 10*time.Second, "the SIM quarantined", func() bool {
		sim, err := f.svc.View().SIM(context.Background(), a.sim.ID)
		return err == nil && sim.GroupID == quarantine.ID
	})
	// ...and the webhook receiver got the alert, validly signed.
	select {
	case d := <-hooks:
		ts, _ := strconv.ParseInt(d.timestamp, 10, 64)
		if want := webhook.Sign(secret, ts, d.body); d.signature != want {
			t.Fatalf("webhook signature %q, want %q", d.signature, want)
		}
		if webhook.Sign("another secret 0123", ts, d.body) == d.signature {
			t.Fatal("the signature does not depend on the secret")
		}
		var al monitor.Alert
		if err := json.Unmarshal(d.body, &al); err != nil || al.Kind != monitor.KindClonedKey || al.SIM != a.sim.ID {
			t.Fatalf("webhook body %s: %v", d.body, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no webhook delivery")
	}

	// A single roam of another device: no alert.
	b := f.newDevice(grp.ID)
	if err := b.ping(MetadataAddr.String(), 1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	_, dev2 := f.join(b.ns, netip.Prefix{})
	dev2.AddAddr(netip.MustParsePrefix("10.230.202.2/32"))
	f.env.ReplaceRoute(b.ns, gwAddr.String()+"/32", "dev", dev2.Name, "src", "10.230.202.2")
	b.link.DelAddr(b.link.Addrs()[0])
	waitForWithin(t, 45*time.Second, "the roam", func() bool {
		b.ns.Exec("ping", "-c", "1", "-W", "1", "-n", MetadataAddr.String())
		return b.connection().Endpoint != "" && b.connection().Endpoint[:12] == "10.230.202.2"
	})
	for i := 0; i < 10; i++ {
		b.ns.Exec("ping", "-c", "1", "-W", "1", "-n", MetadataAddr.String())
	}
	if kinds := f.alerts(b.sim.ID); len(kinds) != 0 {
		t.Fatalf("a single roam raised %v", kinds)
	}
}

// A device scanning 50 addresses raises a fan-out alert.
func TestFanoutAlert(t *testing.T) {
	f := newFixture(t)
	grp := f.group("g", fleet.GroupSettings{DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup}})
	a := f.newDevice(grp.ID)
	if err := a.ping(MetadataAddr.String(), 1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	a.ns.MustDo(func() error {
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
	waitFor(t, "a fan-out alert", func() bool { return contains(f.alerts(a.sim.ID), monitor.KindFanout) })
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// A destination outside the group's allow-list is blocked and alerted;
// the platform stays reachable.
func TestAllowListBlocks(t *testing.T) {
	f := newFixture(t)
	grp := f.group("g", fleet.GroupSettings{
		DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup},
		Security:       fleet.SecurityProfile{AllowList: []string{"192.0.2.0/24"}, Block: true},
	})
	a, b := f.newDevice(grp.ID), f.newDevice(grp.ID)
	if err := a.ping(MetadataAddr.String(), 1, 5*time.Second); err != nil {
		t.Fatalf("the platform must stay reachable: %v", err)
	}
	if err := a.ping(b.addr(), 2, 2*time.Second); err == nil {
		t.Fatal("a destination outside the allow-list was reached")
	}
	if n := f.gw.router.drops.get(dropAllowList); n == 0 {
		t.Fatal("no outside-allow-list drop counted")
	}
	waitFor(t, "an allow-list alert", func() bool { return contains(f.alerts(a.sim.ID), monitor.KindAllowList) })
}
