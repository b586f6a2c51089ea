// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"net/netip"
	"slices"
	"sync"
	"time"
)

// FQDN egress rules are enforced by the gateway's own DNS: an address is
// granted to a SIM for a name when the gateway answered that SIM's query
// for the name with it, for the answer's TTL. Connections outlive TTLs
// (an MQTT session stays up for days on an address resolved once), so a
// grant whose TTL has run out stays while the SIM keeps sending to the
// address, and ends grantIdle after its last packet. Nothing is granted by
// reverse lookups or by another SIM's answers.
const (
	grantIdle   = 60 * time.Second // the grace after the TTL: idle time that ends a grant
	grantMaxTTL = 24 * time.Hour
	// grantsPerSIM bounds the addresses one SIM holds grants for: a device
	// resolving names in a loop costs bounded memory.
	grantsPerSIM = 4096
	// namesPerAddress bounds the names one address is granted for: a
	// wildcard zone answers any name with the same address, and each
	// packet to it walks its names.
	namesPerAddress = 16
)

// grantTable holds every SIM's grants.
type grantTable struct {
	sims sync.Map // SIM id → *simGrants
}

type simGrants struct {
	mu     sync.Mutex
	byAddr map[netip.Addr][]nameGrant
}

type nameGrant struct {
	name     string
	until    time.Time // the answer's TTL
	lastUsed time.Time
}

func (g nameGrant) live(now time.Time) bool {
	return now.Before(g.until) || now.Sub(g.lastUsed) < grantIdle
}

// add grants addrs to sim for name until now+ttl. It reports false when
// the SIM holds too many grants already, or an address too many names
// (after dropping dead ones).
func (t *grantTable) add(sim, name string, addrs []netip.Addr, ttl time.Duration, now time.Time) bool {
	ttl = min(ttl, grantMaxTTL)
	v, _ := t.sims.LoadOrStore(sim, &simGrants{byAddr: map[netip.Addr][]nameGrant{}})
	sg := v.(*simGrants)
	sg.mu.Lock()
	defer sg.mu.Unlock()
	for _, a := range addrs {
		a = a.Unmap()
		gs := sg.byAddr[a]
		if gs == nil && len(sg.byAddr) >= grantsPerSIM {
			sg.prune(now)
			if len(sg.byAddr) >= grantsPerSIM {
				return false
			}
		}
		i := slices.IndexFunc(gs, func(g nameGrant) bool { return g.name == name })
		if i < 0 {
			if len(gs) >= namesPerAddress {
				gs = slices.DeleteFunc(gs, func(g nameGrant) bool { return !g.live(now) })
			}
			if len(gs) >= namesPerAddress {
				return false
			}
			gs = append(gs, nameGrant{name: name})
			i = len(gs) - 1
		}
		if until := now.Add(ttl); until.After(gs[i].until) {
			gs[i].until = until
		}
		sg.byAddr[a] = gs
	}
	return true
}

// prune drops dead grants (sg.mu held).
func (sg *simGrants) prune(now time.Time) {
	for a, gs := range sg.byAddr {
		gs = slices.DeleteFunc(gs, func(g nameGrant) bool { return !g.live(now) })
		if len(gs) == 0 {
			delete(sg.byAddr, a)
		} else {
			sg.byAddr[a] = gs
		}
	}
}

// names returns the names sim holds a live grant of dst for, and marks
// them used (nil when none).
func (t *grantTable) names(sim string, dst netip.Addr, now time.Time) []string {
	v, ok := t.sims.Load(sim)
	if !ok {
		return nil
	}
	sg := v.(*simGrants)
	sg.mu.Lock()
	defer sg.mu.Unlock()
	var out []string
	gs := sg.byAddr[dst.Unmap()]
	for i := range gs {
		if gs[i].live(now) {
			gs[i].lastUsed = now
			out = append(out, gs[i].name)
		}
	}
	return out
}

// forget drops a SIM's grants (its session ended, or it was revoked).
func (t *grantTable) forget(sim string) { t.sims.Delete(sim) }

// sweep drops dead grants of every SIM, and SIMs left with none.
func (t *grantTable) sweep(now time.Time) {
	t.sims.Range(func(k, v any) bool {
		sg := v.(*simGrants)
		sg.mu.Lock()
		sg.prune(now)
		empty := len(sg.byAddr) == 0
		sg.mu.Unlock()
		if empty {
			t.sims.CompareAndDelete(k, v)
		}
		return true
	})
}

// sweepGrants drops dead grants (and idle 4via6 flows) every grantIdle,
// until the gateway closes.
func (g *Gateway) sweepGrants() {
	defer g.wg.Done()
	t := time.NewTicker(grantIdle)
	defer t.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
			g.grants.sweep(g.clk.Now())
			g.router.via6.sweep(g.clk.Now())
			g.caps.sweep(g.ctx, g.clk.Now())
		}
	}
}
