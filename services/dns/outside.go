// SPDX-License-Identifier: Apache-2.0

package dns

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/wirefleet/wirefleet/services/platform"
)

// Outside is how the service answers names beyond the zone, for callers
// whose egress lets them: the gateway's egress policy, which decides who
// may resolve what, records what answers granted (FQDN rules), and holds
// the upstream resolvers.
type Outside interface {
	// Resolves reports whether the caller may have name resolved.
	Resolves(c platform.Caller, name string) bool
	// Answered records the addresses an answer for name gave the caller,
	// valid for ttl (the lowest TTL of the records that led to them).
	Answered(c platform.Caller, name string, addrs []netip.Addr, ttl time.Duration)
	// Exchange asks the upstream resolvers, returning their answer.
	Exchange(ctx context.Context, query []byte) ([]byte, error)
}

// Forwarding bounds: an upstream that is slow must not hold up the zone's
// answers, and one device must not hold every forwarding slot.
const (
	maxForwarding       = 1024
	maxForwardingPerSIM = 16
	forwardTimeout      = 3 * time.Second
)

// forwarder runs outside lookups off the serving loop, bounded in all and
// per SIM.
type forwarder struct {
	mu    sync.Mutex
	total int
	bySIM map[string]int
}

func (f *forwarder) acquire(sim string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.total >= maxForwarding || f.bySIM[sim] >= maxForwardingPerSIM {
		return false
	}
	if f.bySIM == nil {
		f.bySIM = map[string]int{}
	}
	f.total++
	f.bySIM[sim]++
	return true
}

func (f *forwarder) release(sim string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.total--
	if f.bySIM[sim]--; f.bySIM[sim] == 0 {
		delete(f.bySIM, sim)
	}
}

// forward answers a query outside the zone for caller, asynchronously:
// false when the query is not one to forward (the caller is answered as
// before: REFUSED).
func (s *Service) forward(pc net.PacketConn, to net.Addr, caller netip.Addr, msg []byte, q dnsmessage.Question, h dnsmessage.Header) bool {
	if s.cfg.Outside == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), forwardTimeout)
	c, ok := s.host.Caller(ctx, caller)
	cancel()
	if !ok || !s.cfg.Outside.Resolves(c, q.Name.String()) {
		return false
	}
	if !s.fwd.acquire(c.SIM.ID) {
		pc.WriteTo(s.failure(h, q, dnsmessage.RCodeServerFailure), to)
		return true
	}
	query := append([]byte(nil), msg...)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.fwd.release(c.SIM.ID)
		ctx, cancel := context.WithTimeout(context.Background(), forwardTimeout)
		defer cancel()
		resp, err := s.cfg.Outside.Exchange(ctx, query)
		if err != nil || !sameQuery(resp, h.ID, q) {
			pc.WriteTo(s.failure(h, q, dnsmessage.RCodeServerFailure), to)
			return
		}
		if addrs, ttl := addresses(resp, q.Name); len(addrs) > 0 {
			s.cfg.Outside.Answered(c, q.Name.String(), addrs, ttl)
		}
		pc.WriteTo(resp, to)
	}()
	return true
}

// failure is an answer with no records and rcode.
func (s *Service) failure(h dnsmessage.Header, q dnsmessage.Question, rcode dnsmessage.RCode) []byte {
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), dnsmessage.Header{ID: h.ID, Response: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true, RCode: rcode})
	b.StartQuestions()
	b.Question(q)
	out, _ := b.Finish()
	return out
}

// sameQuery reports whether resp answers the query id asked about q.
func sameQuery(resp []byte, id uint16, q dnsmessage.Question) bool {
	var p dnsmessage.Parser
	h, err := p.Start(resp)
	if err != nil || !h.Response || h.ID != id {
		return false
	}
	rq, err := p.Question()
	return err == nil && rq.Type == q.Type && strings.EqualFold(rq.Name.String(), q.Name.String())
}

// addresses returns the A and AAAA records of resp reached from name
// through its CNAME chain, and the lowest TTL along the way. Records for
// other names (additional data a resolver may add) grant nothing.
func addresses(resp []byte, name dnsmessage.Name) ([]netip.Addr, time.Duration) {
	var p dnsmessage.Parser
	if _, err := p.Start(resp); err != nil {
		return nil, 0
	}
	if err := p.SkipAllQuestions(); err != nil {
		return nil, 0
	}
	answers, err := p.AllAnswers()
	if err != nil {
		return nil, 0
	}
	chain := map[string]bool{strings.ToLower(name.String()): true}
	ttl := uint32(1<<32 - 1)
	// CNAMEs may come in any order: follow them until the chain stops growing.
	for grown := true; grown; {
		grown = false
		for _, a := range answers {
			if c, ok := a.Body.(*dnsmessage.CNAMEResource); ok && chain[strings.ToLower(a.Header.Name.String())] {
				if t := strings.ToLower(c.CNAME.String()); !chain[t] {
					chain[t] = true
					ttl = min(ttl, a.Header.TTL)
					grown = true
				}
			}
		}
	}
	var out []netip.Addr
	for _, a := range answers {
		if !chain[strings.ToLower(a.Header.Name.String())] {
			continue
		}
		switch r := a.Body.(type) {
		case *dnsmessage.AResource:
			out = append(out, netip.AddrFrom4(r.A))
		case *dnsmessage.AAAAResource:
			out = append(out, netip.AddrFrom16(r.AAAA))
		default:
			continue
		}
		ttl = min(ttl, a.Header.TTL)
	}
	return out, time.Duration(ttl) * time.Second
}
