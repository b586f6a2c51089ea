// SPDX-License-Identifier: Apache-2.0

package udpbind

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
)

// pair opens two binds on loopback.
func pair(t *testing.T) (a, b conn.Bind, fa, fb []conn.ReceiveFunc, pa, pb uint16) {
	t.Helper()
	a, b = New(), New()
	var err error
	if fa, pa, err = a.Open(0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if fb, pb, err = b.Open(0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return
}

type got struct {
	data []byte
	ep   *Endpoint
}

// receiveN reads n datagrams with fn (its family's receive function).
func receiveN(t *testing.T, fn conn.ReceiveFunc, n int) []got {
	t.Helper()
	bufs := make([][]byte, batchSize)
	for i := range bufs {
		bufs[i] = make([]byte, 1<<16)
	}
	sizes := make([]int, batchSize)
	eps := make([]conn.Endpoint, batchSize)
	var out []got
	done := make(chan error, 1)
	go func() {
		for len(out) < n {
			c, err := fn(bufs, sizes, eps)
			if err != nil {
				done <- err
				return
			}
			for i := range c {
				out = append(out, got{data: bytes.Clone(bufs[i][:sizes[i]]), ep: eps[i].(*Endpoint)})
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("received %d of %d datagrams", len(out), n)
	}
	return out
}

// TestReplyFromArrivalAddress: datagrams sent as one GSO write to
// 127.0.0.2 (a loopback address that is not the route's preferred
// 127.0.0.1) arrive whole and in order, split from the coalesced read,
// each knowing the address it arrived on; the answer to any of them leaves
// from that address.
func TestReplyFromArrivalAddress(t *testing.T) {
	a, b, fa, fb, pa, pb := pair(t)
	to, _ := ParseEndpoint(fmt.Sprintf("127.0.0.2:%d", pb))
	var bufs [][]byte
	for i := range 10 {
		buf := make([]byte, 1200, 1<<16)
		for j := range buf {
			buf[j] = byte(i)
		}
		if i == 9 {
			buf = buf[:700] // a shorter last one ends a GSO run
		}
		bufs = append(bufs, buf)
	}
	if err := a.Send(bufs, to); err != nil {
		t.Fatal(err)
	}
	in := receiveN(t, fb[0], 10)
	for i, g := range in {
		if len(g.data) != len(bufs[i]) || g.data[0] != byte(i) || g.data[len(g.data)-1] != byte(i) {
			t.Fatalf("datagram %d: %d bytes starting %d, want %d bytes of %d", i, len(g.data), g.data[0], len(bufs[i]), i)
		}
		if g.ep.Src != netip.MustParseAddr("127.0.0.2") || g.ep.Dst.Port() != pa {
			t.Fatalf("datagram %d arrived on %v from %v, want on 127.0.0.2 from port %d", i, g.ep.Src, g.ep.Dst, pa)
		}
	}
	if err := b.Send([][]byte{[]byte("answer")}, in[5].ep); err != nil {
		t.Fatal(err)
	}
	back := receiveN(t, fa[0], 1)
	if string(back[0].data) != "answer" || back[0].ep.Dst != netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), pb) {
		t.Fatalf("the answer came from %v, want 127.0.0.2:%d (the address it was sent to)", back[0].ep.Dst, pb)
	}
}

// TestSourceGone: a peer's arrival address that is no longer this host's
// (a virtual address moved to another node) does not stop the answers:
// they leave from the address the route gives, on IPv4 and IPv6.
func TestSourceGone(t *testing.T) {
	_, b, fa, _, pa, _ := pair(t)
	for i, c := range []struct{ dst, gone string }{{"127.0.0.1", "198.51.100.7"}, {"::1", "2001:db8::7"}} {
		if i >= len(fa) {
			t.Skip("no IPv6 on this host")
		}
		ep := &Endpoint{Dst: netip.AddrPortFrom(netip.MustParseAddr(c.dst), pa), Src: netip.MustParseAddr(c.gone)}
		if err := b.Send([][]byte{[]byte("still here")}, ep); err != nil {
			t.Fatalf("a send from %s, gone: %v", c.gone, err)
		}
		back := receiveN(t, fa[i], 1)
		if string(back[0].data) != "still here" || back[0].ep.Dst.Addr() != netip.MustParseAddr(c.dst) {
			t.Fatalf("got %q from %v", back[0].data, back[0].ep.Dst)
		}
		if ep.Src != netip.MustParseAddr(c.gone) {
			t.Fatal("Send changed the shared endpoint")
		}
	}
}

// TestAdjacentBuffersNotJoined: two datagrams cut from one array are not
// joined into one GSO write (joining would write the second over itself
// before it is copied): both arrive intact.
func TestAdjacentBuffersNotJoined(t *testing.T) {
	a, _, _, fb, _, pb := pair(t)
	arr := make([]byte, 2000)
	for i := range arr {
		arr[i] = byte(i / 1000)
	}
	to, _ := ParseEndpoint(fmt.Sprintf("127.0.0.1:%d", pb))
	if err := a.Send([][]byte{arr[:1000], arr[1000:2000]}, to); err != nil {
		t.Fatal(err)
	}
	in := receiveN(t, fb[0], 2)
	for i, g := range in {
		if len(g.data) != 1000 || g.data[0] != byte(i) || g.data[999] != byte(i) {
			t.Fatalf("datagram %d: %d bytes %d…%d", i, len(g.data), g.data[0], g.data[len(g.data)-1])
		}
	}
}

// TestIPv6: the IPv6 socket keeps the arrival address too (::1).
func TestIPv6(t *testing.T) {
	a, b, fa, fb, pa, pb := pair(t)
	if len(fa) < 2 || len(fb) < 2 {
		t.Skip("no IPv6 on this host")
	}
	to, _ := ParseEndpoint(fmt.Sprintf("[::1]:%d", pb))
	if err := a.Send([][]byte{[]byte("six")}, to); err != nil {
		t.Fatal(err)
	}
	in := receiveN(t, fb[1], 1)
	if in[0].ep.Src != netip.IPv6Loopback() || in[0].ep.Dst.Port() != pa {
		t.Fatalf("arrived on %v from %v", in[0].ep.Src, in[0].ep.Dst)
	}
	if err := b.Send([][]byte{[]byte("back")}, in[0].ep); err != nil {
		t.Fatal(err)
	}
	if back := receiveN(t, fa[1], 1); string(back[0].data) != "back" {
		t.Fatalf("got %q", back[0].data)
	}
}
