// SPDX-License-Identifier: Apache-2.0

package ipfix

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

// Many flows of both families split into messages that each fit one
// datagram, carry the templates, say their own length, and number the
// data records before them.
func TestMessages(t *testing.T) {
	var flows []Flow
	now := time.Unix(1_800_000_000, 0)
	for i := 0; i < 100; i++ {
		flows = append(flows, Flow{Src: netip.AddrFrom4([4]byte{10, 128, 0, byte(i)}), Dst: netip.MustParseAddr("192.0.2.1"), SrcPort: 40000, DstPort: 443, Proto: 6, Packets: 3, Bytes: 300, Start: now, End: now},
			Flow{Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2"), SrcPort: 1, DstPort: 2, Proto: 17, Packets: 1, Bytes: 100, Start: now, End: now})
	}
	var e Exporter
	msgs := e.Messages(flows, now)
	if len(msgs) < 2 {
		t.Fatalf("%d messages for 200 flows", len(msgs))
	}
	var seen uint32
	for _, m := range msgs {
		be := binary.BigEndian
		if len(m) > MaxMessage || be.Uint16(m) != 10 || int(be.Uint16(m[2:])) != len(m) || be.Uint32(m[8:]) != seen {
			t.Fatalf("message: len %d, header % x, want seq %d", len(m), m[:16], seen)
		}
		if be.Uint16(m[16:]) != 2 {
			t.Fatal("a message without the templates")
		}
		// Count the data records by walking the sets.
		for off := 16; off < len(m); {
			id, n := be.Uint16(m[off:]), int(be.Uint16(m[off+2:]))
			switch id {
			case template4:
				seen += uint32((n - 4) / record4)
			case template6:
				seen += uint32((n - 4) / record6)
			}
			off += n
		}
	}
	if seen != 200 {
		t.Fatalf("%d data records in all, want 200", seen)
	}
	if m := (&Exporter{}).Messages(nil, now); len(m) != 1 || len(m[0]) != 16+len(templateSet()) {
		t.Fatalf("no flows: %d messages", len(m))
	}
}
