// SPDX-License-Identifier: Apache-2.0

// Package ipfix encodes flow records as IPFIX messages (RFC 7011) for
// collectors such as nfdump's nfcapd: one template for IPv4 flows, one for
// IPv6, both sent again in every message (over UDP a collector that
// restarts must be able to read the next message on its own, RFC 7011
// §8.4), and data records of addresses, ports, protocol, packet and byte
// counts and start and end times.
package ipfix

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// Flow is one flow of an interval.
type Flow struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Proto            uint8
	Packets, Bytes   uint64
	Start, End       time.Time
}

// Information elements (IANA IPFIX registry) and their lengths.
var (
	fields4 = [][2]uint16{{8, 4}, {12, 4}, {7, 2}, {11, 2}, {4, 1}, {2, 8}, {1, 8}, {152, 8}, {153, 8}}
	fields6 = [][2]uint16{{27, 16}, {28, 16}, {7, 2}, {11, 2}, {4, 1}, {2, 8}, {1, 8}, {152, 8}, {153, 8}}
)

const (
	template4, template6 = 256, 257
	// MaxMessage keeps a message inside one unfragmented UDP datagram on
	// any path the platform uses.
	MaxMessage = 1400
	headerLen  = 16
	record4    = 4 + 4 + 2 + 2 + 1 + 8 + 8 + 8 + 8
	record6    = 16 + 16 + 2 + 2 + 1 + 8 + 8 + 8 + 8
)

// Exporter numbers the messages of one observation domain.
type Exporter struct {
	Domain uint32
	seq    uint32 // data records sent so far (RFC 7011 §3.1)
}

// templateSet is the template set both templates are in.
func templateSet() []byte {
	be := binary.BigEndian
	var b []byte
	b = be.AppendUint16(b, 2) // template set
	b = be.AppendUint16(b, 0) // length, below
	for _, t := range []struct {
		id     uint16
		fields [][2]uint16
	}{{template4, fields4}, {template6, fields6}} {
		b = be.AppendUint16(b, t.id)
		b = be.AppendUint16(b, uint16(len(t.fields)))
		for _, f := range t.fields {
			b = be.AppendUint16(b, f[0])
			b = be.AppendUint16(b, f[1])
		}
	}
	be.PutUint16(b[2:], uint16(len(b)))
	return b
}

// Messages encodes flows (exported at now) into as many messages as they
// need, each with the templates.
func (e *Exporter) Messages(flows []Flow, now time.Time) [][]byte {
	be := binary.BigEndian
	tmpl := templateSet()
	var out [][]byte
	for len(flows) > 0 || out == nil {
		msg := make([]byte, headerLen, MaxMessage)
		msg = append(msg, tmpl...)
		var records uint32
		for _, fam := range []struct {
			v6  bool
			id  uint16
			len int
		}{{false, template4, record4}, {true, template6, record6}} {
			setAt := len(msg)
			rest := flows[:0:0]
			for _, f := range flows {
				if f.Src.Is6() != fam.v6 || len(msg)+4+fam.len > MaxMessage {
					rest = append(rest, f)
					continue
				}
				if len(msg) == setAt {
					msg = be.AppendUint16(msg, fam.id)
					msg = be.AppendUint16(msg, 0)
				}
				msg = append(msg, f.Src.AsSlice()...)
				msg = append(msg, f.Dst.AsSlice()...)
				msg = be.AppendUint16(msg, f.SrcPort)
				msg = be.AppendUint16(msg, f.DstPort)
				msg = append(msg, f.Proto)
				msg = be.AppendUint64(msg, f.Packets)
				msg = be.AppendUint64(msg, f.Bytes)
				msg = be.AppendUint64(msg, uint64(f.Start.UnixMilli()))
				msg = be.AppendUint64(msg, uint64(f.End.UnixMilli()))
				records++
			}
			if len(msg) > setAt {
				be.PutUint16(msg[setAt+2:], uint16(len(msg)-setAt))
			}
			flows = rest
		}
		be.PutUint16(msg[0:], 10)
		be.PutUint16(msg[2:], uint16(len(msg)))
		be.PutUint32(msg[4:], uint32(now.Unix()))
		be.PutUint32(msg[8:], e.seq)
		be.PutUint32(msg[12:], e.Domain)
		e.seq += records
		out = append(out, msg)
		if records == 0 {
			break // nothing fitted (cannot happen with MaxMessage) or no flows: the templates alone
		}
	}
	return out
}
