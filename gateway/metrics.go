// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wirefleet/wirefleet/engine"
	"github.com/wirefleet/wirefleet/fleet"
)

// dropCounters counts router drops by reason without locks on the data path.
type dropCounters struct {
	c [len(dropReasons)]atomic.Uint64 // indexed like dropReasons
}

func (d *dropCounters) index(reason string) int {
	for i, r := range dropReasons {
		if r == reason {
			return i
		}
	}
	return len(dropReasons) - 1
}

func (d *dropCounters) add(reason string)            { d.c[d.index(reason)].Add(1) }
func (d *dropCounters) addN(reason string, n uint64) { d.c[d.index(reason)].Add(n) }
func (d *dropCounters) get(reason string) uint64     { return d.c[d.index(reason)].Load() }

// Collector returns a Prometheus collector of the gateway's figures, read
// at scrape time: sessions, handshakes by result, bytes, drops by reason
// (router and engine), under-load state.
func (g *Gateway) Collector() prometheus.Collector { return (*collector)(g) }

// Stats returns the gateway's state at a glance. It walks every held
// peer: callers share one reading rather than asking per viewer.
func (g *Gateway) Stats() fleet.GatewayStats {
	c := g.eng.Counters()
	st := fleet.GatewayStats{Peers: int(c.ActivePeers), Handshakes: c.HandshakesCompleted, UnderLoad: c.UnderLoad}
	g.eng.EachPeer(func(p *engine.Peer) {
		s := p.Stats()
		if s.HasSession {
			st.Sessions++
		}
		st.RxBytes += s.RxBytes
		st.TxBytes += s.TxBytes
	})
	return st
}

type collector Gateway

var (
	descSessions   = prometheus.NewDesc("wirefleet_gateway_sessions", "SIMs with a live WireGuard session.", nil, nil)
	descPeers      = prometheus.NewDesc("wirefleet_gateway_peers", "Peers held by the engine (sessions and recently active).", nil, nil)
	descHandshakes = prometheus.NewDesc("wirefleet_gateway_handshakes_total", "Handshake messages by result (ok, or the reason of the rejection).", []string{"result"}, nil)
	descBytes      = prometheus.NewDesc("wirefleet_gateway_bytes_total", "Inner bytes of held peers, by direction (from or to devices).", []string{"direction"}, nil)
	descDrops      = prometheus.NewDesc("wirefleet_gateway_dropped_packets_total", "Packets dropped, by where (router, engine) and reason.", []string{"where", "reason"}, nil)
	descUnderLoad  = prometheus.NewDesc("wirefleet_gateway_under_load", "1 while the engine demands cookies from initiators.", nil, nil)
	descAlerts     = prometheus.NewDesc("wirefleet_monitor_alerts_total", "Security alerts raised, by kind.", []string{"kind"}, nil)

	routeLabels      = []string{"sim", "prefix", "direction"}
	descRoutePackets = prometheus.NewDesc("wirefleet_gateway_route_packets_total", "Packets through a route behind a SIM, by direction (to_lan, from_lan).", routeLabels, nil)
	descRouteBytes   = prometheus.NewDesc("wirefleet_gateway_route_bytes_total", "Bytes through a route behind a SIM, by direction (to_lan, from_lan).", routeLabels, nil)
	descGatePackets  = prometheus.NewDesc("wirefleet_gateway_gate_peer_packets_total", "Packets of a VXLAN Gate peer, by direction (from_peer, to_peer).", []string{"gate_peer", "direction"}, nil)
	descRouteDrops   = prometheus.NewDesc("wirefleet_gateway_route_dropped_packets_total", "Packets for a route behind a SIM dropped, by reason.", []string{"sim", "prefix", "reason"}, nil)

	descEgressRule        = prometheus.NewDesc("wirefleet_gateway_egress_rule_packets_total", "Packets beyond the fleet decided by a group's egress rule (its index), since the rules last changed.", []string{"group", "rule", "action"}, nil)
	descEgressUnmatched   = prometheus.NewDesc("wirefleet_gateway_egress_unmatched_packets_total", "Packets beyond the fleet no egress rule of the group matched (denied), since the rules last changed.", []string{"group"}, nil)
	descBreakoutFlows     = prometheus.NewDesc("wirefleet_gateway_breakout_flows_total", "Flows opened from the gateway host for devices (breakout), by protocol.", []string{"protocol"}, nil)
	descBreakoutFailed    = prometheus.NewDesc("wirefleet_gateway_breakout_failed_total", "Breakout flows the outside refused or the platform's egress policy kept from leaving.", nil, nil)
	descMirror            = prometheus.NewDesc("wirefleet_gateway_mirror_packets_total", "Copies of packets for mirror peers, by result: sent, dropped (queue full, rate cap, socket), denied (the platform's egress policy refuses the peer).", []string{"result"}, nil)
	descBreakoutOverShare = prometheus.NewDesc("wirefleet_gateway_breakout_refused_total", "Breakout flows refused because their device had its share open (512 flows, 64 TCP connections being set up).", nil, nil)
	descGrantsRefused     = prometheus.NewDesc("wirefleet_gateway_egress_grants_refused_total", "DNS answers that granted nothing because the SIM held the most name grants.", nil, nil)
	descCaptures          = prometheus.NewDesc("wirefleet_gateway_capture_sessions", "Packet capture sessions writing on this gateway.", nil, nil)
	descMeshPackets       = prometheus.NewDesc("wirefleet_mesh_packets_total", "Device-to-device packets over the inter-node mesh: forwarded (to the node holding the destination's session) or delivered (from another node to a session here).", []string{"direction"}, nil)
	descMeshDrops         = prometheus.NewDesc("wirefleet_mesh_dropped_packets_total", "Mesh packets dropped, by reason (target-not-here, not-a-sim, lookup-queue-full, bad-source, source-unknown while looked up, source-elsewhere: its session is not on the sending node, d2d-denied, lookup-share and hold-share: a sending SIM past its share of lookups or of packets waiting; engine-<reason>: the mesh engine's own, with the engine's reasons of wirefleet_gateway_dropped_packets_total{where=\"engine\"}).", []string{"reason"}, nil)
	descMeshHandshakes    = prometheus.NewDesc("wirefleet_mesh_handshakes_total", "Mesh handshake messages by result (ok, or the reason of the rejection: unknown-key is a node not in the registry).", []string{"result"}, nil)
	descMeshPeers         = prometheus.NewDesc("wirefleet_mesh_peers", "Other nodes held as mesh peers.", nil, nil)
	descTakeovers         = prometheus.NewDesc("wirefleet_gateway_takeovers_total", "Devices sending packets of a session another node held, by what this node did: initiated a handshake, no-presence (no node had a session at that endpoint), refused (the SIM may not connect, or is held here elsewhere), store-error, dropped (over the rate or the queue).", []string{"result"}, nil)
)

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSessions, descPeers, descHandshakes, descBytes, descDrops, descUnderLoad, descAlerts, descRoutePackets, descRouteBytes, descRouteDrops, descGatePackets,
		descEgressRule, descEgressUnmatched, descBreakoutFlows, descBreakoutFailed, descGrantsRefused, descMirror, descBreakoutOverShare, descCaptures, descTakeovers, descMeshPackets, descMeshDrops, descMeshHandshakes, descMeshPeers} {
		ch <- d
	}
	(*Gateway)(c).shares.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	g := (*Gateway)(c)
	g.shares.Collect(ch)
	for i, r := range takeoverResults {
		ch <- prometheus.MustNewConstMetric(descTakeovers, prometheus.CounterValue, float64(g.takeover.results[i].Load()), r)
	}
	if m := g.mesh; m != nil {
		ch <- prometheus.MustNewConstMetric(descMeshPackets, prometheus.CounterValue, float64(m.forwarded.Load()), "forwarded")
		ch <- prometheus.MustNewConstMetric(descMeshPackets, prometheus.CounterValue, float64(m.delivered.Load()), "delivered")
		for i, r := range meshDropReasons {
			ch <- prometheus.MustNewConstMetric(descMeshDrops, prometheus.CounterValue, float64(m.drops[i].Load()), r)
		}
		mc := m.eng.Counters()
		for r, n := range mc.Dropped { // the mesh engine's own: before the mesh sees the packet
			ch <- prometheus.MustNewConstMetric(descMeshDrops, prometheus.CounterValue, float64(n), "engine-"+r)
		}
		ch <- prometheus.MustNewConstMetric(descMeshHandshakes, prometheus.CounterValue, float64(mc.HandshakesCompleted), "ok")
		for r, n := range mc.HandshakesRejected {
			ch <- prometheus.MustNewConstMetric(descMeshHandshakes, prometheus.CounterValue, float64(n), r)
		}
		m.mu.RLock()
		n := len(m.peers)
		m.mu.RUnlock()
		ch <- prometheus.MustNewConstMetric(descMeshPeers, prometheus.GaugeValue, float64(n))
	}
	counters := g.eng.Counters()
	var sessions int
	var rx, tx uint64
	g.eng.EachPeer(func(p *engine.Peer) {
		s := p.Stats()
		if s.HasSession {
			sessions++
		}
		rx += s.RxBytes
		tx += s.TxBytes
	})
	ch <- prometheus.MustNewConstMetric(descSessions, prometheus.GaugeValue, float64(sessions))
	ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, float64(counters.ActivePeers))
	ch <- prometheus.MustNewConstMetric(descHandshakes, prometheus.CounterValue, float64(counters.HandshakesCompleted), "ok")
	for r, n := range counters.HandshakesRejected {
		ch <- prometheus.MustNewConstMetric(descHandshakes, prometheus.CounterValue, float64(n), r)
	}
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(rx), "from_devices")
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(tx), "to_devices")
	for _, r := range dropReasons {
		ch <- prometheus.MustNewConstMetric(descDrops, prometheus.CounterValue, float64(g.router.drops.get(r)), "router", r)
	}
	for r, n := range counters.Dropped {
		ch <- prometheus.MustNewConstMetric(descDrops, prometheus.CounterValue, float64(n), "engine", r)
	}
	under := 0.0
	if counters.UnderLoad {
		under = 1
	}
	ch <- prometheus.MustNewConstMetric(descUnderLoad, prometheus.GaugeValue, under)
	for kind, n := range g.alerts.snapshot() {
		ch <- prometheus.MustNewConstMetric(descAlerts, prometheus.CounterValue, float64(n), kind)
	}
	if g.vx != nil {
		for _, r := range []string{dropVXLANUnknown, dropVXLANMalformed, dropVXLANSource} {
			ch <- prometheus.MustNewConstMetric(descDrops, prometheus.CounterValue, float64(g.vx.drops.get(r)), "vxlan", r)
		}
		for _, p := range g.vx.table.Load().byInner {
			ch <- prometheus.MustNewConstMetric(descGatePackets, prometheus.CounterValue, float64(p.rxPackets.Load()), p.ID, "from_peer")
			ch <- prometheus.MustNewConstMetric(descGatePackets, prometheus.CounterValue, float64(p.txPackets.Load()), p.ID, "to_peer")
		}
	}
	g.policies.each(func(p *groupPolicy) {
		if p.egress == nil {
			return
		}
		hits, miss := p.egress.Hits()
		for i, n := range hits {
			if n > 0 {
				action := fleet.EgressDeny
				if p.settings.Egress.Rules[i].Action == fleet.EgressAllow {
					action = fleet.EgressAllow
				}
				ch <- prometheus.MustNewConstMetric(descEgressRule, prometheus.CounterValue, float64(n), p.name, strconv.Itoa(i), action)
			}
		}
		ch <- prometheus.MustNewConstMetric(descEgressUnmatched, prometheus.CounterValue, float64(miss), p.name)
	})
	if b := g.bo; b != nil {
		ch <- prometheus.MustNewConstMetric(descBreakoutFlows, prometheus.CounterValue, float64(b.tcpFlows.Load()), "tcp")
		ch <- prometheus.MustNewConstMetric(descBreakoutFlows, prometheus.CounterValue, float64(b.udpFlows.Load()), "udp")
		ch <- prometheus.MustNewConstMetric(descBreakoutFlows, prometheus.CounterValue, float64(b.pingsSent.Load()), "icmp")
		ch <- prometheus.MustNewConstMetric(descBreakoutFailed, prometheus.CounterValue, float64(b.dialFailed.Load()))
		ch <- prometheus.MustNewConstMetric(descBreakoutOverShare, prometheus.CounterValue, float64(b.overShare.Load()))
	}
	ch <- prometheus.MustNewConstMetric(descMirror, prometheus.CounterValue, float64(g.mirror.sent.Load()), "sent")
	ch <- prometheus.MustNewConstMetric(descMirror, prometheus.CounterValue, float64(g.mirror.dropped.Load()), "dropped")
	ch <- prometheus.MustNewConstMetric(descMirror, prometheus.CounterValue, float64(g.mirror.denied.Load()), "denied")
	ch <- prometheus.MustNewConstMetric(descCaptures, prometheus.GaugeValue, float64(len(g.caps.running())))
	ch <- prometheus.MustNewConstMetric(descGrantsRefused, prometheus.CounterValue, float64(g.egressDNS.refusedGrants.Load()))
	for _, r := range g.lans.all() {
		p := r.prefix.String()
		ch <- prometheus.MustNewConstMetric(descRoutePackets, prometheus.CounterValue, float64(r.inPackets.Load()), r.sim, p, "to_lan")
		ch <- prometheus.MustNewConstMetric(descRoutePackets, prometheus.CounterValue, float64(r.outPackets.Load()), r.sim, p, "from_lan")
		ch <- prometheus.MustNewConstMetric(descRouteBytes, prometheus.CounterValue, float64(r.inBytes.Load()), r.sim, p, "to_lan")
		ch <- prometheus.MustNewConstMetric(descRouteBytes, prometheus.CounterValue, float64(r.outBytes.Load()), r.sim, p, "from_lan")
		for _, reason := range dropReasons {
			if n := r.drops.get(reason); n > 0 {
				ch <- prometheus.MustNewConstMetric(descRouteDrops, prometheus.CounterValue, float64(n), r.sim, p, reason)
			}
		}
	}
}
