// SPDX-License-Identifier: Apache-2.0

// Package dns is the platform's DNS service on the gateway's in-tunnel
// stack: authoritative for the fleet's zone, no recursion. Names, in the
// zone:
//
//	<name>.<zone>       the platform services (Config.Names: dns, metadata)
//	<sim-id>.sim.<zone> a SIM's overlay address, for the SIM itself and for
//	                    SIMs device-to-device policy lets it reach
//	<host>.<sim-id>.lan.<zone>, <host>.<sim-name>.lan.<zone>
//	                    a host an operator named on a LAN behind a SIM: the
//	                    address the caller reaches it by (mapped, for a
//	                    mapped LAN; its LAN address for the SIM itself)
//
// The caller is the SIM whose tunnel the query came through (the gateway
// has checked the source address). Other names in the zone are NXDOMAIN;
// names outside it are REFUSED.
package dns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/services/platform"
)

// TTL is the TTL of answers: short, SIM addresses rarely change but a
// policy change must not be cached for long.
const TTL = 30

// Config configures the DNS service.
type Config struct {
	// Zone is the fleet's zone, e.g. "wirefleet.internal".
	Zone string
	// Addrs are the service's addresses; it answers on UDP port 53 of each.
	Addrs []netip.Addr
	// Names are the platform's own names, by label ("dns", "metadata").
	Names map[string]netip.Addr
	// LANHost, if set, finds a named host on a LAN behind the SIM ref
	// names (its id, or its name when one SIM with named hosts has it):
	// the SIM's id, the address the fleet reaches the host by and its
	// address on the LAN.
	LANHost func(ref, host string) (simID string, reach, onLAN netip.Addr, ok bool)
	// Overlay6 is the fleet's IPv6 plan: platform names and SIM names get
	// an AAAA record, their addresses' twins (zero: A records only).
	Overlay6 fleet.Overlay6
	// Outside, if set, answers names beyond the zone for callers it lets
	// (outside.go); nil: such names are REFUSED.
	Outside Outside
}

// Service is the DNS platform service.
type Service struct {
	cfg  Config
	zone string // lower case, with the trailing dot
	host platform.Host
	pcs  []net.PacketConn
	fwd  forwarder
	wg   sync.WaitGroup
}

var _ platform.Service = (*Service)(nil)

// New returns the DNS service; the gateway starts it.
func New(cfg Config) *Service {
	return &Service{cfg: cfg, zone: strings.ToLower(strings.TrimSuffix(cfg.Zone, ".")) + "."}
}

// Addrs implements platform.Service.
func (s *Service) Addrs() []netip.Addr { return s.cfg.Addrs }

// Start implements platform.Service: a UDP socket on port 53 of each
// address.
func (s *Service) Start(host platform.Host) error {
	if len(s.cfg.Addrs) == 0 {
		return errors.New("dns: no address")
	}
	s.host = host
	for _, a := range s.cfg.Addrs {
		_, udp, err := host.Listen(a, nil, []uint16{53})
		if err != nil {
			s.Close()
			return err
		}
		pc := udp[0]
		s.pcs = append(s.pcs, pc)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serve(pc)
		}()
	}
	return nil
}

// Close implements platform.Service.
func (s *Service) Close() error {
	for _, pc := range s.pcs {
		pc.Close()
	}
	s.wg.Wait()
	return nil
}

func (s *Service) serve(pc net.PacketConn) {
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
		caller = caller.Unmap()
		if s.outsideQuery(pc, from, caller, buf[:n]) {
			continue // answered, or being answered, by the upstream
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp := s.answer(ctx, caller, buf[:n])
		cancel()
		if resp != nil {
			pc.WriteTo(resp, from)
		}
	}
}

// outsideQuery hands a standard query for a name beyond the zone to the
// forwarder; false when it is not one (the zone's own, or not forwarded).
func (s *Service) outsideQuery(pc net.PacketConn, from net.Addr, caller netip.Addr, msg []byte) bool {
	if s.cfg.Outside == nil {
		return false
	}
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil || h.Response || h.OpCode != 0 {
		return false
	}
	q, err := p.Question()
	if err != nil || q.Class != dnsmessage.ClassINET {
		return false
	}
	name := strings.ToLower(q.Name.String())
	if name == s.zone || strings.HasSuffix(name, "."+s.zone) {
		return false
	}
	return s.forward(pc, from, caller, msg, q, h)
}

// answer builds the response to one query message (nil: no answer).
func (s *Service) answer(ctx context.Context, caller netip.Addr, msg []byte) []byte {
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
	var rec record
	switch {
	case h.OpCode != 0 || q.Class != dnsmessage.ClassINET:
		rh.RCode = dnsmessage.RCodeNotImplemented
	case name != s.zone && !strings.HasSuffix(name, "."+s.zone):
		rh.RCode = dnsmessage.RCodeRefused
	default:
		label := strings.TrimSuffix(strings.TrimSuffix(name, s.zone), ".")
		var found bool
		rec, found = s.lookup(ctx, caller, label)
		if !found && label != "" {
			rh.RCode = dnsmessage.RCodeNameError
		}
	}
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), rh)
	b.EnableCompression()
	b.StartQuestions()
	b.Question(q)
	b.StartAnswers()
	switch {
	case rec.a.IsValid() && q.Type == dnsmessage.TypeA:
		b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: TTL}, dnsmessage.AResource{A: rec.a.As4()})
	case rec.aaaa.IsValid() && q.Type == dnsmessage.TypeAAAA:
		b.AAAAResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: TTL}, dnsmessage.AAAAResource{AAAA: rec.aaaa.As16()})
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}

// record is what a name has: an IPv4 address, and its IPv6 one.
type record struct{ a, aaaa netip.Addr }

// lookup resolves a name relative to the zone for caller. found is true
// for a name that exists (it may have no record of the asked type).
func (s *Service) lookup(ctx context.Context, caller netip.Addr, label string) (record, bool) {
	if label == "" {
		return record{}, true
	}
	if rest, ok := strings.CutSuffix(label, ".lan"); ok && s.cfg.LANHost != nil {
		// A LAN host has the family of its LAN.
		a, ok := s.lanHost(ctx, caller, rest)
		if a.Is6() {
			return record{aaaa: a}, ok
		}
		return record{a: a}, ok
	}
	a, ok := s.overlay(ctx, caller, label)
	return record{a: a, aaaa: s.cfg.Overlay6.Addr(a)}, ok
}

// overlay resolves a platform name or a SIM name to its IPv4 address.
func (s *Service) overlay(ctx context.Context, caller netip.Addr, label string) (netip.Addr, bool) {
	if a, ok := s.cfg.Names[label]; ok {
		return a, true
	}
	simID, ok := strings.CutSuffix(label, ".sim")
	if !ok || strings.Contains(simID, ".") {
		return netip.Addr{}, false
	}
	me, ok := s.host.Caller(ctx, caller)
	if !ok {
		return netip.Addr{}, false
	}
	if simID == me.SIM.ID {
		return me.SIM.Address, true
	}
	// Not reachable: the name does not exist for this caller.
	target, ok := s.host.Reachable(ctx, me.SIM, simID)
	if !ok {
		return netip.Addr{}, false
	}
	return target.Address, true
}

// lanHost resolves "<host>.<sim-id>" for caller: a LAN host of a SIM the
// caller may reach (device-to-device policy), or of its own.
func (s *Service) lanHost(ctx context.Context, caller netip.Addr, rest string) (netip.Addr, bool) {
	host, ref, ok := strings.Cut(rest, ".")
	if !ok || host == "" || strings.Contains(ref, ".") {
		return netip.Addr{}, false
	}
	me, ok := s.host.Caller(ctx, caller)
	if !ok {
		return netip.Addr{}, false
	}
	simID, reach, onLAN, ok := s.cfg.LANHost(ref, host)
	if !ok {
		return netip.Addr{}, false
	}
	if simID != me.SIM.ID {
		if _, ok := s.host.Reachable(ctx, me.SIM, simID); !ok {
			return netip.Addr{}, false // the name does not exist for this caller
		}
	}
	if simID == me.SIM.ID {
		return onLAN, true // its own LAN, as it sees it
	}
	return reach, true
}
