// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
	"golang.org/x/net/dns/dnsmessage"
)

// dnsTTL is the TTL of answers: short, SIM addresses rarely change but a
// suspended SIM's name should not linger.
const dnsTTL = 30

// serveDNS answers queries on one platform DNS address. Names, in the zone:
//
//	dns.<zone>, metadata.<zone>  the platform services
//	<sim-id>.sim.<zone>          a SIM's overlay address, for the SIM itself
//	                             and for SIMs device-to-device policy lets it reach
//
// The caller is the SIM whose tunnel the query came through. Other names in
// the zone are NXDOMAIN; names outside it are REFUSED (no recursion).
func (s *services) serveDNS(pc net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok {
			continue
		}
		caller, _ := netip.AddrFromSlice(ua.IP)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp := s.g.answerDNS(ctx, caller.Unmap(), buf[:n])
		cancel()
		if resp != nil {
			pc.WriteTo(resp, from)
		}
	}
}

// answerDNS builds the response to one query message (nil: no answer).
func (g *Gateway) answerDNS(ctx context.Context, caller netip.Addr, msg []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil || h.Response {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	name := strings.ToLower(q.Name.String())
	zone := g.zoneName()
	var addr netip.Addr
	switch {
	case h.OpCode != 0 || q.Class != dnsmessage.ClassINET:
		rh.RCode = dnsmessage.RCodeNotImplemented
	case name != zone && !strings.HasSuffix(name, "."+zone):
		rh.RCode = dnsmessage.RCodeRefused
	default:
		label := strings.TrimSuffix(strings.TrimSuffix(name, zone), ".")
		var found bool
		addr, found = g.lookupName(ctx, caller, label)
		if !found && label != "" {
			rh.RCode = dnsmessage.RCodeNameError
		}
	}
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), rh)
	b.EnableCompression()
	b.StartQuestions()
	b.Question(q)
	b.StartAnswers()
	if addr.IsValid() && q.Type == dnsmessage.TypeA {
		b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: dnsTTL}, dnsmessage.AResource{A: addr.As4()})
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}

// lookupName resolves a name relative to the zone for caller. found is true
// for a name that exists (it may have no A record).
func (g *Gateway) lookupName(ctx context.Context, caller netip.Addr, label string) (netip.Addr, bool) {
	switch label {
	case "":
		return netip.Addr{}, true
	case "dns":
		return DNSAddrs[0], true
	case "metadata":
		return MetadataAddr, true
	}
	simID, ok := strings.CutSuffix(label, ".sim")
	if !ok || strings.Contains(simID, ".") {
		return netip.Addr{}, false
	}
	me := g.router.peerFor(caller)
	if me == nil {
		return netip.Addr{}, false
	}
	st := stateOf(me)
	if st == nil {
		return netip.Addr{}, false
	}
	self := st.SIM()
	if simID == self.ID {
		return self.Address, true
	}
	target, err := g.st.SIM(ctx, simID)
	if err != nil || target.Status != fleet.StatusActive {
		return netip.Addr{}, false
	}
	if err := g.policies.ensure(ctx, g.st, target.GroupID); err != nil {
		return netip.Addr{}, false
	}
	src, dst := g.policies.get(self.GroupID), g.policies.get(target.GroupID)
	if src == nil || dst == nil || !src.admits(dst) || !dst.admits(src) {
		// Not reachable: the name does not exist for this caller.
		return netip.Addr{}, false
	}
	return target.Address, true
}
