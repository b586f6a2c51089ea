// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/netns"
)

// greSink collects the inner packets of GRE copies, by their bytes.
type greSink struct {
	mu   sync.Mutex
	pkts map[string]int
}

func (s *greSink) add(gre []byte) {
	if len(gre) < 4 || gre[0] != 0 || gre[1] != 0 || (gre[2] != 0x08 || gre[3] != 0x00) && (gre[2] != 0x86 || gre[3] != 0xdd) {
		return
	}
	s.mu.Lock()
	s.pkts[string(gre[4:])]++
	s.mu.Unlock()
}

func (s *greSink) has(p []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pkts[string(p)] > 0
}

func (s *greSink) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pkts)
}

func (s *greSink) serve(pc net.PacketConn) {
	buf := make([]byte, 65535)
	for {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		s.add(buf[:n])
	}
}

// readPcap returns the packets of a pcap file of raw IP (what tcpdump
// writes for a TUN interface).
func readPcap(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 24 {
		t.Fatalf("pcap %s: %v (%d bytes)", path, err, len(b))
	}
	var le binary.ByteOrder = binary.LittleEndian // tcpdump writes in the host's order
	if binary.BigEndian.Uint32(b) == 0xa1b2c3d4 {
		le = binary.BigEndian
	}
	if link := le.Uint32(b[20:]); link != 101 && link != 12 {
		t.Fatalf("pcap link type %d, want raw IP", link)
	}
	var out [][]byte
	for off := 24; off+16 <= len(b); {
		n := int(le.Uint32(b[off+8:]))
		off += 16
		if off+n > len(b) {
			break
		}
		out = append(out, b[off:off+n])
		off += n
	}
	return out
}

// Mirroring to a peer namespace: every IPv4 packet a device's WireGuard
// interface carried (its pings and a TCP exchange with the platform, both
// directions, as tcpdump on that interface saw them) arrives at the peer
// inside GRE, byte for byte — over IP (protocol 47, read by a raw socket:
// this kernel has no GRE module) and in UDP (RFC 8086); a peer turned off
// gets nothing more.
func TestMirroring(t *testing.T) {
	var gwNS *netns.NS
	f := newFixture(t, func(c *Config) {
		c.Outside.ListenPacket = func(network, address string) (net.PacketConn, error) {
			var pc net.PacketConn
			err := gwNS.Do(func() (err error) { pc, err = net.ListenPacket(network, address); return err })
			return pc, err
		}
		c.Egress.Allow = append(c.Egress.Allow, netip.MustParsePrefix("10.244.0.0/24")) // the peer is on a private network
	})
	gwNS = f.gwNS
	peer := f.env.NewNS("mirror")
	f.env.Veth(f.gwNS, netip.MustParsePrefix("10.244.0.1/24"), peer, netip.MustParsePrefix("10.244.0.2/24"))
	raw, udp := &greSink{pkts: map[string]int{}}, &greSink{pkts: map[string]int{}}
	var rawConn, udpConn net.PacketConn
	peer.MustDo(func() (err error) {
		if rawConn, err = net.ListenPacket("ip4:gre", "10.244.0.2"); err != nil {
			return err
		}
		udpConn, err = net.ListenPacket("udp", "10.244.0.2:4754")
		return err
	})
	defer rawConn.Close()
	defer udpConn.Close()
	go raw.serve(rawConn)
	go udp.serve(udpConn)

	peers := []fleet.MirrorPeer{
		{IPAddress: "10.244.0.2", Protocol: fleet.MirrorGRE, Enabled: true, Description: "IDS"},
		{IPAddress: "10.244.0.2", Protocol: fleet.MirrorGREUDP, Enabled: true},
	}
	grp := f.group("mirrored", fleet.GroupSettings{Mirroring: fleet.Mirroring{Peers: peers}})
	a := f.newDevice(grp.ID)
	if err := a.pingUntil(MetadataAddr.String(), 10*time.Second); err != nil {
		t.Fatal(err)
	}

	capture := filepath.Join(t.TempDir(), "wg.pcap")
	dump := f.env.Start(a.ns, nil, "tcpdump", "-i", a.wg.Name, "--immediate-mode", "-U", "-n", "-w", capture)
	waitFor(t, "tcpdump to listen", func() bool { return strings.Contains(dump.Output(), "listening on") })
	if err := a.ping(MetadataAddr.String(), 3, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if out, err := a.curl("http://" + MetadataAddr.String() + "/v1/subscriber"); err != nil || !strings.HasSuffix(out, "\n200") {
		t.Fatalf("metadata: %v %q", err, out)
	}
	time.Sleep(500 * time.Millisecond) // the last copies on their way
	dump.Stop()

	var seen int
	pkts := readPcap(t, capture)
	for _, p := range pkts {
		if len(p) == 0 || p[0]>>4 != 4 {
			continue // IPv6 neighbour traffic of the interface itself never enters the tunnel
		}
		seen++
		if !raw.has(p) {
			t.Errorf("a packet tcpdump saw has no GRE copy: % x", p[:min(len(p), 40)])
		}
		if !udp.has(p) {
			t.Errorf("a packet tcpdump saw has no GRE-in-UDP copy: % x", p[:min(len(p), 40)])
		}
	}
	if seen < 10 { // 3 echo requests, 3 replies, a TCP exchange
		t.Fatalf("tcpdump saw %d IPv4 packets", seen)
	}

	// Turned off: nothing more.
	settings := grp.Settings
	settings.Mirroring.Peers[0].Enabled, settings.Mirroring.Peers[1].Enabled = false, false
	if _, err := f.svc.UpdateGroup(context.Background(), f.admin, grp.ID, nil, &settings); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the change to reach the gateway", func() bool {
		p := f.gw.policies.get(grp.ID)
		return p != nil && len(p.mirrors) == 0
	})
	before := raw.len() + udp.len()
	a.ping(MetadataAddr.String(), 3, 3*time.Second)
	time.Sleep(300 * time.Millisecond)
	if after := raw.len() + udp.len(); after != before {
		t.Fatalf("%d copies after the peers were turned off", after-before)
	}
}
