// SPDX-License-Identifier: Apache-2.0

// Package pcapng writes packet captures in the pcapng format (the IETF
// draft-ietf-opsawg-pcapng, what tcpdump, tshark and Wireshark read): one
// section, one interface of raw IP packets, and per packet its timestamp
// and direction (the epb_flags option), which classic pcap cannot carry.
package pcapng

import (
	"encoding/binary"
	"io"
	"time"
)

// Directions of a packet, as epb_flags says them.
const (
	Inbound  = 1
	Outbound = 2
)

// linkTypeRaw is LINKTYPE_RAW: each packet starts with its IPv4 or IPv6
// header.
const linkTypeRaw = 101

// Writer writes one capture.
type Writer struct {
	w   io.Writer
	buf []byte
}

// NewWriter writes the section and interface headers to w.
func NewWriter(w io.Writer) (*Writer, error) {
	le := binary.LittleEndian
	var h []byte
	// Section header block: type, length, byte-order magic, version 1.0,
	// section length unknown (-1), length again.
	h = le.AppendUint32(h, 0x0A0D0D0A)
	h = le.AppendUint32(h, 28)
	h = le.AppendUint32(h, 0x1A2B3C4D)
	h = le.AppendUint16(h, 1)
	h = le.AppendUint16(h, 0)
	h = le.AppendUint64(h, ^uint64(0))
	h = le.AppendUint32(h, 28)
	// Interface description block: raw IP, no snap length limit;
	// timestamps in microseconds (the default resolution).
	h = le.AppendUint32(h, 1)
	h = le.AppendUint32(h, 20)
	h = le.AppendUint16(h, linkTypeRaw)
	h = le.AppendUint16(h, 0)
	h = le.AppendUint32(h, 0)
	h = le.AppendUint32(h, 20)
	if _, err := w.Write(h); err != nil {
		return nil, err
	}
	return &Writer{w: w}, nil
}

// HeaderLen is the size NewWriter writes.
const HeaderLen = 48

// RecordLen returns the bytes WritePacket writes for an n-byte packet.
func RecordLen(n int) int { return 32 + (n+3)&^3 + 12 }

// WritePacket writes one packet seen at t in direction dir.
func (w *Writer) WritePacket(t time.Time, dir uint32, pkt []byte) error {
	le := binary.LittleEndian
	n := RecordLen(len(pkt))
	ts := uint64(t.UnixMicro())
	b := w.buf[:0]
	b = le.AppendUint32(b, 6) // enhanced packet block
	b = le.AppendUint32(b, uint32(n))
	b = le.AppendUint32(b, 0) // interface 0
	b = le.AppendUint32(b, uint32(ts>>32))
	b = le.AppendUint32(b, uint32(ts))
	b = le.AppendUint32(b, uint32(len(pkt)))
	b = le.AppendUint32(b, uint32(len(pkt)))
	b = append(b, pkt...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	b = le.AppendUint16(b, 2) // epb_flags
	b = le.AppendUint16(b, 4)
	b = le.AppendUint32(b, dir)
	b = le.AppendUint32(b, 0) // opt_endofopt
	b = le.AppendUint32(b, uint32(n))
	w.buf = b
	_, err := w.w.Write(b)
	return err
}
