// SPDX-License-Identifier: Apache-2.0

package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// GatePeerSpec is a VXLAN Gate peer to join to the device subnet.
type GatePeerSpec struct {
	Name    string
	GroupID string
	// OuterAddress is the host's own address the gateway receives its
	// VXLAN packets from and sends them to.
	OuterAddress netip.Addr
	VNI          uint32
	// InnerAddress pins the peer's address on the device subnet (inside
	// the SIM pool, as SORACOM lets the customer choose it); zero
	// allocates one.
	InnerAddress netip.Addr
}

// CreateGatePeer registers a Gate peer; its inner address on the device
// subnet is allocated from the SIM pool.
func (s *Service) CreateGatePeer(ctx context.Context, a Actor, sp GatePeerSpec) (fleet.GatePeer, error) {
	if err := require(a, fleet.RoleOperator); err != nil {
		return fleet.GatePeer{}, err
	}
	if err := fleet.ValidateLabel("name", sp.Name, 128); err != nil {
		return fleet.GatePeer{}, err
	}
	o := sp.OuterAddress
	switch {
	case !o.IsValid():
		return fleet.GatePeer{}, fleet.Errorf(fleet.CodeRequired, "outerAddress", "the host's IPv4 address the gateway exchanges VXLAN with")
	case !o.Is4() || o.IsUnspecified() || o.IsMulticast() || o.IsLoopback():
		return fleet.GatePeer{}, fleet.Errorf(fleet.CodeInvalid, "outerAddress", "%s: a unicast IPv4 address", o)
	case s.cfg.Pool.Contains(o) || s.cfg.PlatformRange.Contains(o) || s.cfg.LANPool.Contains(o):
		return fleet.GatePeer{}, fleet.Errorf(fleet.CodeInvalid, "outerAddress", "%s is inside the fleet's own ranges: the outer address is the host's underlay address", o)
	}
	if sp.VNI == 0 || sp.VNI > fleet.MaxVNI {
		return fleet.GatePeer{}, fleet.Errorf(fleet.CodeInvalid, "vni", "between 1 and %d", fleet.MaxVNI)
	}
	var g fleet.GatePeer
	err := s.st.Update(ctx, func(tx store.Tx) (err error) {
		if err := useGroup(ctx, tx, sp.GroupID); err != nil {
			return storeErr(err, "groupId")
		}
		inner := sp.InnerAddress
		if inner.IsValid() {
			if !inner.Is4() || !s.cfg.Pool.Contains(inner) || offset(s.cfg.Pool, inner) < 2 {
				return fleet.Errorf(fleet.CodeInvalid, "innerAddress", "%s: an address of the SIM pool %s (not its first two)", inner, s.cfg.Pool)
			}
			if _, err := tx.SIMByAddress(ctx, inner); err == nil {
				return fleet.Errorf(fleet.CodeConflict, "innerAddress", "%s is a SIM's address", inner)
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		} else if inner, err = tx.AllocateAddress(ctx, s.cfg.Pool); err != nil {
			return storeErr(err, "innerAddress")
		}
		now := s.now()
		g = fleet.GatePeer{ID: newID("gp", now), Name: sp.Name, GroupID: sp.GroupID, OuterAddress: o, InnerAddress: inner, VNI: sp.VNI, Created: now}
		if err := tx.InsertGatePeer(ctx, g); err != nil {
			return storeErr(err, "")
		}
		tx.Publish(fleet.Change{Kind: fleet.ChangeGatePeer, ID: g.ID})
		return s.event(ctx, tx, a, "gate_peer.create", "gate_peer", g.ID, map[string]any{"outerAddress": o.String(), "innerAddress": inner.String(), "vni": sp.VNI})
	})
	return g, storeErr(err, "")
}

// DeleteGatePeer removes a Gate peer; the gateway stops carrying its
// traffic at once.
func (s *Service) DeleteGatePeer(ctx context.Context, a Actor, id string) error {
	if err := require(a, fleet.RoleOperator); err != nil {
		return err
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		// Serialised with groups naming it as their redirection's next
		// hop (checkRedirection): no group is left redirecting nowhere.
		if err := tx.Lock(ctx, gatePeersLock); err != nil {
			return err
		}
		for cursor := ""; ; {
			p, err := tx.ListGroups(ctx, store.PageRequest{Limit: store.MaxLimit, Cursor: cursor})
			if err != nil {
				return err
			}
			for _, g := range p.Items {
				if g.Settings.Redirection.GatePeerID == id {
					return fleet.Errorf(fleet.CodeConflict, "id", "group %s (%s) redirects its traffic to this Gate peer: change its settings.redirection first", g.Name, g.ID)
				}
			}
			if p.Next == "" {
				break
			}
			cursor = p.Next
		}
		if err := tx.DeleteGatePeer(ctx, id); err != nil {
			return storeErr(err, "id")
		}
		tx.Publish(fleet.Change{Kind: fleet.ChangeGatePeer, ID: id})
		return s.event(ctx, tx, a, "gate_peer.delete", "gate_peer", id, nil)
	})
	return storeErr(err, "")
}

// gatePeersLock serialises deleting Gate peers with groups naming one.
const gatePeersLock = "gate_peers"

// GetGatePeer returns a Gate peer.
func (s *Service) GetGatePeer(ctx context.Context, a Actor, id string) (fleet.GatePeer, error) {
	if err := require(a, fleet.RoleViewer); err != nil {
		return fleet.GatePeer{}, err
	}
	g, err := s.st.GatePeer(ctx, id)
	return g, storeErr(err, "id")
}

// ListGatePeers lists Gate peers.
func (s *Service) ListGatePeers(ctx context.Context, a Actor, p store.PageRequest) (store.Page[fleet.GatePeer], error) {
	if err := require(a, fleet.RoleViewer); err != nil {
		return store.Page[fleet.GatePeer]{}, err
	}
	pg, err := s.st.ListGatePeers(ctx, p)
	return pg, storeErr(err, "")
}

// GatePeerSetup is what the Gate peer host runs to join: plain ip
// commands for a Linux vxlan interface (dev is the host's underlay
// interface, as SORACOM's Gate peer instructions have it).
func (s *Service) GatePeerSetup(g fleet.GatePeer, dev string) []string {
	remote := "GATEWAY_ADDRESS"
	if host, _, err := net.SplitHostPort(s.cfg.Endpoint); err == nil && host != "" {
		remote = host
	}
	return []string{
		fmt.Sprintf("ip link add vxlan0 type vxlan id %d local %s remote %s dstport 4789 dev %s", g.VNI, g.OuterAddress, remote, dev),
		fmt.Sprintf("ip addr add %s dev vxlan0", netip.PrefixFrom(g.InnerAddress, s.cfg.Pool.Bits())),
		"ip link set vxlan0 up",
		fmt.Sprintf("ip route add %s via %s", s.cfg.LANPool, s.cfg.Pool.Masked().Addr().Next()),
	}
}
