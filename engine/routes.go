// SPDX-License-Identifier: Apache-2.0

package engine

import (
	"net/netip"
	"sort"
	"sync"
)

// routeTable maps inner destinations to peers by their allowed IPs
// (cryptokey routing, outbound half) for engines fed by a TUN device. Host
// routes sit in a map; the few wider prefixes a device has are scanned
// longest first.
type routeTable struct {
	mu    sync.RWMutex
	hosts map[netip.Addr]*Peer
	nets  []route
}

type route struct {
	pfx  netip.Prefix
	peer *Peer
}

func (t *routeTable) add(p *Peer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.addLocked(p)
}

func (t *routeTable) addLocked(p *Peer) {
	if t.hosts == nil {
		t.hosts = make(map[netip.Addr]*Peer)
	}
	for _, pfx := range p.allowedIPs() {
		if pfx.IsSingleIP() {
			t.hosts[pfx.Addr()] = p
			continue
		}
		t.nets = append(t.nets, route{pfx, p})
	}
	sort.SliceStable(t.nets, func(i, j int) bool { return t.nets[i].pfx.Bits() > t.nets[j].pfx.Bits() })
}

func (t *routeTable) remove(p *Peer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.removeLocked(p)
}

func (t *routeTable) removeLocked(p *Peer) {
	for _, pfx := range p.allowedIPs() {
		if pfx.IsSingleIP() && t.hosts[pfx.Addr()] == p {
			delete(t.hosts, pfx.Addr())
		}
	}
	kept := t.nets[:0]
	for _, r := range t.nets {
		if r.peer != p {
			kept = append(kept, r)
		}
	}
	clear(t.nets[len(kept):])
	t.nets = kept
}

func (t *routeTable) lookup(dst netip.Addr) *Peer {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if p := t.hosts[dst]; p != nil {
		return p
	}
	for _, r := range t.nets {
		if r.pfx.Contains(dst) {
			return r.peer
		}
	}
	return nil
}
