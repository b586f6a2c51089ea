// SPDX-License-Identifier: Apache-2.0

package remoteaccess_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/gateway"
	"github.com/wirefleet/wirefleet/services/remoteaccess"
	"github.com/wirefleet/wirefleet/wgkey"
)

// TestMappingLimitsAndFlood: a mapping carries at most its connection
// limit, refuses the rest ("too-many-connections"), refuses a SIM without
// a session ("sim-offline"), and a flood of connections at its port leaves
// the device's tunnel working: pings to the platform are answered and a
// carried connection keeps echoing. Refusals under the flood reach the
// audit trail as a few events with a suppressed count, not a row each.
func TestMappingLimitsAndFlood(t *testing.T) {
	f := newFixture(t, controlplane.RemotePolicy{MaxConnections: 4})
	d := f.newDevice()
	d.serve(t, devPort)
	op := f.newOperator(1)
	ctx := context.Background()
	all := []netip.Prefix{netip.MustParsePrefix("10.231.0.0/16")}

	// A SIM with no session: refused as offline.
	key, _ := wgkey.NewPrivate()
	idle, _, err := f.svc.CreateSIM(ctx, f.admin, controlplane.SIMSpec{Name: "idle", PublicKey: key.Public()})
	if err != nil {
		t.Fatal(err)
	}
	om, err := f.svc.CreateMapping(ctx, f.admin, controlplane.MappingSpec{SIMID: idle.ID, Port: 22, AllowedSources: all})
	if err != nil {
		t.Fatal(err)
	}
	f.waitListening(om.ID, true)
	if c, err := op.dial(om.PublicPort); err == nil {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, _ := c.Read(make([]byte, 8)); n != 0 {
			t.Fatal("offline SIM's mapping carried data")
		}
		c.Close()
	}
	f.waitEvent(om.ID, "mapping.deny", func(e fleet.Event) bool { return e.Details["reason"] == remoteaccess.DenyOffline })

	// More than the limit asked for: refused.
	if _, err := f.svc.CreateMapping(ctx, f.admin, controlplane.MappingSpec{SIMID: d.sim.ID, Port: devPort, AllowedSources: all, MaxConnections: 5}); !isCode(err, fleet.CodeInvalid, "maxConnections") {
		t.Fatalf("maxConnections above policy: %v", err)
	}
	m, err := f.svc.CreateMapping(ctx, f.admin, controlplane.MappingSpec{SIMID: d.sim.ID, Port: devPort, AllowedSources: all})
	if err != nil {
		t.Fatal(err)
	}
	if m.MaxConnections != 4 {
		t.Fatalf("maxConnections %d, want the policy's 4", m.MaxConnections)
	}
	f.waitListening(m.ID, true)
	var held []*heldConn
	for i := 0; i < 4; i++ {
		c, err := op.dial(m.PublicPort)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if g, err := readGreeting(c); err != nil || g != greeting {
			t.Fatalf("connection %d: %q %v", i, g, err)
		}
		held = append(held, &heldConn{c})
	}
	c5, err := op.dial(m.PublicPort)
	if err == nil {
		c5.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, _ := c5.Read(make([]byte, 64)); n != 0 {
			t.Fatal("a fifth connection was carried with a limit of 4")
		}
		c5.Close()
	}
	f.waitEvent(m.ID, "mapping.deny", func(e fleet.Event) bool { return e.Details["reason"] == remoteaccess.DenyTooMany })

	// The flood: many connections at once from the operator's namespace,
	// while the device pings the platform and a carried connection echoes.
	const workers, perWorker = 16, 60
	var attempts atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c, err := op.dial(m.PublicPort)
				attempts.Add(1)
				if err != nil {
					continue
				}
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				c.Read(make([]byte, 8))
				c.Close()
			}
		}()
	}
	start := time.Now()
	pingOut, pingErr := d.ns.Exec("ping", "-c", "20", "-i", "0.1", "-W", "2", "-n", gateway.MetadataAddr.String())
	echoErr := held[0].echo(fmt.Sprintf("still here %d\n", 1))
	close(stop)
	wg.Wait()
	took := time.Since(start)
	if pingErr != nil {
		t.Fatalf("the device's pings failed under the flood: %v\n%s", pingErr, pingOut)
	}
	if !strings.Contains(pingOut, " 0% packet loss") {
		t.Errorf("pings lost under the flood:\n%s", pingOut)
	}
	if echoErr != nil {
		t.Fatalf("a carried connection stopped working under the flood: %v", echoErr)
	}
	n := attempts.Load()
	t.Logf("flood: %d connection attempts in %s", n, took.Round(time.Millisecond))
	if n < 100 {
		t.Fatalf("only %d flood connections were made", n)
	}
	// After the flood the held connections still work, and a freed slot
	// is usable again.
	for i, h := range held {
		if err := h.echo(fmt.Sprintf("after %d\n", i)); err != nil {
			t.Fatalf("held connection %d after the flood: %v", i, err)
		}
	}
	held[3].c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := op.dial(m.PublicPort)
		if err == nil {
			g, _ := readGreeting(c)
			if g == greeting {
				// Keep it: the mapping is full again, so the dial below is
				// refused and its event carries the suppressed count.
				defer c.Close()
				break
			}
			c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatal("a freed slot never became usable")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A few refusal events, not one per connection, with the rest counted.
	time.Sleep(1100 * time.Millisecond) // the next refusal event carries the count
	if c, err := op.dial(m.PublicPort); err == nil {
		c.Close()
	}
	deny, suppressed := 0, 0.0
	f.waitEvent(m.ID, "mapping.deny", func(e fleet.Event) bool { return num(e.Details["suppressed"]) > 0 })
	for _, e := range f.events(m.ID) {
		if e.Action == "mapping.deny" {
			deny++
			suppressed += num(e.Details["suppressed"])
		}
	}
	if limit := int(took.Seconds()) + 5; deny > limit {
		t.Fatalf("%d refusal events for a %s flood: want at most %d", deny, took, limit)
	}
	if suppressed == 0 {
		t.Fatalf("no suppressed count in %d refusal events", deny)
	}
	// Suspending the SIM ends the carried connections at once.
	if _, err := f.svc.SetSIMStatus(ctx, f.admin, d.sim.ID, fleet.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	for i, h := range held[:3] {
		h.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.Copy(io.Discard, h.c); err != nil && !isReset(err) {
			t.Fatalf("held connection %d after suspension: %v", i, err)
		}
	}
	f.waitEvent(m.ID, "mapping.close", func(e fleet.Event) bool { return e.Details["reason"] == "sim-suspended" })
}

type heldConn struct{ c net.Conn }

func (h *heldConn) echo(s string) error {
	if _, err := io.WriteString(h.c, s); err != nil {
		return err
	}
	h.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(s))
	if _, err := io.ReadFull(h.c, got); err != nil {
		return err
	}
	if string(got) != s {
		return fmt.Errorf("echo %q, want %q", got, s)
	}
	return nil
}
