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
// peer still gets through.
func TestFloodTriggersCookies(t *testing.T) {
	gw := newNode(t, nil, func(c *Config) { c.HandshakeWorkers = 1 })
	conn, err := netDial(gw.endpoint())
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
		c, _ := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(gw.endpoint()))
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
