// SPDX-License-Identifier: Apache-2.0

package fleet

import (
	"fmt"
	"net/netip"
)

// Mirror protocols: GRE straight over IP (RFC 2784, IP protocol 47: the
// gateway needs CAP_NET_RAW) or GRE in UDP (RFC 8086, port 4754, no
// privilege).
const (
	MirrorGRE    = "gre"
	MirrorGREUDP = "gre-udp"
)

// MaxMirrorPeers bounds a group's mirror peers: each one is a copy of the
// group's whole traffic.
const MaxMirrorPeers = 4

// MirrorPeer is a host that receives a copy of every packet of the
// group's SIMs, both directions, inside GRE (SORACOM Junction's mirror
// peers: ipAddress, protocol, enabled, description).
type MirrorPeer struct {
	IPAddress   string `json:"ipAddress"`
	Protocol    string `json:"protocol,omitempty"` // MirrorGRE (default) or MirrorGREUDP
	Port        uint16 `json:"port,omitempty"`     // GRE in UDP only; default 4754
	Enabled     bool   `json:"enabled"`
	Description string `json:"description,omitempty"`
}

// Mirroring is a group's mirror peers.
type Mirroring struct {
	Peers []MirrorPeer `json:"peers,omitempty"`
}

// DefaultMirrorUDPPort is GRE-in-UDP's port (RFC 8086).
const DefaultMirrorUDPPort = 4754

// Normalize checks the peers: a unicast address each (not the unspecified
// address, multicast, broadcast or link-local), a known protocol. Private
// and local peers (a collector on the gateway host itself) are the
// platform's egress policy's to allow (wirefleetd --egress-allow).
func (m *Mirroring) Normalize(prefix string) error {
	if len(m.Peers) > MaxMirrorPeers {
		return Errorf(CodeInvalid, prefix+".peers", "at most %d mirror peers", MaxMirrorPeers)
	}
	for i := range m.Peers {
		p := &m.Peers[i]
		field := fmt.Sprintf("%s.peers[%d]", prefix, i)
		a, err := netip.ParseAddr(p.IPAddress)
		if err != nil || a.Zone() != "" {
			return Errorf(CodeInvalid, field+".ipAddress", "not an IP address: %q", p.IPAddress)
		}
		a = a.Unmap()
		if a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) || a.IsLinkLocalUnicast() {
			return Errorf(CodeInvalid, field+".ipAddress", "%s is not a unicast address a mirror can be sent to", a)
		}
		p.IPAddress = a.String()
		switch p.Protocol {
		case "":
			p.Protocol = MirrorGRE
		case MirrorGRE, MirrorGREUDP:
		default:
			return Errorf(CodeInvalid, field+".protocol", "must be %q or %q", MirrorGRE, MirrorGREUDP)
		}
		if p.Port != 0 && p.Protocol != MirrorGREUDP {
			return Errorf(CodeInvalid, field+".port", "only GRE in UDP has a port")
		}
		if err := ValidateLabel(field+".description", p.Description, 200); err != nil {
			return err
		}
	}
	return nil
}
