// SPDX-License-Identifier: Apache-2.0

package engine

import (
	"crypto/rand"
	"net"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/engine/cookie"
	"github.com/wirefleet/wirefleet/engine/wire"
)

// A flood of initiations (valid MAC1, garbage inside: each one still costs
// the responder a DH) pushes the engine under load by itself; it then
// answers with cookie replies instead of doing DH work, and a legitimate
// peer still gets through. The flood comes from an address of its own
// (127.0.0.2): a source over its share of handshake work is dropped before
// any cryptography, so a device behind the attacker's own address would
// share its fate (TestSourceOverItsShare).
func TestFloodTriggersCookies(t *testing.T) {
	gw := newNode(t, nil, func(c *Config) { c.HandshakeWorkers = 1 })
	conn, err := net.DialUDP("udp", attacker, net.UDPAddrFromAddrPort(gw.endpoint()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var macs cookie.Generator
	macs.Init(gw.e.PublicKey())
	msg := make([]byte, wire.InitiationSize)
	for i := 0; i < 3000; i++ {
		rand.Read(msg)
		msg[0], msg[1], msg[2], msg[3] = 1, 0, 0, 0
		macs.AddMACs(msg, time.Now())
		conn.Write(msg)
	}
	if !gw.e.UnderLoad() {
		t.Fatalf("not under load after a flood; counters %+v", gw.e.Counters())
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	reply := make([]byte, 128)
	n, err := conn.Read(reply)
	if err != nil {
		t.Fatalf("no cookie reply under load: %v", err)
	}
	if typ, err := wire.Type(reply[:n]); err != nil || typ != wire.TypeCookieReply {
		t.Fatalf("reply type %v %v", typ, err)
	}
	waitFor(t, "cookie counter", func() bool { return gw.e.Counters().HandshakesRejected["under-load-cookie-sent"] > 0 })

	// A real device, still under load: its first initiation is answered
	// with a cookie, its retry carries MAC2 and completes.
	dev := newNode(t, nil, nil)
	gw.e.AddPeer(PeerConfig{PublicKey: dev.e.PublicKey(), AllowedIPs: pfx(addrA)})
	p, _ := dev.e.AddPeer(PeerConfig{PublicKey: gw.e.PublicKey(), AllowedIPs: pfx(addrB), Endpoint: gw.endpoint()})
	stop := make(chan struct{})
	defer close(stop)
	go func() { // keep the gateway loaded
		c, _ := net.DialUDP("udp", attacker, net.UDPAddrFromAddrPort(gw.endpoint()))
		defer c.Close()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for i := 0; i < 200; i++ {
				rand.Read(msg)
				msg[0], msg[1], msg[2], msg[3] = 1, 0, 0, 0
				macs.AddMACs(msg, time.Now())
				c.Write(msg)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	dev.e.Send(p, [][]byte{ping(addrB, addrA)})
	// The device's retransmission timer (RekeyTimeout) sends the retry.
	select {
	case b := <-gw.in:
		checkPing(t, b, addrB, addrA)
	case <-time.After(RekeyTimeout + 5*time.Second):
		p.mu.Lock()
		att := p.attempts
		p.mu.Unlock()
		t.Fatalf("legitimate device did not get through under load; attempts %d; gateway %+v; device %+v", att, gw.e.Counters(), dev.e.Counters())
	}
}

// attacker is the flooding tests' source address, apart from the devices'.
var attacker = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)}

// Under load, a source sending more handshake messages than its share is
// dropped before MAC1 is even checked (counted as source-flood, no cookie
// reply for the excess), while another source is still answered; and the
// cookie replies the engine sends stay within its budget.
func TestSourceOverItsShare(t *testing.T) {
	gw := newNode(t, nil, func(c *Config) { c.ForceUnderLoad = true })
	flood, err := net.DialUDP("udp", attacker, net.UDPAddrFromAddrPort(gw.endpoint()))
	if err != nil {
		t.Fatal(err)
	}
	defer flood.Close()
	var macs cookie.Generator
	macs.Init(gw.e.PublicKey())
	msg := make([]byte, wire.InitiationSize)
	const n = 3 * sourceHandshakeBurst
	replies := make(chan int, 1)
	go func() { // count the cookie replies the flood gets
		got := 0
		buf := make([]byte, 256)
		for {
			flood.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := flood.Read(buf); err != nil {
				replies <- got
				return
			}
			got++
		}
	}()
	start := time.Now()
	for i := 0; i < n; i++ {
		rand.Read(msg)
		msg[0], msg[1], msg[2], msg[3] = 1, 0, 0, 0
		macs.AddMACs(msg, time.Now())
		flood.Write(msg)
	}
	elapsed := time.Since(start)
	waitFor(t, "the flood to be counted", func() bool {
		c := gw.e.Counters().HandshakesRejected
		return c["source-flood"]+c["under-load-cookie-sent"] >= n*9/10 // loopback may drop a few
	})
	c := gw.e.Counters().HandshakesRejected
	// The bucket allows its burst and its rate over the time the flood
	// took; everything beyond is dropped unexamined.
	allowed := uint64(sourceHandshakeBurst + sourceHandshakeRate*(elapsed.Seconds()+1))
	if c["under-load-cookie-sent"] > allowed || c["source-flood"] == 0 {
		t.Fatalf("flood of %d in %v: %v (at most %d examined)", n, elapsed, c, allowed)
	}
	if got := <-replies; uint64(got) > allowed {
		t.Fatalf("%d cookie replies for a source allowed %d", got, allowed)
	}
	// Another source, meanwhile, still gets its cookie reply.
	other, err := netDial(gw.endpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	rand.Read(msg)
	msg[0], msg[1], msg[2], msg[3] = 1, 0, 0, 0
	macs.AddMACs(msg, time.Now())
	other.Write(msg)
	other.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 256)
	k, err := other.Read(buf)
	if err != nil {
		t.Fatalf("another source got no cookie reply: %v", err)
	}
	if typ, _ := wire.Type(buf[:k]); typ != wire.TypeCookieReply {
		t.Fatalf("another source got type %d", typ)
	}
}

// The cookie replies of all sources together stay within cookieReplyRate.
func TestCookieBudget(t *testing.T) {
	var c cookieBudget
	now := time.Unix(1e9, 0)
	for i := 0; i < cookieReplyRate; i++ {
		if !c.take(now) {
			t.Fatalf("reply %d refused within the budget", i)
		}
	}
	if c.take(now) {
		t.Fatal("a reply over the budget was allowed")
	}
	now = now.Add(time.Millisecond)
	got := 0
	for c.take(now) {
		got++
	}
	if got != cookieReplyRate/1000 {
		t.Fatalf("%d replies a millisecond later, want %d", got, cookieReplyRate/1000)
	}
}
