// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/controlplane/store/pgstore"
	"github.com/wirefleet/wirefleet/controlplane/store/pgstore/pgtest"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/gateway/monitor"
	"github.com/wirefleet/wirefleet/internal/egress"
	"github.com/wirefleet/wirefleet/internal/seal"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

// gatewaySet is gateways (one key, as a load-balanced set) of as many
// wirefleetd sharing one PostgreSQL database, one settings key and one
// egress policy that lets webhooks reach receivers on loopback.
type gatewaySet struct {
	svc   *controlplane.Service
	gws   []*Gateway
	gwKey wgkey.Public
}

// newTwoGateways is newGateways of two.
func newTwoGateways(t *testing.T, opts ...func(i int, c *Config)) *gatewaySet {
	return newGateways(t, 2, opts...)
}

func newGateways(t *testing.T, n int, opts ...func(i int, c *Config)) *gatewaySet {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ks, _ := keystore.GenerateMemory()
	secrets, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	tg := &gatewaySet{gwKey: ks.PublicKey(), gws: make([]*Gateway, n)}
	for i := range tg.gws {
		st, err := pgstore.Open(ctx, dsn, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		svc := controlplane.New(st, controlplane.Config{GatewayPublicKey: func() wgkey.Public { return ks.PublicKey() }, Logger: log, Secrets: secrets})
		if i == 0 {
			tg.svc = svc
		}
		cfg := Config{ControlPlane: svc, KeyStore: ks, Logger: log, ID: fmt.Sprintf("gw%d", i+1), SecondGatewayWindow: 2 * time.Second, MovedSilence: 3 * time.Second,
			Secrets: secrets, Egress: egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}
		for _, o := range opts {
			o(i, &cfg)
		}
		gw, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := gw.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { gw.Close() })
		tg.gws[i] = gw
	}
	return tg
}

// device starts a golang.zx2c4.com/wireguard device with key towards
// gateway i (extra: more UAPI lines for its peer); send makes it send one
// echo request to the metadata address.
func (tg *gatewaySet) device(t *testing.T, key wgkey.Private, sim fleet.SIM, i int, extra ...string) (send func(), stop func()) {
	tunDev, dev := memDevice(t, key, tg.gwKey, tg.gws[i].Port(), strings.Join(extra, ""))
	stop = dev.Close
	go func() { // drain replies
		for range tunDev.Out() {
		}
	}()
	return func() { tunDev.Send(echoRequest(sim.Address, MetadataAddr)) }, stop
}

// One SIM's key used by two devices, each reaching another gateway of the
// same platform: the gateway holding the older session sees it keep
// carrying data after the other recorded a newer one — a cloned-key alert.
// A device that moves from one gateway to the other raises nothing, and
// the session it left ends; one that comes back is looked for where it is.
func TestKeyLiveOnTwoGateways(t *testing.T) {
	tg := newTwoGateways(t)
	ctx := context.Background()
	newSIM := func() (wgkey.Private, fleet.SIM) {
		key, _ := wgkey.NewPrivate()
		sim, _, err := tg.svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{PublicKey: key.Public()})
		if err != nil {
			t.Fatal(err)
		}
		return key, sim
	}
	online := func(gw *Gateway, sim fleet.SIM) bool { return gw.Connection(sim.ID).Online }
	keep := func(send func(), until time.Time) {
		for time.Now().Before(until) {
			send()
			time.Sleep(100 * time.Millisecond)
		}
	}

	// The roam first: gw1, then the device moves to gw2 and stops sending to gw1.
	key, sim := newSIM()
	send1, stop1 := tg.device(t, key, sim, 0)
	waitFor(t, "the device on gw1", func() bool { send1(); return online(tg.gws[0], sim) })
	stop1()
	send2, _ := tg.device(t, key, sim, 1)
	waitFor(t, "the device on gw2", func() bool { send2(); return online(tg.gws[1], sim) })
	waitFor(t, "both presences recorded", func() bool {
		ps, _ := tg.svc.View().Presences(ctx, sim.ID)
		return len(ps) == 2
	})
	keep(send2, time.Now().Add(4*time.Second)) // past the 2 s window
	if a := tg.alerts(t, sim.ID); len(a) != 0 {
		t.Fatalf("a roam between gateways raised %+v", a)
	}
	// The session the device left on gw1 ended there (gw1 would otherwise
	// hand the SIM's traffic to it for minutes), and gw1's record with it.
	waitForWithin(t, 20*time.Second, "gw1 ending the session the device left", func() bool {
		ps, _ := tg.svc.View().Presences(ctx, sim.ID)
		return !online(tg.gws[0], sim) && len(ps) == 1 && ps[0].Gateway == "gw2"
	})

	// A device idle at gw1 but keeping alive (every second here) while the
	// key shows up once at gw2: its session at gw1 is not ended (it is
	// heard), and nothing is raised (no data came).
	key, sim = newSIM()
	sendK, _ := tg.device(t, key, sim, 0, "persistent_keepalive_interval=1\n")
	waitFor(t, "the keeping-alive device on gw1", func() bool { sendK(); return online(tg.gws[0], sim) })
	sendX, stopX := tg.device(t, key, sim, 1)
	waitFor(t, "the key once on gw2", func() bool { sendX(); return online(tg.gws[1], sim) })
	stopX()
	time.Sleep(8 * time.Second) // past the window and the silence
	if !online(tg.gws[0], sim) {
		t.Fatal("gw1 ended the session of a device that kept alive there")
	}
	if a := tg.alerts(t, sim.ID); len(a) != 0 {
		t.Fatalf("an idle device and one appearance elsewhere raised %+v", a)
	}

	// There and back (gw1 → gw2 → gw1 before gw1's session ended): gw1's
	// record becomes the newest again, and gw2 ends the session left there.
	key, sim = newSIM()
	send1, stop1 = tg.device(t, key, sim, 0)
	waitFor(t, "the device on gw1", func() bool { send1(); return online(tg.gws[0], sim) })
	stop1()
	send2, stop2 := tg.device(t, key, sim, 1)
	waitFor(t, "the device on gw2", func() bool { send2(); return online(tg.gws[1], sim) })
	waitFor(t, "both presences recorded", func() bool {
		ps, _ := tg.svc.View().Presences(ctx, sim.ID)
		return len(ps) == 2
	})
	stop2()
	send3, _ := tg.device(t, key, sim, 0)
	keep(send3, time.Now().Add(5*time.Second))
	waitForWithin(t, 20*time.Second, "gw1 the newest record, gw2's session ended", func() bool {
		send3()
		ps, _ := tg.svc.View().Presences(ctx, sim.ID) // oldest first
		return online(tg.gws[0], sim) && !online(tg.gws[1], sim) && len(ps) == 1 && ps[0].Gateway == "gw1"
	})
	if a := tg.alerts(t, sim.ID); len(a) != 0 {
		t.Fatalf("there and back raised %+v", a)
	}

	// The clone: two devices with one key, both sending, to gw1 and gw2.
	key, sim = newSIM()
	sendA, _ := tg.device(t, key, sim, 0)
	waitFor(t, "device A on gw1", func() bool { sendA(); return online(tg.gws[0], sim) })
	sendB, _ := tg.device(t, key, sim, 1)
	start := time.Now()
	go keep(sendA, start.Add(15*time.Second))
	go keep(sendB, start.Add(15*time.Second))
	for {
		if a := tg.alerts(t, sim.ID); len(a) > 0 {
			if a[0].Details["kind"] != monitor.KindClonedKey {
				t.Fatalf("alert %+v, want cloned-key", a[0])
			}
			ev, _ := a[0].Details["evidence"].(map[string]any)
			if ev["otherGateway"] != "gw2" {
				t.Fatalf("alert evidence %+v, want the other gateway gw2", ev)
			}
			t.Logf("cloned-key alert %v after the second device started", time.Since(start).Round(time.Millisecond))
			break
		}
		if time.Since(start) > 12*time.Second {
			ps, _ := tg.svc.View().Presences(ctx, sim.ID)
			t.Fatalf("no alert within 12 s; presences %+v", ps)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// alerts returns the SIM's device.alert events, newest first.
func (tg *gatewaySet) alerts(t *testing.T, simID string) []fleet.Event {
	p, err := tg.svc.ListEvents(context.Background(), controlplane.System, store.EventFilter{ObjectID: simID, Action: "device.alert"})
	if err != nil {
		t.Fatal(err)
	}
	return p.Items
}

// Three nodes on one store, one SIM's key on two devices at two of them:
// the cloned-key alert is raised once in the cluster, and its group's
// webhook is delivered once (counted at the receiver), however long the
// two devices go on and whichever node notices.
func TestClonedKeyAlertOnceInThreeNodes(t *testing.T) {
	var deliveries atomic.Int64
	var kinds sync.Map
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a struct{ Kind, SIM string }
		json.NewDecoder(r.Body).Decode(&a)
		kinds.Store(deliveries.Add(1), a.Kind)
	}))
	defer receiver.Close()
	tg := newGateways(t, 3)
	ctx := context.Background()
	grp, err := tg.svc.CreateGroup(ctx, controlplane.System, "watched", fleet.GroupSettings{Security: fleet.SecurityProfile{
		WebhookURL: receiver.URL, WebhookSecret: "webhook-secret-0123456789"}})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := wgkey.NewPrivate()
	sim, _, err := tg.svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{PublicKey: key.Public(), GroupID: grp.ID})
	if err != nil {
		t.Fatal(err)
	}
	sendA, _ := tg.device(t, key, sim, 0)
	waitForWithin(t, 20*time.Second, "device A on gw1", func() bool { sendA(); return tg.gws[0].Connection(sim.ID).Online })
	sendB, _ := tg.device(t, key, sim, 1)
	stop := make(chan struct{})
	var senders sync.WaitGroup
	for _, send := range []func(){sendA, sendB} {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
					send()
				}
			}
		}()
	}
	defer func() { close(stop); senders.Wait() }()
	waitForWithin(t, 20*time.Second, "the webhook delivery", func() bool { return deliveries.Load() > 0 })
	// Three more of the 2 s windows with both devices still sending: no
	// node raises it again, none delivers it again.
	time.Sleep(6 * time.Second)
	if n := deliveries.Load(); n != 1 {
		t.Fatalf("%d webhook deliveries, want exactly 1", n)
	}
	if k, _ := kinds.Load(int64(1)); k != monitor.KindClonedKey {
		t.Fatalf("webhook for %v, want %s", k, monitor.KindClonedKey)
	}
	if a := tg.alerts(t, sim.ID); len(a) != 1 {
		t.Fatalf("%d alert events, want exactly 1: %+v", len(a), a)
	}
}
