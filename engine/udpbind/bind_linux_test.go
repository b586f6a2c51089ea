// SPDX-License-Identifier: Apache-2.0

package udpbind

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/internal/netns"
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
	return receiveNIn(t, fn, n, batchSize)
}

// receiveNIn is receiveN with batches of size.
func receiveNIn(t *testing.T, fn conn.ReceiveFunc, n, size int) []got {
	t.Helper()
	bufs := make([][]byte, size)
	for i := range bufs {
		bufs[i] = make([]byte, 1<<16)
	}
	sizes := make([]int, size)
	eps := make([]conn.Endpoint, size)
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

// datagrams makes n datagrams of size bytes (the last of last bytes),
// each filled with its index, in buffers with room to join.
func datagrams(n, size, last int) [][]byte {
	var bufs [][]byte
	for i := range n {
		l := size
		if i == n-1 {
			l = last
		}
		buf := make([]byte, l, 1<<16)
		for j := range buf {
			buf[j] = byte(i)
		}
		bufs = append(bufs, buf)
	}
	return bufs
}

// checkInOrder fails unless in holds want's datagrams, in order.
func checkInOrder(t *testing.T, in []got, want [][]byte) {
	t.Helper()
	if len(in) != len(want) {
		t.Fatalf("%d datagrams, want %d", len(in), len(want))
	}
	for i, g := range in {
		if !bytes.Equal(g.data, want[i]) {
			t.Fatalf("datagram %d: %d bytes starting %d, want %d bytes of %d", i, len(g.data), g.data[0], len(want[i]), i)
		}
	}
}

// TestSplitBeyondTheBatch: a coalesced read of more datagrams than the
// batch has room for loses none: the rest come, in order, with the next
// calls.
func TestSplitBeyondTheBatch(t *testing.T) {
	a, _, _, fb, _, pb := pair(t)
	to, _ := ParseEndpoint(fmt.Sprintf("127.0.0.1:%d", pb))
	bufs := datagrams(10, 1000, 1000)
	want := make([][]byte, len(bufs))
	for i, b := range bufs {
		want[i] = bytes.Clone(b)
	}
	if err := a.Send(bufs, to); err != nil {
		t.Fatal(err)
	}
	checkInOrder(t, receiveNIn(t, fb[0], 10, 8), want)
}

// TestJoinedBeyondTheMTU: datagrams joined for GSO that are larger than
// the route's MTU (a path MTU learnt from the network) are refused whole
// by the kernel; they go one by one instead (each fragmented), and
// nothing is lost.
func TestJoinedBeyondTheMTU(t *testing.T) {
	env := netns.New(t)
	ns := env.NewNS("mtu")
	ns.MustExec("ip", "link", "set", "lo", "up")
	ns.MustExec("ip", "route", "add", "127.0.0.3/32", "dev", "lo", "mtu", "lock", "1400", "table", "local")
	var a, b conn.Bind
	var fb []conn.ReceiveFunc
	var pb uint16
	ns.MustDo(func() (err error) {
		a, b = New(), New()
		if _, _, err = a.Open(0); err != nil {
			return err
		}
		fb, pb, err = b.Open(0)
		return err
	})
	defer a.Close()
	defer b.Close()
	to, _ := ParseEndpoint(fmt.Sprintf("127.0.0.3:%d", pb))
	bufs := datagrams(4, 1452, 1452)
	want := make([][]byte, len(bufs))
	for i, b := range bufs {
		want[i] = bytes.Clone(b)
	}
	if err := a.Send(bufs, to); err != nil {
		t.Fatalf("a joined write beyond the MTU: %v", err)
	}
	checkInOrder(t, receiveN(t, fb[0], 4), want)
	if !a.(*Bind).v4.gso.Load() {
		t.Fatal("one path's MTU turned GSO off for the whole socket")
	}
}
