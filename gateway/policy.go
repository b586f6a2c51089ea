// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/gateway/monitor"
	"github.com/wirefleet/wirefleet/internal/egressrules"
	"github.com/wirefleet/wirefleet/internal/packet"
)

// groupPolicy is what the data path needs of a group, read once per change.
type groupPolicy struct {
	id       string
	name     string
	mode     string
	groups   []string // peer group names, for mode "groups"
	ports    []uint16 // empty: all
	settings fleet.GroupSettings
	allow    []netip.Prefix // the security allow-list; nil: everything
	block    bool
	// Detectors the security profile turns on.
	firstSeen      bool
	checkListeners bool
	listenPorts    []uint16
	volume         monitor.VolumeLimits
	// Egress beyond the fleet: breakout on, the compiled rules (nil: none,
	// so nothing is allowed), and whether DNS resolves only names the
	// rules allow.
	breakout           bool
	egress             *egressrules.Table
	resolveAllowedOnly bool
	// mirrors are the enabled mirror peers.
	mirrors []*mirrorTarget
	// redirectVia is the Gate peer the group's traffic goes to instead
	// of its destination ("": none); redirectPlatform: its platform
	// traffic too.
	redirectVia      string
	redirectPlatform bool
	// inspectEvery is the inspection interval in seconds (0: off).
	inspectEvery int
}

// watchesVolume reports whether the group has a volume rule.
func (p *groupPolicy) watchesVolume() bool {
	return p.volume != (monitor.VolumeLimits{})
}

// allows reports whether dst is inside the group's allow-list.
func (p *groupPolicy) allows(dst netip.Addr) bool {
	for _, a := range p.allow {
		if a.Contains(dst) {
			return true
		}
	}
	return false
}

// policyCache holds the groups of the SIMs the gateway serves. The resolver
// fills it (it may block on the store); the router only reads it.
type policyCache struct {
	mu     sync.RWMutex
	groups map[string]*groupPolicy
	// mirrored counts the cached groups with mirror peers: the send path
	// reads it before anything else, so mirroring costs nothing when no
	// group has it.
	mirrored atomic.Int32
	// inspected counts the cached groups with inspection on.
	inspected atomic.Int32
	// compileMirrors turns a group's peers into targets (the gateway's,
	// for its egress policy); nil: no mirroring.
	compileMirrors func(fleet.Mirroring) []*mirrorTarget
}

func (c *policyCache) get(id string) *groupPolicy {
	if id == "" {
		return nil
	}
	c.mu.RLock()
	p := c.groups[id]
	c.mu.RUnlock()
	return p
}

// each calls f with every cached group.
func (c *policyCache) each(f func(*groupPolicy)) {
	c.mu.RLock()
	all := make([]*groupPolicy, 0, len(c.groups))
	for _, p := range c.groups {
		all = append(all, p)
	}
	c.mu.RUnlock()
	for _, p := range all {
		f(p)
	}
}

func (c *policyCache) ensure(ctx context.Context, st store.Reader, id string) error {
	if id == "" || c.get(id) != nil {
		return nil
	}
	return c.refresh(ctx, st, id)
}

func (c *policyCache) refresh(ctx context.Context, st store.Reader, id string) error {
	g, err := st.Group(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		c.mu.Lock()
		delete(c.groups, id)
		c.recountMirrored()
		c.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	p := &groupPolicy{id: g.ID, name: g.Name, mode: g.Settings.DeviceToDevice.Mode, groups: g.Settings.DeviceToDevice.Groups, ports: g.Settings.DeviceToDevice.Ports, settings: g.Settings}
	if p.mode == "" {
		p.mode = fleet.D2DOff
	}
	for _, a := range g.Settings.Security.AllowList {
		if pfx, err := netip.ParsePrefix(a); err == nil {
			p.allow = append(p.allow, pfx)
		}
	}
	sec := g.Settings.Security
	p.block = sec.Block
	p.firstSeen = sec.FirstSeen
	p.checkListeners, p.listenPorts = sec.CheckListeners, sec.ListenPorts
	p.volume = monitor.VolumeLimits{MaxBytes: sec.MaxBytesPerMinute, MaxPackets: sec.MaxPacketsPerMinute, Factor: sec.VolumeFactor}
	p.breakout, p.resolveAllowedOnly = g.Settings.Egress.Breakout, g.Settings.Egress.ResolveAllowedOnly
	if p.egress, err = egressrules.FromSettings(g.Settings.Egress); err != nil {
		// Stored settings were checked when written: this is a rule the
		// running code no longer takes. Nothing leaves (no table).
		p.egress = nil
	}
	if in := g.Settings.Inspection; in.Enabled {
		p.inspectEvery = in.IntervalSeconds
		if p.inspectEvery == 0 {
			p.inspectEvery = fleet.DefaultInspectionInterval
		}
	}
	if rd := g.Settings.Redirection; rd.Enabled {
		p.redirectVia, p.redirectPlatform = rd.GatePeerID, rd.IncludePlatform
	}
	if c.compileMirrors != nil {
		p.mirrors = c.compileMirrors(g.Settings.Mirroring)
	}
	c.mu.Lock()
	c.groups[id] = p
	c.recountMirrored()
	c.mu.Unlock()
	return nil
}

// recountMirrored sets mirrored (c.mu held).
func (c *policyCache) recountMirrored() {
	n := int32(0)
	for _, g := range c.groups {
		if len(g.mirrors) > 0 {
			n++
		}
	}
	c.mirrored.Store(n)
	n = 0
	for _, g := range c.groups {
		if g.inspectEvery > 0 {
			n++
		}
	}
	c.inspected.Store(n)
}

func (c *policyCache) refreshAll(ctx context.Context, st store.Reader) {
	c.mu.RLock()
	ids := make([]string, 0, len(c.groups))
	for id := range c.groups {
		ids = append(ids, id)
	}
	c.mu.RUnlock()
	for _, id := range ids {
		c.refresh(ctx, st, id)
	}
}

// mutual reports whether two groups (nil: no group, or not loaded) each
// admit the other: device-to-device needs both sides' consent.
func mutual(src, dst *groupPolicy) bool {
	return src != nil && dst != nil && src.admits(dst) && dst.admits(src)
}

// admits reports whether group p lets its devices exchange traffic with
// devices of group other.
func (p *groupPolicy) admits(other *groupPolicy) bool {
	return fleet.D2DPolicy{Mode: p.mode, Groups: p.groups}.Admits(p.id, other.id, other.name)
}

// portAllowed reports whether a packet may enter a device of group p on
// dport: any port when the group names none.
func (p *groupPolicy) portAllowed(dport uint16) bool {
	return len(p.ports) == 0 || slices.Contains(p.ports, dport)
}

// d2dAllowed is the device-to-device rule: both groups must admit each
// other (so replies flow too), and the destination group's port list, if
// any, must hold the destination port — or the source group's list the
// source port (the reply of a service the other side was allowed to reach).
// Devices without a group have no device-to-device traffic.
func d2dAllowed(src, dst *groupPolicy, proto byte, sport, dport uint16) bool {
	if !mutual(src, dst) {
		return false
	}
	if len(dst.ports) == 0 {
		return true
	}
	if proto != packet.TCP && proto != packet.UDP {
		return false
	}
	return dst.portAllowed(dport) || (len(src.ports) > 0 && src.portAllowed(sport))
}
