// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"encoding/binary"
	"testing"

	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/packet"
)

func TestD2DAllowed(t *testing.T) {
	pol := func(id, name, mode string, groups []string, ports ...uint16) *groupPolicy {
		return &groupPolicy{id: id, name: name, mode: mode, groups: groups, ports: ports}
	}
	plant := pol("g1", "plant", fleet.D2DGroup, nil)
	plantOff := pol("g1", "plant", fleet.D2DOff, nil)
	office := pol("g2", "office", fleet.D2DGroup, nil)
	toOffice := pol("g1", "plant", fleet.D2DGroups, []string{"office"})
	officeToPlant := pol("g2", "office", fleet.D2DGroups, []string{"plant"})
	sshOnly := pol("g3", "cams", fleet.D2DGroup, nil, 22)
	for _, c := range []struct {
		name         string
		src, dst     *groupPolicy
		proto        byte
		sport, dport uint16
		want         bool
	}{
		{"same group, mode group", plant, plant, packet.ICMP, 0, 0, true},
		{"same group, mode off", plantOff, plantOff, packet.ICMP, 0, 0, false},
		{"no group", nil, plant, packet.ICMP, 0, 0, false},
		{"to no group", plant, nil, packet.ICMP, 0, 0, false},
		{"other group, each mode group", plant, office, packet.TCP, 1000, 80, false},
		{"groups: one side names the other, not back", toOffice, office, packet.TCP, 1000, 80, false},
		{"groups: both name each other", toOffice, officeToPlant, packet.TCP, 1000, 80, true},
		{"groups: and back", officeToPlant, toOffice, packet.TCP, 80, 1000, true},
		{"ports: allowed port", sshOnly, sshOnly, packet.TCP, 40000, 22, true},
		{"ports: reply from allowed port", sshOnly, sshOnly, packet.TCP, 22, 40000, true},
		{"ports: other port", sshOnly, sshOnly, packet.TCP, 40000, 23, false},
		{"ports: UDP other port", sshOnly, sshOnly, packet.UDP, 40000, 53, false},
		{"ports: ICMP refused", sshOnly, sshOnly, packet.ICMP, 0, 0, false},
	} {
		if got := d2dAllowed(c.src, c.dst, c.proto, c.sport, c.dport); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// decoded sets pkt's IPv4 total length to its size and decodes it, as the
// engine does before the router sees a packet.
func decoded(t *testing.T, pkt []byte) *packet.Parsed {
	t.Helper()
	binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
	var ip packet.Parsed
	if err := ip.Decode(pkt); err != nil {
		t.Fatal(err)
	}
	return &ip
}

// Only packets that may start a flow feed first-seen and fan-out; a
// device's replies go to its peers' ephemeral ports.
func TestStartsFlow(t *testing.T) {
	tcp := func(flags byte) []byte {
		p := make([]byte, 40)
		p[0], p[9], p[33] = 0x45, packet.TCP, flags
		return p
	}
	icmp := func(typ byte) []byte {
		p := make([]byte, 28)
		p[0], p[9], p[20] = 0x45, packet.ICMP, typ
		return p
	}
	udp := make([]byte, 28)
	udp[0], udp[9] = 0x45, packet.UDP
	for _, c := range []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"SYN", tcp(0x02), true},
		{"SYN-ACK", tcp(0x12), false},
		{"ACK", tcp(0x10), false},
		{"PSH-ACK", tcp(0x18), false},
		{"echo request", icmp(8), true},
		{"echo reply", icmp(0), false},
		{"UDP", udp, true},
		{"truncated TCP", tcp(0x02)[:30], false},
	} {
		if got := startsFlow(decoded(t, c.pkt)); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if !decoded(t, tcp(0x12)).IsTCPSynAck() || decoded(t, tcp(0x02)).IsTCPSynAck() {
		t.Error("synAck")
	}
}
