// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wirefleet/wirefleet/services/dns"
	"github.com/wirefleet/wirefleet/services/platform"
)

// egressDNS is the DNS service's view of egress (dns.Outside): which
// devices may have outside names resolved (their group has breakout), the
// grants answers give under FQDN rules, and the upstream resolvers.
type egressDNS struct {
	g *Gateway
	// refusedGrants counts answers not recorded: the SIM held too many.
	refusedGrants atomic.Uint64
}

var _ dns.Outside = (*egressDNS)(nil)

// Resolves implements dns.Outside.
func (e *egressDNS) Resolves(c platform.Caller, name string) bool {
	pol := e.g.policies.get(c.SIM.GroupID)
	if pol == nil || !pol.breakout || len(e.g.cfg.DNSUpstreams) == 0 {
		return false
	}
	if pol.resolveAllowedOnly {
		return pol.egress != nil && pol.egress.WantsName(name)
	}
	return true
}

// Answered implements dns.Outside: only names an FQDN rule of the caller's
// group matches are remembered; the rules are read again per packet, so
// a rule removed later grants nothing from then on.
func (e *egressDNS) Answered(c platform.Caller, name string, addrs []netip.Addr, ttl time.Duration) {
	pol := e.g.policies.get(c.SIM.GroupID)
	if pol == nil || pol.egress == nil || !pol.egress.WantsName(name) {
		return
	}
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if !e.g.grants.add(c.SIM.ID, name, addrs, ttl, e.g.clk.Now()) {
		e.refusedGrants.Add(1)
		e.g.log.Warn("egress: a SIM holds the most name grants; this answer grants nothing", "sim", c.SIM.ID, "name", name)
	}
}

// Exchange implements dns.Outside: the query over UDP to each upstream in
// turn, from the gateway host.
func (e *egressDNS) Exchange(ctx context.Context, query []byte) ([]byte, error) {
	err := errors.New("no upstream resolver")
	ups := e.g.cfg.DNSUpstreams
	for i, up := range ups {
		// Each resolver gets its share of what time is left, so one that
		// does not answer leaves the next one time to.
		uctx, cancel := ctx, context.CancelFunc(func() {})
		if dl, ok := ctx.Deadline(); ok {
			uctx, cancel = context.WithTimeout(ctx, time.Until(dl)/time.Duration(len(ups)-i))
		}
		var resp []byte
		resp, err = e.exchange(uctx, up, query)
		cancel()
		if err == nil {
			return resp, nil
		}
	}
	return nil, err
}

func (e *egressDNS) exchange(ctx context.Context, up netip.AddrPort, query []byte) ([]byte, error) {
	c, err := e.g.outside.Dial(ctx, "udp", up.String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(2 * time.Second)
	}
	c.SetDeadline(deadline)
	if _, err := c.Write(query); err != nil {
		return nil, err
	}
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}
