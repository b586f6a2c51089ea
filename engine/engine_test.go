// SPDX-License-Identifier: Apache-2.0

package engine

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/internal/clock"
	"github.com/wirefleet/wirefleet/internal/packet"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

// pair connects two of our engines: a initiates to b.
func pair(t testing.TB, modA, modB func(*Config)) (a, b *node, pb, pa *Peer) {
	a = newNode(t, nil, modA)
	b = newNode(t, nil, modB)
	pb, err := a.e.AddPeer(PeerConfig{PublicKey: b.e.PublicKey(), AllowedIPs: pfx(addrB), Endpoint: b.endpoint()})
	if err != nil {
		t.Fatal(err)
	}
	pa, err = b.e.AddPeer(PeerConfig{PublicKey: a.e.PublicKey(), AllowedIPs: pfx(addrA)})
	if err != nil {
		t.Fatal(err)
	}
	return
}

// The engine reaches its static key only through DH, and each purpose
// exactly as often as the protocol needs: one responder-es per accepted
// initiation, one initiator-se per consumed response, one static-static per
// peer (cached).
func TestKeyStorePurposes(t *testing.T) {
	csA, csB := newCountingStore(t), newCountingStore(t)
	a := newNode(t, csA, nil)
	b := newNode(t, csB, nil)
	if got := csA.total.Load() + csB.total.Load(); got != 0 {
		t.Fatalf("%d DH calls before any peer", got)
	}
	pb, _ := a.e.AddPeer(PeerConfig{PublicKey: b.e.PublicKey(), AllowedIPs: pfx(addrB), Endpoint: b.endpoint()})
	b.e.AddPeer(PeerConfig{PublicKey: a.e.PublicKey(), AllowedIPs: pfx(addrA)})
	const rounds = 3
	a.e.Send(pb, [][]byte{ping(addrB, addrA)})
	recv(t, b.in, "first packet")
	for i := 0; i < rounds; i++ {
		if i > 0 {
			time.Sleep(30 * time.Millisecond) // past the initiation flood guard
			a.e.Initiate(pb)
		}
		select {
		case <-a.hs:
		case <-time.After(5 * time.Second):
			t.Fatalf("no handshake in round %d", i)
		}
	}
	want := map[keystore.Purpose][2]int{ // [initiator a, responder b]
		keystore.StaticStatic: {1, 1},
		keystore.InitiatorSE:  {rounds, 0},
		keystore.ResponderES:  {0, rounds},
	}
	for p, w := range want {
		if got := csA.count(p); got != w[0] {
			t.Errorf("initiator %v: %d calls, want %d", p, got, w[0])
		}
		if got := csB.count(p); got != w[1] {
			t.Errorf("responder %v: %d calls, want %d", p, got, w[1])
		}
	}
}

// An initiator-only store lets a device initiate but refuses to answer
// initiations: its key cannot be driven by strangers.
func TestInitiatorOnlyStore(t *testing.T) {
	ks, _ := keystore.GenerateMemory()
	dev := newNode(t, keystore.InitiatorOnly{Store: ks}, nil)
	gw := newNode(t, nil, nil)
	pgw, _ := dev.e.AddPeer(PeerConfig{PublicKey: gw.e.PublicKey(), AllowedIPs: pfx(addrB), Endpoint: gw.endpoint()})
	gw.e.AddPeer(PeerConfig{PublicKey: dev.e.PublicKey(), AllowedIPs: pfx(addrA), Endpoint: dev.endpoint()})
	dev.e.Send(pgw, [][]byte{ping(addrB, addrA)})
	recv(t, gw.in, "device to gateway")

	// The gateway initiating to the device is refused by the device's store.
	other := newNode(t, nil, nil)
	dev.e.AddPeer(PeerConfig{PublicKey: other.e.PublicKey(), AllowedIPs: pfx(netip.MustParseAddr("10.99.0.3"))})
	po, _ := other.e.AddPeer(PeerConfig{PublicKey: dev.e.PublicKey(), AllowedIPs: pfx(addrA), Endpoint: dev.endpoint()})
	other.e.Initiate(po)
	ev := waitReject(t, dev.rej, RejectKeyStore)
	if ev.Detail == "" {
		t.Fatal("key-store rejection without detail")
	}
}

func waitReject(t *testing.T, ch <-chan RejectEvent, want RejectReason) RejectEvent {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev := <-ch:
			if ev.Reason == want {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %v rejection", want)
		}
	}
}

// 100,000 registered peers live only in the resolver. A sample of them
// connects; unknown and denied keys are refused with the right event, and
// nothing is kept for them.
func TestLazyResolution(t *testing.T) {
	const registered = 100_000
	const sample = 16
	res := mapResolver{}
	keys := make([]*keystore.Memory, sample)
	for i := 0; i < registered; i++ {
		var pub wgkey.Public
		if i < sample {
			keys[i], _ = keystore.GenerateMemory()
			pub = keys[i].PublicKey()
		} else {
			// Distinct registered keys; they never connect, so any 32 bytes do.
			pub[0], pub[1], pub[2], pub[3] = byte(i), byte(i>>8), byte(i>>16), 0xee
		}
		res[pub] = PeerConfig{AllowedIPs: pfx(netip.AddrFrom4([4]byte{10, 128, byte(i >> 8), byte(i)})), Identity: fmt.Sprintf("sim-%d", i)}
	}
	deniedKS, _ := keystore.GenerateMemory()
	res[deniedKS.PublicKey()] = PeerConfig{Identity: "denied"}
	unknownKS, _ := keystore.GenerateMemory()

	gw := newNode(t, nil, func(c *Config) { c.Resolver = res })
	var wg sync.WaitGroup
	for i := 0; i < sample; i++ {
		dev := newNode(t, keys[i], nil)
		p, _ := dev.e.AddPeer(PeerConfig{PublicKey: gw.e.PublicKey(), AllowedIPs: pfx(addrB), Endpoint: gw.endpoint()})
		src := netip.AddrFrom4([4]byte{10, 128, 0, byte(i)})
		wg.Add(1)
		go func() {
			defer wg.Done()
			dev.e.Send(p, [][]byte{ping(addrB, src)})
			<-dev.hs
		}()
	}
	wg.Wait()
	got := map[string]bool{}
	for len(got) < sample {
		b := recv(t, gw.in, "device packet")
		var ip packet.Parsed
		ip.Decode(b)
		got[ip.Src.String()] = true
	}
	if n := gw.e.PeerCount(); n != sample {
		t.Fatalf("gateway holds %d peers, want %d (only the active ones)", n, sample)
	}
	if id := gw.e.Peer(keys[3].PublicKey()).Identity(); id != "sim-3" {
		t.Fatalf("identity %v", id)
	}

	for _, c := range []struct {
		ks     *keystore.Memory
		reason RejectReason
	}{{unknownKS, RejectUnknownKey}, {deniedKS, RejectDenied}} {
		dev := newNode(t, c.ks, nil)
		p, _ := dev.e.AddPeer(PeerConfig{PublicKey: gw.e.PublicKey(), AllowedIPs: pfx(addrB), Endpoint: gw.endpoint()})
		dev.e.Initiate(p)
		ev := waitReject(t, gw.rej, c.reason)
		if ev.Key != c.ks.PublicKey() {
			t.Fatalf("%v event names key %s", c.reason, ev.Key.Short())
		}
		if c.reason == RejectDenied && ev.Detail != "suspended" {
			t.Fatalf("denied detail %q", ev.Detail)
		}
		if gw.e.Peer(c.ks.PublicKey()) != nil || gw.e.PeerCount() != sample {
			t.Fatalf("state kept for a %v key", c.reason)
		}
	}
	if n := gw.e.indices.len(); n > 2*sample {
		t.Fatalf("%d indices held for %d sessions", n, sample)
	}
}

// A peer may only send from its allowed IPs: a spoofed source is dropped
// and reported.
func TestSourceNotAllowed(t *testing.T) {
	a, b, pb, _ := pair(t, nil, nil)
	a.e.Send(pb, [][]byte{ping(addrB, addrA)})
	recv(t, b.in, "legitimate packet")
	spoofed := netip.MustParseAddr("10.99.0.77")
	a.e.Send(pb, [][]byte{ping(addrB, spoofed)})
	select {
	case ev := <-b.drop:
		if ev.Reason != DropSourceNotAllowed || ev.Source != spoofed {
			t.Fatalf("drop event %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no drop event for a spoofed source")
	}
	select {
	case <-b.in:
		t.Fatal("spoofed packet delivered")
	case <-time.After(100 * time.Millisecond):
	}
}

// An IPv6 packet from a peer given IPv4 allowed IPs only is dropped as
// ipv6-not-enabled (a family it was not given), not as a spoof, and is
// not delivered.
func TestIPv6NotEnabled(t *testing.T) {
	a, b, pb, _ := pair(t, nil, nil)
	a.e.Send(pb, [][]byte{ping(addrB, addrA)})
	recv(t, b.in, "legitimate packet")
	v6 := make([]byte, 48)
	v6[0], v6[5], v6[6], v6[7] = 0x60, 8, packet.ICMPv6, 64
	src := netip.MustParseAddr("fd00::2")
	copy(v6[8:24], src.AsSlice())
	copy(v6[24:40], netip.MustParseAddr("fd00::1").AsSlice())
	v6[40] = packet.ICMPv6EchoRequest
	a.e.Send(pb, [][]byte{v6})
	select {
	case ev := <-b.drop:
		if ev.Reason != DropIPv6NotEnabled || ev.Source != src || ev.Reason.String() != "ipv6-not-enabled" {
			t.Fatalf("drop event %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no drop event for an IPv6 packet")
	}
	select {
	case <-b.in:
		t.Fatal("IPv6 packet delivered")
	case <-time.After(100 * time.Millisecond):
	}
	if c := b.e.Counters(); c.Dropped["ipv6-not-enabled"] != 1 || c.Dropped["source-not-allowed"] != 0 {
		t.Fatalf("drop counters %v", c.Dropped)
	}
}

// Removing a peer kills its session at once: packets on it are refused
// and nothing more is delivered.
func TestRemovePeerKillsSession(t *testing.T) {
	a, b, pb, _ := pair(t, nil, nil)
	a.e.Send(pb, [][]byte{ping(addrB, addrA)})
	recv(t, b.in, "before removal")
	if !b.e.RemovePeer(a.e.PublicKey()) {
		t.Fatal("RemovePeer found nothing")
	}
	a.e.Send(pb, [][]byte{ping(addrB, addrA)})
	select {
	case <-b.in:
		t.Fatal("packet delivered after removal")
	case <-time.After(300 * time.Millisecond):
	}
	if c := b.e.Counters(); c.Dropped["no-session"] == 0 {
		t.Fatalf("no no-session drop counted: %+v", c)
	}
	// And the removed key cannot handshake again (no resolver).
	time.Sleep(30 * time.Millisecond)
	a.e.Initiate(pb)
	waitReject(t, b.rej, RejectUnknownKey)
}

// Replayed transport packets are refused by the replay window.
func TestReplayedTransportDropped(t *testing.T) {
	a, b, pb, _ := pair(t, nil, nil)
	a.e.Send(pb, [][]byte{ping(addrB, addrA)})
	recv(t, b.in, "first packet")
	// Capture one encrypted packet by encrypting with the current session,
	// then deliver it twice through b's receive path.
	kp := pb.current.Load()
	buf := getBuf()
	pkt := ping(addrB, addrA)
	copy((*buf)[16:], pkt)
	el := []outElem{{buf: buf, n: len(pkt), kp: kp, counter: kp.sendNonce.Add(1) - 1}}
	a.e.encrypt(el)
	msg := append([]byte(nil), (*buf)[:el[0].n]...)
	conn, err := netDial(b.endpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write(msg)
	recv(t, b.in, "original")
	conn.Write(msg)
	select {
	case <-b.in:
		t.Fatal("replayed packet delivered")
	case <-time.After(300 * time.Millisecond):
	}
}

// Timers, driven by a fake clock: handshake retransmission and giving up,
// keepalive after received data, persistent keepalive, key zeroing, and
// eviction of idle lazily resolved peers.
func TestTimers(t *testing.T) {
	clk := clock.NewFake(time.Now())
	fake := func(c *Config) { c.Clock = clk; c.TimerInterval = -1 }
	a := newNode(t, nil, fake)

	// Retransmission to a responder that never answers, then giving up.
	silent := netip.MustParseAddrPort("127.0.0.1:9") // discard port: nothing answers
	ghost, _ := keystore.GenerateMemory()
	p, _ := a.e.AddPeer(PeerConfig{PublicKey: ghost.PublicKey(), AllowedIPs: pfx(addrB), Endpoint: silent})
	a.e.Send(p, [][]byte{ping(addrB, addrA)})
	waitFor(t, "first initiation", func() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.attempts == 1 && !p.initQueued })
	for i := 2; i <= MaxTimerHandshakes+1; i++ {
		clk.Advance(RekeyTimeout + RekeyTimeoutJitterMax)
		a.e.RunTimers()
		want := i
		waitFor(t, fmt.Sprintf("initiation %d", i), func() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.attempts == want && !p.initQueued })
	}
	clk.Advance(RekeyTimeout + RekeyTimeoutJitterMax)
	a.e.RunTimers()
	p.mu.Lock()
	gaveUp := p.initIndex == 0 && p.staged == nil
	p.mu.Unlock()
	if !gaveUp {
		t.Fatal("did not give up after RekeyAttemptTime")
	}

	// Passive keepalive: b receives data, sends nothing back; after
	// KeepaliveTimeout its timer sends a keepalive, which a sees.
	b := newNode(t, nil, fake)
	pb, _ := a.e.AddPeer(PeerConfig{PublicKey: b.e.PublicKey(), AllowedIPs: pfx(addrB), Endpoint: b.endpoint()})
	pa, _ := b.e.AddPeer(PeerConfig{PublicKey: a.e.PublicKey(), AllowedIPs: pfx(addrA)})
	a.e.Send(pb, [][]byte{ping(addrB, addrA)})
	recv(t, b.in, "data")
	waitFor(t, "keepalive due", func() bool { return pa.keepaliveDue.Load() != 0 })
	before := pb.lastTraversal.Load()
	clk.Advance(KeepaliveTimeout + time.Second)
	b.e.RunTimers()
	waitFor(t, "keepalive received", func() bool { return pb.lastTraversal.Load() != before })
	if pa.keepaliveDue.Load() != 0 {
		t.Fatal("keepalive timer still armed after sending")
	}

	// Persistent keepalive every 25 s.
	c := newNode(t, nil, fake)
	pc, _ := c.e.AddPeer(PeerConfig{PublicKey: b.e.PublicKey(), AllowedIPs: pfx(addrB), Endpoint: b.endpoint(), PersistentKeepalive: 25 * time.Second})
	b.e.AddPeer(PeerConfig{PublicKey: c.e.PublicKey(), AllowedIPs: pfx(netip.MustParseAddr("10.99.0.3"))})
	c.e.RunTimers() // no session yet: the keepalive brings one up
	select {
	case <-c.hs:
	case <-time.After(5 * time.Second):
		t.Fatal("persistent keepalive did not bring up a session")
	}
	// Then one keepalive every 25 s of silence, and none before.
	cAtB := b.e.Peer(c.e.PublicKey())
	waitFor(t, "first keepalive at b", func() bool { return cAtB.lastTraversal.Load() != 0 })
	for i := 0; i < 3; i++ {
		clk.Advance(20 * time.Second)
		before := cAtB.lastTraversal.Load()
		c.e.RunTimers()
		time.Sleep(50 * time.Millisecond)
		if cAtB.lastTraversal.Load() != before {
			t.Fatalf("round %d: keepalive after 20 s of a 25 s interval", i)
		}
		clk.Advance(5 * time.Second)
		c.e.RunTimers()
		want := clk.Now().UnixNano()
		waitFor(t, fmt.Sprintf("keepalive %d at b", i+2), func() bool { return cAtB.lastTraversal.Load() == want })
	}

	// Key material goes after 3 × RejectAfterTime without a handshake.
	clk.Advance(3*RejectAfterTime + time.Second)
	c.e.RunTimers()
	if pc.current.Load() != nil {
		t.Fatal("keys not zeroed after 3 × RejectAfterTime")
	}
}

func TestLazyPeerEvicted(t *testing.T) {
	clk := clock.NewFake(time.Now())
	devKS, _ := keystore.GenerateMemory()
	gw := newNode(t, nil, func(c *Config) {
		c.Clock, c.TimerInterval = clk, -1
		c.Resolver = mapResolver{devKS.PublicKey(): {AllowedIPs: pfx(addrA)}}
	})
	var expired []SessionEvent
	var mu sync.Mutex
	gw.e.hooks.SessionExpired = func(ev SessionEvent) { mu.Lock(); expired = append(expired, ev); mu.Unlock() }
	dev := newNode(t, devKS, nil)
	p, _ := dev.e.AddPeer(PeerConfig{PublicKey: gw.e.PublicKey(), AllowedIPs: pfx(addrB), Endpoint: gw.endpoint()})
	dev.e.Send(p, [][]byte{ping(addrB, addrA)})
	recv(t, gw.in, "device packet")
	if gw.e.PeerCount() != 1 {
		t.Fatal("peer not held while active")
	}
	clk.Advance(RekeyAfterTime)
	gw.e.RunTimers()
	if gw.e.PeerCount() != 1 {
		t.Fatal("active peer evicted early")
	}
	clk.Advance(RejectAfterTime)
	gw.e.RunTimers()
	if gw.e.PeerCount() != 0 {
		t.Fatal("idle lazy peer not evicted")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(expired) == 0 {
		t.Fatal("no session-expired event")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// SetAllowedIPs changes what a peer may send from while its session goes
// on: a LAN source refused before is delivered after, with no handshake.
func TestSetAllowedIPsLive(t *testing.T) {
	a, b, pb, _ := pair(t, nil, nil)
	a.e.Send(pb, [][]byte{ping(addrB, addrA)})
	recv(t, b.in, "legitimate packet")
	lanHost := netip.MustParseAddr("192.168.1.10")
	a.e.Send(pb, [][]byte{ping(addrB, lanHost)})
	select {
	case ev := <-b.drop:
		if ev.Reason != DropSourceNotAllowed {
			t.Fatalf("drop event %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a LAN source was not refused before the change")
	}
	pa := b.e.Peer(a.e.PublicKey())
	handshakes := b.e.Counters().HandshakesCompleted
	b.e.SetAllowedIPs(pa, []netip.Prefix{netip.PrefixFrom(addrA, 32), netip.MustParsePrefix("192.168.1.77/24")})
	if got := pa.AllowedIPs(); len(got) != 2 || got[1] != netip.MustParsePrefix("192.168.1.0/24") {
		t.Fatalf("allowed IPs %v, want the masked prefix", got)
	}
	a.e.Send(pb, [][]byte{ping(addrB, lanHost)})
	recv(t, b.in, "LAN packet after the change")
	b.e.SetAllowedIPs(pa, []netip.Prefix{netip.PrefixFrom(addrA, 32)})
	a.e.Send(pb, [][]byte{ping(addrB, lanHost)})
	select {
	case ev := <-b.drop:
		if ev.Reason != DropSourceNotAllowed {
			t.Fatalf("drop event %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a LAN source was not refused after the route went")
	}
	if n := b.e.Counters().HandshakesCompleted; n != handshakes {
		t.Fatalf("%d handshakes, want %d: the change must not need one", n, handshakes)
	}
}
