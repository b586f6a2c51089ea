// SPDX-License-Identifier: Apache-2.0

package packet

import (
	"encoding/binary"
	"testing"
)

// FuzzDecode: any bytes either fail with a Version-0 view or give a view
// whose lengths are inside the data, whose addresses match the version,
// and whose transport fields are there only when their bytes are.
func FuzzDecode(f *testing.F) {
	f.Add(ipv4(TCP, 0, 0, tcp(1, 2, TCPSyn)))
	f.Add(ipv4(UDP, 8, 0x2000, udp(1, 2, "x")))
	f.Add(ipv6(TCP, [][]byte{ext6(0, 0), ext6(43, 2)}, tcp(1, 2, TCPAck)))
	f.Add(ipv6(ICMPv6, nil, []byte{128, 0}))
	f.Add([]byte{0x45})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Parsed
		if err := p.Decode(b); err != nil {
			if p != (Parsed{}) {
				t.Fatalf("error %v with a view %+v", err, p)
			}
			return
		}
		if p.HeaderLen > p.Length || p.Length > len(b) {
			t.Fatalf("lengths outside the data: %+v of %d bytes", p, len(b))
		}
		if (p.Version == 4) != p.Src.Is4() || (p.Version == 4) != p.Dst.Is4() || p.Version != 4 && p.Version != 6 {
			t.Fatalf("addresses do not match the version: %+v", p)
		}
		if p.Version == 4 && (p.HeaderLen < 20 || p.HeaderLen != int(b[0]&0x0f)*4) {
			t.Fatalf("ipv4 header length %d", p.HeaderLen)
		}
		if p.HasTransport {
			t4 := b[p.HeaderLen:p.Length]
			if p.FragOffset != 0 || len(t4) < 2 {
				t.Fatalf("transport fields without their bytes: %+v", p)
			}
			if (p.Proto == TCP || p.Proto == UDP) && (binary.BigEndian.Uint16(t4) != p.SrcPort || binary.BigEndian.Uint16(t4[2:]) != p.DstPort) {
				t.Fatalf("ports %d %d, bytes %x", p.SrcPort, p.DstPort, t4[:4])
			}
		} else if p.SrcPort != 0 || p.DstPort != 0 || p.TCPFlags != 0 || p.ICMPType != 0 {
			t.Fatalf("transport fields set without HasTransport: %+v", p)
		}
	})
}

// FuzzUpdateChecksum: the incremental update equals a full recomputation
// for any data and any rewritten word (up to one's-complement ±0).
func FuzzUpdateChecksum(f *testing.F) {
	f.Add([]byte{0x45, 0, 0, 20}, uint8(0), uint16(0xffff))
	f.Fuzz(func(t *testing.T, data []byte, at uint8, word uint16) {
		if len(data) < 2 {
			return
		}
		i := int(at) % (len(data) / 2) * 2
		before := Checksum(data)
		old := binary.BigEndian.Uint16(data[i:])
		c := append([]byte(nil), data...)
		binary.BigEndian.PutUint16(c[i:], word)
		got, want := UpdateChecksum(before, old, word), Checksum(c)
		if got != want && fold(uint32(got)+uint32(^want)) != 0xffff {
			t.Fatalf("update %#x, full %#x", got, want)
		}
	})
}
