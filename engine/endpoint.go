package engine

import (
	"net/netip"

	"golang.zx2c4.com/wireguard/conn"
)

// endpointAddr returns the destination address of ep without allocating
// for the standard bind.
func endpointAddr(ep conn.Endpoint) netip.AddrPort {
	if s, ok := ep.(*conn.StdNetEndpoint); ok {
		return s.AddrPort
	}
	a, _ := netip.ParseAddrPort(ep.DstToString())
	return a
}

// innerSource returns the source address of an inner IP packet and its
// length without padding; ok is false for anything that is not a
// well-formed IPv4 or IPv6 header.
func innerSource(pkt []byte) (src netip.Addr, n int, ok bool) {
	if len(pkt) < 1 {
		return src, 0, false
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return src, 0, false
		}
		n = int(pkt[2])<<8 | int(pkt[3])
		if n < 20 || n > len(pkt) {
			return src, 0, false
		}
		return netip.AddrFrom4([4]byte(pkt[12:16])), n, true
	case 6:
		if len(pkt) < 40 {
			return src, 0, false
		}
		n = 40 + (int(pkt[4])<<8 | int(pkt[5]))
		if n > len(pkt) {
			return src, 0, false
		}
		return netip.AddrFrom16([16]byte(pkt[8:24])), n, true
	}
	return src, 0, false
}

// innerDestination returns the destination address of an inner packet.
func innerDestination(pkt []byte) (netip.Addr, bool) {
	if len(pkt) < 1 {
		return netip.Addr{}, false
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) >= 20 {
			return netip.AddrFrom4([4]byte(pkt[16:20])), true
		}
	case 6:
		if len(pkt) >= 40 {
			return netip.AddrFrom16([16]byte(pkt[24:40])), true
		}
	}
	return netip.Addr{}, false
}
