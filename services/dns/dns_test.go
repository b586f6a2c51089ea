// SPDX-License-Identifier: Apache-2.0

package dns

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/services/platform"
)

// fakeHost knows two SIMs: a (the caller) and b, which a may reach, and c,
// which it may not.
type fakeHost struct{}

var (
	simA = fleet.SIM{ID: "sim_a", Address: netip.MustParseAddr("10.128.0.2")}
	simB = fleet.SIM{ID: "sim_b", Address: netip.MustParseAddr("10.128.0.3")}
)

func (fakeHost) Listen(netip.Addr, []uint16, []uint16) ([]net.Listener, []net.PacketConn, error) {
	return nil, nil, nil
}
func (fakeHost) DialTCP(context.Context, netip.AddrPort) (net.Conn, error) { return nil, nil }
func (fakeHost) Online(string) bool                                        { return true }
func (fakeHost) Caller(_ context.Context, a netip.Addr) (platform.Caller, bool) {
	if a == simA.Address {
		return platform.Caller{SIM: simA}, true
	}
	return platform.Caller{}, false
}
func (fakeHost) Reachable(_ context.Context, from fleet.SIM, id string) (fleet.SIM, bool) {
	if from.ID == simA.ID && id == simB.ID {
		return simB, true
	}
	return fleet.SIM{}, false
}

func query(t *testing.T, name string, typ dnsmessage.Type) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true})
	b.StartQuestions()
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}); err != nil {
		t.Fatal(err)
	}
	m, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Names resolve for the caller as policy allows: itself, the platform's
// names, a reachable SIM; an unreachable or unknown SIM does not exist for
// it, a name outside the zone is refused, and a non-SIM caller learns no
// SIM's address.
func TestAnswers(t *testing.T) {
	// Named LAN hosts: "plc" behind sim_b (mapped 10.64.1.0/24) and behind
	// sim_a (its own), "cam" behind sim_c (not reachable for sim_a).
	lanHost := func(ref, host string) (string, netip.Addr, netip.Addr, bool) {
		if ref == "pump-station" { // sim_b's name
			ref = "sim_b"
		}
		switch {
		case ref == "sim_b" && host == "plc":
			return ref, netip.MustParseAddr("10.64.1.10"), netip.MustParseAddr("192.168.1.10"), true
		case ref == "sim_a" && host == "plc":
			return ref, netip.MustParseAddr("10.64.0.10"), netip.MustParseAddr("192.168.1.10"), true
		case ref == "sim_c" && host == "cam":
			return ref, netip.MustParseAddr("10.64.2.5"), netip.MustParseAddr("192.168.1.5"), true
		}
		return "", netip.Addr{}, netip.Addr{}, false
	}
	s := New(Config{Zone: "Fleet.Internal.", Addrs: []netip.Addr{netip.MustParseAddr("100.127.0.53")},
		Names: map[string]netip.Addr{"dns": netip.MustParseAddr("100.127.0.53"), "metadata": netip.MustParseAddr("100.127.0.80")}, LANHost: lanHost})
	s.host = fakeHost{}
	for _, c := range []struct {
		caller netip.Addr
		name   string
		rcode  dnsmessage.RCode
		want   string // the A record, "" for none
	}{
		{simA.Address, "sim_a.sim.fleet.internal.", dnsmessage.RCodeSuccess, "10.128.0.2"},
		{simA.Address, "SIM_B.sim.FLEET.internal.", dnsmessage.RCodeSuccess, "10.128.0.3"},
		{simA.Address, "sim_c.sim.fleet.internal.", dnsmessage.RCodeNameError, ""},
		{simA.Address, "metadata.fleet.internal.", dnsmessage.RCodeSuccess, "100.127.0.80"},
		{simA.Address, "fleet.internal.", dnsmessage.RCodeSuccess, ""},
		{simA.Address, "other.fleet.internal.", dnsmessage.RCodeNameError, ""},
		{simA.Address, "x.y.sim.fleet.internal.", dnsmessage.RCodeNameError, ""},
		{simA.Address, "example.com.", dnsmessage.RCodeRefused, ""},
		{netip.MustParseAddr("10.128.0.99"), "sim_b.sim.fleet.internal.", dnsmessage.RCodeNameError, ""},
		{simA.Address, "plc.sim_b.lan.fleet.internal.", dnsmessage.RCodeSuccess, "10.64.1.10"},        // reachable: the mapped address
		{simA.Address, "plc.pump-station.lan.fleet.internal.", dnsmessage.RCodeSuccess, "10.64.1.10"}, // by the SIM's name
		{simA.Address, "plc.sim_a.lan.fleet.internal.", dnsmessage.RCodeSuccess, "192.168.1.10"},      // its own LAN: as it sees it
		{simA.Address, "cam.sim_c.lan.fleet.internal.", dnsmessage.RCodeNameError, ""},                // policy: does not exist for it
		{simA.Address, "nope.sim_b.lan.fleet.internal.", dnsmessage.RCodeNameError, ""},
		{simA.Address, "a.b.sim_b.lan.fleet.internal.", dnsmessage.RCodeNameError, ""},
		{netip.MustParseAddr("10.128.0.99"), "plc.sim_b.lan.fleet.internal.", dnsmessage.RCodeNameError, ""},
	} {
		out := s.answer(context.Background(), c.caller, query(t, c.name, dnsmessage.TypeA))
		var p dnsmessage.Parser
		h, err := p.Start(out)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		p.SkipAllQuestions()
		answers, _ := p.AllAnswers()
		got := ""
		if len(answers) == 1 {
			a := answers[0].Body.(*dnsmessage.AResource).A
			got = netip.AddrFrom4(a).String()
		}
		if h.RCode != c.rcode || got != c.want || h.ID != 7 || !h.Authoritative {
			t.Errorf("%s from %v: %v %q, want %v %q", c.name, c.caller, h.RCode, got, c.rcode, c.want)
		}
	}
	if out := s.answer(context.Background(), simA.Address, []byte{1, 2, 3}); out != nil {
		t.Fatal("a malformed query was answered")
	}
}

// FuzzAnswer: any datagram is answered with a well-formed response to its
// own ID, or not at all; nothing panics.
func FuzzAnswer(f *testing.F) {
	s := New(Config{Zone: "fleet.internal", Names: map[string]netip.Addr{"dns": netip.MustParseAddr("100.127.0.53")}})
	s.host = fakeHost{}
	f.Add([]byte{0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'd', 'n', 's', 5, 'f', 'l', 'e', 'e', 't', 8, 'i', 'n', 't', 'e', 'r', 'n', 'a', 'l', 0, 0, 1, 0, 1})
	f.Fuzz(func(t *testing.T, msg []byte) {
		out := s.answer(context.Background(), simA.Address, msg)
		if out == nil {
			return
		}
		var p dnsmessage.Parser
		h, err := p.Start(out)
		if err != nil || !h.Response || len(msg) < 2 || h.ID != uint16(msg[0])<<8|uint16(msg[1]) {
			t.Fatalf("answer %x to %x: %v", out, msg, err)
		}
	})
}
