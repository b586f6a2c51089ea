// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"hash/fnv"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/ipfix"
	"github.com/wirefleet/wirefleet/internal/packet"
)

// Inspection: per group and interval, statistics of the traffic through
// the gateway — bytes, packets, flows, transport protocols, fragments,
// packet sizes and the application protocols detected — delivered as a
// JSON record to the data store (category "inspection", the group's, no
// SIM). Detection reads the first packets of each flow by port and by
// payload signature (HTTP's request line and Host, TLS's ClientHello and
// SNI, MQTT's CONNECT, SSH's banner, QUIC's long header); see the notes
// for why not nDPI. Field names follow nDPI's ndpiReader JSON where they
// fit.

// inspectedFlows bounds the flows one group's interval tracks: beyond,
// packets are counted but no new flow is.
const inspectedFlows = 65536

// sizeBuckets are the packet-size bucket bounds (≤64, ≤128, ≤256, ≤1024,
// ≤1500, larger).
var sizeBuckets = [...]int{64, 128, 256, 1024, 1500}

var sizeNames = [...]string{"upTo64", "upTo128", "upTo256", "upTo1024", "upTo1500", "above1500"}

// flowKey is a flow seen from either end.
type flowKey struct {
	a, b  netip.AddrPort
	proto uint8
}

func flowOf(ip *packet.Parsed) flowKey {
	a, b := netip.AddrPortFrom(ip.Src, ip.SrcPort), netip.AddrPortFrom(ip.Dst, ip.DstPort)
	if a.Compare(b) > 0 {
		a, b = b, a
	}
	return flowKey{a: a, b: b, proto: ip.Proto}
}

type flowStat struct {
	app         string
	packets     int64
	bytes       int64
	src, dst    netip.AddrPort // as its first packet went
	first, last time.Time
}

// groupStats is one group's interval.
type groupStats struct {
	mu                           sync.Mutex
	start                        time.Time
	bytes, packets               int64
	tcp, udp, icmp, other, frags int64
	sizes                        [len(sizeNames)]int64
	flows                        map[flowKey]*flowStat
	hosts, snis                  map[string]int64
}

func newGroupStats(now time.Time) *groupStats {
	return &groupStats{start: now, flows: map[flowKey]*flowStat{}, hosts: map[string]int64{}, snis: map[string]int64{}}
}

// statsKey names one record's subject: a group, or one SIM of it (a
// group with perSim).
type statsKey struct{ group, sim string }

// inspectKey is the subject a packet of SIM sim counts for.
func (p *groupPolicy) inspectKey(sim string) statsKey {
	if p.settings.Inspection.PerSIM {
		return statsKey{group: p.id, sim: sim}
	}
	return statsKey{group: p.id}
}

// inspector holds every inspected group's (or SIM's) interval.
type inspector struct {
	g         *Gateway
	mu        sync.Mutex
	groups    map[statsKey]*groupStats
	exporters map[statsKey]*ipfix.Exporter
	// forwarding holds a token per record being forwarded.
	forwarding chan struct{}
}

// exportIPFIX sends a group's interval flows to its collectors (UDP, from
// the gateway host, under the platform's egress policy).
func (in *inspector) exportIPFIX(k statsKey, flows []ipfix.Flow, now time.Time) {
	pol := in.g.policies.get(k.group)
	if pol == nil || len(pol.settings.Inspection.IPFIXCollectors) == 0 {
		return
	}
	e := in.exporters[k]
	if e == nil {
		h := fnv.New32a()
		h.Write([]byte(k.group + "/" + k.sim))
		e = &ipfix.Exporter{Domain: h.Sum32()}
		in.exporters[k] = e
	}
	msgs := e.Messages(flows, now)
	for _, c := range pol.settings.Inspection.IPFIXCollectors {
		ap, err := netip.ParseAddrPort(c)
		if err != nil {
			continue
		}
		if err := in.g.cfg.Egress.Check(ap.Addr()); err != nil {
			in.g.log.Warn("inspection: IPFIX collector refused by the egress policy (--egress-allow)", "collector", c)
			continue
		}
		pc, err := in.g.outside.ListenPacket("udp", ":0")
		if err != nil {
			in.g.log.Warn("inspection: IPFIX socket", "err", err)
			continue
		}
		to := net.UDPAddrFromAddrPort(ap)
		for _, m := range msgs {
			pc.WriteTo(m, to)
		}
		pc.Close()
	}
}

// account adds one packet of a group with inspection on.
func (in *inspector) account(k statsKey, pkt []byte, ip *packet.Parsed) {
	in.mu.Lock()
	gs := in.groups[k]
	if gs == nil {
		gs = newGroupStats(time.Now())
		in.groups[k] = gs
	}
	in.mu.Unlock()
	n := int64(ip.Length)
	gs.mu.Lock()
	defer gs.mu.Unlock()
	gs.bytes += n
	gs.packets++
	switch ip.Proto {
	case packet.TCP:
		gs.tcp++
	case packet.UDP:
		gs.udp++
	case packet.ICMP, packet.ICMPv6:
		gs.icmp++
	default:
		gs.other++
	}
	if ip.IsFragment() {
		gs.frags++
	}
	b := len(sizeBuckets)
	for i, limit := range sizeBuckets {
		if ip.Length <= limit {
			b = i
			break
		}
	}
	gs.sizes[b]++
	fk := flowOf(ip)
	f := gs.flows[fk]
	if f == nil {
		if len(gs.flows) >= inspectedFlows {
			return
		}
		f = &flowStat{src: netip.AddrPortFrom(ip.Src, ip.SrcPort), dst: netip.AddrPortFrom(ip.Dst, ip.DstPort), first: time.Now()}
		gs.flows[fk] = f
	}
	f.packets++
	f.bytes += n
	f.last = time.Now()
	if f.app == "" || f.app == "Unknown" && f.packets <= 8 {
		var payload []byte
		if ip.HasTransport && ip.HeaderLen < ip.Length {
			payload = transportPayload(pkt[ip.HeaderLen:ip.Length], ip.Proto)
		}
		app, detail := classify(ip, payload)
		f.app = app
		switch {
		case app == "HTTP" && detail != "" && len(gs.hosts) < 1024:
			gs.hosts[detail]++
		case (app == "TLS" || app == "MQTT-TLS") && detail != "" && len(gs.snis) < 1024:
			gs.snis[detail]++
		}
	}
}

// transportPayload returns what follows the TCP or UDP header.
func transportPayload(seg []byte, proto uint8) []byte {
	switch proto {
	case packet.TCP:
		if len(seg) >= 20 {
			if off := int(seg[12]>>4) * 4; off >= 20 && off <= len(seg) {
				return seg[off:]
			}
		}
	case packet.UDP:
		if len(seg) >= 8 {
			return seg[8:]
		}
	}
	return nil
}

// classify names a flow's application protocol from one of its packets,
// with a detail where it has one (HTTP's Host, TLS's server name). A flow
// whose packets carry no payload yet is "Unknown" until one does.
func classify(ip *packet.Parsed, p []byte) (app, detail string) {
	port := func(n uint16) bool { return ip.SrcPort == n || ip.DstPort == n }
	switch ip.Proto {
	case packet.TCP:
		switch {
		case len(p) == 0:
			return "Unknown", ""
		case bytes.HasPrefix(p, []byte("SSH-")):
			return "SSH", ""
		case len(p) > 5 && p[0] == 0x16 && p[1] == 0x03:
			sni := tlsServerName(p)
			if port(8883) {
				return "MQTT-TLS", sni
			}
			return "TLS", sni
		case isHTTPRequest(p):
			return "HTTP", httpHost(p)
		case bytes.HasPrefix(p, []byte("HTTP/1.")):
			return "HTTP", ""
		case p[0] == 0x10 && bytes.Contains(p[:min(len(p), 16)], []byte("MQ")):
			return "MQTT", ""
		case port(1883):
			return "MQTT", ""
		case port(502) && len(p) >= 8 && binary.BigEndian.Uint16(p[2:]) == 0: // MBAP protocol id 0
			return "Modbus", ""
		case port(53):
			return "DNS", ""
		}
	case packet.UDP:
		switch {
		case port(53) || port(5353):
			return "DNS", ""
		case port(123):
			return "NTP", ""
		case port(5683) || port(5684):
			return "CoAP", ""
		case port(443) && len(p) > 0 && p[0]&0xc0 == 0xc0:
			return "QUIC", ""
		}
	case packet.ICMP, packet.ICMPv6:
		return "ICMP", ""
	}
	return "Unknown", ""
}

var httpMethods = [][]byte{[]byte("GET "), []byte("POST "), []byte("PUT "), []byte("HEAD "), []byte("DELETE "), []byte("OPTIONS "), []byte("PATCH "), []byte("CONNECT ")}

func isHTTPRequest(p []byte) bool {
	for _, m := range httpMethods {
		if bytes.HasPrefix(p, m) {
			return true
		}
	}
	return false
}

// httpHost returns the Host header of a request's first segment.
func httpHost(p []byte) string {
	for _, line := range bytes.Split(p[:min(len(p), 4096)], []byte("\r\n")) {
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && strings.EqualFold(string(k), "host") {
			h := strings.ToLower(strings.TrimSpace(string(v)))
			if len(h) <= 253 {
				return h
			}
		}
	}
	return ""
}

// tlsServerName returns the server_name of a TLS ClientHello record, if
// the first segment holds it.
func tlsServerName(p []byte) string {
	// record header (5) + handshake header (4) + version (2) + random (32)
	if len(p) < 5+4+2+32+1 || p[5] != 1 {
		return ""
	}
	i := 5 + 4 + 2 + 32
	skip := func(lenBytes int) bool {
		if i+lenBytes > len(p) {
			return false
		}
		n := 0
		for k := 0; k < lenBytes; k++ {
			n = n<<8 | int(p[i+k])
		}
		i += lenBytes + n
		return i <= len(p)
	}
	if !skip(1) || !skip(2) || !skip(1) { // session id, cipher suites, compression
		return ""
	}
	if i+2 > len(p) {
		return ""
	}
	end := min(len(p), i+2+int(binary.BigEndian.Uint16(p[i:])))
	i += 2
	for i+4 <= end {
		typ, n := binary.BigEndian.Uint16(p[i:]), int(binary.BigEndian.Uint16(p[i+2:]))
		i += 4
		if i+n > end {
			return ""
		}
		if typ == 0 && n >= 5 { // server_name: list length, type, name length, name
			ext := p[i : i+n]
			if ext[2] == 0 {
				l := int(binary.BigEndian.Uint16(ext[3:]))
				if 5+l <= len(ext) && l <= 253 {
					return strings.ToLower(string(ext[5 : 5+l]))
				}
			}
			return ""
		}
		i += n
	}
	return ""
}

// breeds are nDPI's: what a protocol is to a network operator.
var breeds = map[string]string{"TLS": "Safe", "MQTT-TLS": "Safe", "SSH": "Acceptable", "QUIC": "Acceptable", "DNS": "Acceptable", "NTP": "Acceptable",
	"HTTP": "Acceptable", "MQTT": "Acceptable", "CoAP": "Acceptable", "Modbus": "Acceptable", "ICMP": "Acceptable", "Unknown": "Unrated"}

// record builds a group's record and starts its next interval.
func (in *inspector) take(k statsKey, now time.Time) (fleet.InspectionRecord, []ipfix.Flow, bool) {
	in.mu.Lock()
	gs := in.groups[k]
	if gs == nil {
		in.mu.Unlock()
		return fleet.InspectionRecord{}, nil, false
	}
	in.groups[k] = newGroupStats(now)
	in.mu.Unlock()
	gs.mu.Lock()
	defer gs.mu.Unlock()
	r := fleet.InspectionRecord{Kind: "inspection"}
	r.GroupID, r.SIMID, r.Start, r.End = k.group, k.sim, gs.start.UTC(), now.UTC()
	st := &r.Traffic.Statistics
	st.Bytes, st.Packets, st.Flows = gs.bytes, gs.packets, len(gs.flows)
	st.TCP, st.UDP, st.ICMP, st.Other, st.Fragmented = gs.tcp, gs.udp, gs.icmp, gs.other, gs.frags
	st.Sizes = map[string]int64{}
	for i, n := range gs.sizes {
		st.Sizes[sizeNames[i]] = n
	}
	byApp := map[string]*fleet.DetectedProtocol{}
	flows := make([]ipfix.Flow, 0, len(gs.flows))
	for fk, f := range gs.flows {
		flows = append(flows, ipfix.Flow{Src: f.src.Addr(), Dst: f.dst.Addr(), SrcPort: f.src.Port(), DstPort: f.dst.Port(), Proto: fk.proto,
			Packets: uint64(f.packets), Bytes: uint64(f.bytes), Start: f.first, End: f.last})
		d := byApp[f.app]
		if d == nil {
			d = &fleet.DetectedProtocol{Name: f.app, Breed: breeds[f.app]}
			byApp[f.app] = d
		}
		d.Packets += f.packets
		d.Bytes += f.bytes
		d.Flows++
	}
	r.Detected.Protos = []fleet.DetectedProtocol{}
	for _, d := range byApp {
		r.Detected.Protos = append(r.Detected.Protos, *d)
	}
	slices.SortFunc(r.Detected.Protos, func(a, b fleet.DetectedProtocol) int { return strings.Compare(a.Name, b.Name) })
	if len(gs.hosts) > 0 {
		r.HTTPHosts = gs.hosts
	}
	if len(gs.snis) > 0 {
		r.TLSNames = gs.snis
	}
	return r, flows, true
}

// run delivers each inspected group's record at its interval, until the
// gateway closes.
// RecordForwarder posts a record along a group's HTTP forwarder route, as
// forwarder.Service.ForwardRecord does.
type RecordForwarder interface {
	ForwardRecord(ctx context.Context, groupName string, routes []fleet.HTTPForward, sim *fleet.SIM, path, contentType string, body []byte) error
}

// forwardsInFlight bounds the records being forwarded at once: a slow
// destination must not hold up the next interval's records of others.
const forwardsInFlight = 16

// forward posts a record along its group's route for inspection.forwardPath
// in the background; with forwardsInFlight under way it is dropped, logged.
func (in *inspector) forward(id statsKey, pol *groupPolicy, body []byte) {
	fw := in.g.cfg.RecordForwarder
	if fw == nil {
		return
	}
	select {
	case in.forwarding <- struct{}{}:
	default:
		in.g.log.Warn("inspection: record not forwarded, too many under way", "group", id.group, "sim", id.sim)
		return
	}
	in.g.wg.Add(1)
	go func() {
		defer in.g.wg.Done()
		defer func() { <-in.forwarding }()
		ctx, cancel := context.WithTimeout(in.g.ctx, time.Minute)
		defer cancel()
		var sim *fleet.SIM
		if id.sim != "" {
			s, err := in.g.st.SIM(ctx, id.sim)
			if err != nil {
				in.g.log.Warn("inspection: reading the SIM of a record to forward", "sim", id.sim, "err", err)
				return
			}
			sim = &s
		}
		if err := fw.ForwardRecord(ctx, pol.name, pol.settings.Forwarders.HTTP, sim, pol.settings.Inspection.ForwardPath, "application/json", body); err != nil {
			in.g.log.Warn("inspection: forwarding the record", "group", id.group, "sim", id.sim, "err", err)
		}
	}()
}

func (in *inspector) run(records store.RecordWriter) {
	defer in.g.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-in.g.ctx.Done():
			return
		case now := <-t.C:
			in.mu.Lock()
			var due []statsKey
			for id, gs := range in.groups {
				pol := in.g.policies.get(id.group)
				if pol == nil || pol.inspectEvery == 0 {
					due = append(due, id) // turned off: its last interval, then no more
					continue
				}
				if now.Sub(gs.start) >= time.Duration(pol.inspectEvery)*time.Second {
					due = append(due, id)
				}
			}
			in.mu.Unlock()
			for _, id := range due {
				r, flows, ok := in.take(id, now)
				if !ok {
					continue
				}
				in.exportIPFIX(id, flows, now)
				if pol := in.g.policies.get(id.group); pol == nil || pol.inspectEvery == 0 {
					in.mu.Lock()
					delete(in.groups, id)
					in.mu.Unlock()
				}
				if pol := in.g.policies.get(id.group); pol != nil {
					r.Group = pol.name
				}
				body, _ := json.Marshal(r)
				if pol := in.g.policies.get(id.group); pol != nil && pol.settings.Inspection.Webhook && pol.settings.Security.WebhookURL != "" {
					in.g.webhooks.SendJSON(pol.settings.Security.WebhookURL, pol.settings.Security.WebhookSecret, "inspection of "+id.group+" "+id.sim, body)
				}
				if pol := in.g.policies.get(id.group); pol != nil && pol.settings.Inspection.ForwardPath != "" {
					in.forward(id, pol, body)
				}
				if records == nil {
					continue
				}
				ctx, cancel := context.WithTimeout(in.g.ctx, 10*time.Second)
				err := records.AppendRecords(ctx, []fleet.Record{{GroupID: id.group, SIMID: id.sim, Time: r.End, Received: now.UTC(), Category: fleet.InspectionCategory, ContentType: "application/json", Payload: body}})
				cancel()
				if err != nil {
					in.g.log.Warn("inspection: storing the record", "group", id.group, "sim", id.sim, "err", err)
				}
			}
		}
	}
}
