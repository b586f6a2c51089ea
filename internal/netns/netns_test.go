// SPDX-License-Identifier: Apache-2.0

package netns

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPrefixFitsInterfaceNames(t *testing.T) {
	p := newPrefix()
	if len(p) != 7 || !strings.HasPrefix(p, "wf") {
		t.Fatalf("prefix %q: want 7 characters starting with wf", p)
	}
	// Two Envs of one process must not share a prefix (random part differs);
	// try a few times to make an accidental equal pair irrelevant.
	same := 0
	for i := 0; i < 5; i++ {
		if newPrefix() == newPrefix() {
			same++
		}
	}
	if same == 5 {
		t.Fatal("newPrefix returns the same prefix every time")
	}
}

// TestCleanupRemovesEverything builds namespaces, a veth to the root
// namespace, a wireguard-go and a sleeping process, then runs the cleanup and
// checks that none of them is left.
func TestCleanupRemovesEverything(t *testing.T) {
	Require(t)
	var (
		nsName, rootLink, wgName string
		wgPID, sleepPID          int
	)
	t.Run("build", func(t *testing.T) {
		env := New(t)
		n := env.NewNS("a")
		root, inner := env.Veth(nil, netip.MustParsePrefix("10.250.7.1/30"), n, netip.MustParsePrefix("10.250.7.2/30"))
		wg := n.StartWireGuardGo("")
		sleep := n.Start(nil, "sleep", "300")
		nsName, rootLink, wgName = n.Name, root.Name, wg.Name
		wgPID, sleepPID = wg.Process.PID, sleep.PID
		// `ip netns exec` execs in place: the PID we hold is the program's.
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", wgPID)); strings.TrimSpace(string(comm)) != "wireguard-go" {
			t.Fatalf("PID %d is %q, not wireguard-go", wgPID, comm)
		}
		if !strings.HasPrefix(inner.Name, env.Prefix()) || !strings.HasPrefix(wgName, env.Prefix()) {
			t.Fatalf("names %q %q lack the prefix %q", inner.Name, wgName, env.Prefix())
		}
		// The veth works: the root namespace reaches the namespace end.
		if out, err := n.Exec("ping", "-c", "1", "-W", "2", "10.250.7.1"); err != nil {
			t.Fatalf("ping root end from namespace: %v\n%s", err, out)
		}
	})
	if _, err := os.Stat("/run/netns/" + nsName); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace %s still exists (%v)", nsName, err)
	}
	if _, err := net.InterfaceByName(rootLink); err == nil {
		t.Errorf("root-namespace veth %s still exists", rootLink)
	}
	if _, err := os.Stat(UAPIDir + "/" + wgName + ".sock"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("UAPI socket of %s still exists (%v)", wgName, err)
	}
	for _, pid := range []int{wgPID, sleepPID} {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			t.Errorf("process %d still running", pid)
		}
	}
}

// pair is two namespaces joined by a veth, each running wireguard-go, peered
// with each other: the overlay is 10.99.0.0/24 (a: .1, b: .2), the outer link
// 10.201.0.0/24 (a: .1, b: .2); b's wireguard-go is reached at 10.200.0.2, an
// address on b's loopback that a routes to over the link, so a can later reach
// it over another link.
type pair struct {
	env          *Env
	a, b         *NS
	linkA, linkB *Link
	wgA, wgB     *WireGuard
	overA, overB netip.Addr
	outerB       netip.Addr
}

func newPair(t *testing.T) *pair {
	env := New(t)
	p := &pair{env: env, a: env.NewNS("a"), b: env.NewNS("b")}
	p.linkA, p.linkB = env.Veth(p.a, netip.MustParsePrefix("10.201.0.1/24"), p.b, netip.MustParsePrefix("10.201.0.2/24"))
	p.wgA, p.wgB = p.a.StartWireGuardGo("wa"), p.b.StartWireGuardGo("wb")
	p.overA, p.overB = netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("10.99.0.2")
	p.outerB = netip.MustParseAddr("10.200.0.2")
	p.b.AddAddr("lo", netip.PrefixFrom(p.outerB, 32))
	env.AddRoute(p.a, "10.200.0.2/32", "via", "10.201.0.2", "dev", p.linkA.Name)
	p.wgA.Configure(Config{ListenPort: 51820, Peers: []Peer{{
		PublicKey:  p.wgB.Public,
		Endpoint:   netip.AddrPortFrom(p.outerB, 51821),
		AllowedIPs: []netip.Prefix{netip.PrefixFrom(p.overB, 32)},
	}}})
	// b has no endpoint for a: it learns it from a's first handshake, and
	// relearns it when a roams.
	p.wgB.Configure(Config{ListenPort: 51821, Peers: []Peer{{
		PublicKey:  p.wgA.Public,
		AllowedIPs: []netip.Prefix{netip.PrefixFrom(p.overA, 32)},
	}}})
	p.wgA.AddAddr(netip.PrefixFrom(p.overA, 24))
	p.wgB.AddAddr(netip.PrefixFrom(p.overB, 24))
	p.wgA.Up()
	p.wgB.Up()
	return p
}

func TestWireGuardGoPairPing(t *testing.T) {
	p := newPair(t)
	if got := p.wgA.ListenPort(); got != 51820 {
		t.Fatalf("listen port of a = %d, want 51820", got)
	}
	out, err := p.a.Exec("ping", "-c", "3", "-i", "0.2", "-W", "3", p.overB.String())
	if err != nil {
		t.Fatalf("ping through the tunnel: %v\n%s", err, out)
	}
	if p.wgA.LatestHandshake(p.wgB.Public).IsZero() {
		t.Fatal("ping went through but wg shows no handshake")
	}
	if ep := p.wgB.PeerEndpoint(p.wgA.Public); ep != netip.MustParseAddrPort("10.201.0.1:51820") {
		t.Fatalf("b's endpoint for a = %v, want 10.201.0.1:51820", ep)
	}
	// The overlay is not reachable from the root namespace: the tunnel lives
	// only inside the test's namespaces.
	if _, err := net.InterfaceByName(p.wgA.Name); err == nil {
		t.Fatalf("interface %s visible in the root namespace", p.wgA.Name)
	}
}

// pattern is the byte at offset i of the TCP stream: checking it proves no data
// was lost, duplicated or reordered.
func pattern(i int64) byte { return byte(i % 251) }

// TestWireGuardGoRoamingTCP streams TCP from a to b through the tunnel, moves
// a to another link with another address mid-transfer (route moved, old
// address removed), and checks the stream continues intact and b follows a to
// its new endpoint. The TCP ends run in this test process, in the
// namespaces, through NS.Do.
func TestWireGuardGoRoamingTCP(t *testing.T) {
	p := newPair(t)
	link2A, _ := p.env.Veth(p.a, netip.MustParsePrefix("10.202.0.1/24"), p.b, netip.MustParsePrefix("10.202.0.2/24"))
	oldOuter := netip.MustParsePrefix("10.201.0.1/24")
	newOuter := netip.MustParsePrefix("10.202.0.1/24")

	var ln net.Listener
	p.b.MustDo(func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(p.overB, 5001).String())
		return err
	})
	defer ln.Close()

	const (
		chunk    = 16 << 10
		interval = 10 * time.Millisecond // ~1.6 MB/s: slow enough to last
		total    = 300                   // chunks: about 3 seconds
		moveAt   = 100                   // chunk after which a roams
	)
	type result struct {
		n          int64
		afterMove  int64
		err        error
		lastReadAt time.Time
	}
	var (
		moved   time.Time
		movedMu sync.Mutex
	)
	done := make(chan result, 1)
	go func() {
		var r result
		defer func() { done <- r }()
		c, err := ln.Accept()
		if err != nil {
			r.err = err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			for i := 0; i < n; i++ {
				if buf[i] != pattern(r.n+int64(i)) {
					r.err = fmt.Errorf("byte %d corrupted", r.n+int64(i))
					return
				}
			}
			r.n += int64(n)
			movedMu.Lock()
			if !moved.IsZero() {
				r.afterMove += int64(n)
			}
			movedMu.Unlock()
			r.lastReadAt = time.Now()
			if err == io.EOF {
				return
			}
			if err != nil {
				r.err = err
				return
			}
		}
	}()

	var c net.Conn
	p.a.MustDo(func() (err error) {
		c, err = net.DialTimeout("tcp", netip.AddrPortFrom(p.overB, 5001).String(), 10*time.Second)
		return err
	})
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))

	buf := make([]byte, chunk)
	var sent int64
	for i := 0; i < total; i++ {
		for j := range buf {
			buf[j] = pattern(sent + int64(j))
		}
		if _, err := c.Write(buf); err != nil {
			t.Fatalf("write after %d bytes: %v", sent, err)
		}
		sent += chunk
		if i == moveAt {
			movedMu.Lock()
			moved = time.Now()
			movedMu.Unlock()
			p.env.ReplaceRoute(p.a, "10.200.0.2/32", "via", "10.202.0.2", "dev", link2A.Name)
			p.linkA.DelAddr(oldOuter)
		}
		time.Sleep(interval)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("receiver after %d bytes: %v", r.n, r.err)
	}
	if r.n != sent {
		t.Fatalf("received %d bytes, sent %d", r.n, sent)
	}
	// Most of the stream was sent after the move; require a good part of it to
	// have arrived after the move, i.e. the transfer did not just drain a buffer.
	if min := int64(total-moveAt-1) * chunk / 2; r.afterMove < min {
		t.Fatalf("only %d bytes arrived after the move, want at least %d", r.afterMove, min)
	}
	want := netip.AddrPortFrom(newOuter.Addr(), 51820)
	if ep := p.wgB.PeerEndpoint(p.wgA.Public); ep != want {
		t.Fatalf("b's endpoint for a = %v, want %v after roaming", ep, want)
	}
	// The old address is really gone from a.
	if out := p.a.MustExec("ip", "-o", "addr", "show"); strings.Contains(out, "10.201.0.1/") {
		t.Fatalf("a still has its old address:\n%s", out)
	}
}

func TestSetAddrMovesAddress(t *testing.T) {
	env := New(t)
	n := env.NewNS("")
	old, moved := netip.MustParsePrefix("10.250.8.2/24"), netip.MustParsePrefix("10.250.8.3/24")
	root, inner := env.Veth(nil, netip.MustParsePrefix("10.250.8.1/24"), n, old)
	if root.Peer != inner || inner.NS != n || root.NS != nil {
		t.Fatal("Veth returned ends that do not describe the pair")
	}
	inner.SetAddr(moved)
	if got := inner.Addrs(); len(got) != 1 || got[0] != moved {
		t.Fatalf("Addrs() = %v, want [%v]", got, moved)
	}
	if p := env.Start(nil, nil, "ping", "-c", "1", "-W", "2", "10.250.8.3"); p.Wait() != nil {
		t.Fatalf("ping new address: %v\n%s", p.Wait(), p.Output())
	}
	if err := env.Start(nil, nil, "ping", "-c", "1", "-W", "1", "10.250.8.2").Wait(); err == nil {
		t.Fatal("old address still answers after SetAddr")
	}
}

// TestDoKeepsSocketsInNamespace binds an address that exists only inside a
// namespace through Do, then checks the calling goroutine is back outside.
func TestDoKeepsSocketsInNamespace(t *testing.T) {
	env := New(t)
	n := env.NewNS("")
	n.AddAddr("lo", netip.MustParsePrefix("10.250.9.1/32"))
	var inside *net.UDPConn
	n.MustDo(func() (err error) {
		inside, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 250, 9, 1)})
		return err
	})
	defer inside.Close()
	// 10.250.9.1 exists only inside n. Binding it again from this goroutine
	// fails: the goroutine is back in the root namespace (inside n, port 0
	// would have bound).
	if c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 250, 9, 1)}); err == nil {
		c.Close()
		t.Fatal("10.250.9.1 is bindable after Do: the thread stayed in the namespace")
	}
	if got := inside.LocalAddr().(*net.UDPAddr).IP.String(); got != "10.250.9.1" {
		t.Fatalf("socket made in the namespace is bound to %s", got)
	}
}

// TestSweepStaleRemovesDeadOwnersLeftovers fakes what a SIGKILLed test leaves
// (a record with a dead owner, a namespace, a root veth, a socket file) and
// checks SweepStale removes exactly that, and not a live Env's things.
func TestSweepStaleRemovesDeadOwnersLeftovers(t *testing.T) {
	live := New(t)
	liveNS := live.NewNS("")
	dead := "wf" + newPrefix()[2:4] + "zzz"
	if _, err := os.Stat(RecordDir + "/" + dead); err == nil || dead == live.Prefix() {
		t.Skipf("prefix %s is in use", dead)
	}
	// Should the sweep fail, still leave nothing behind.
	t.Cleanup(func() {
		_, _ = run(nil, "ip", "netns", "del", dead+"n")
		_, _ = run(nil, "ip", "link", "del", dead+"v1")
		_ = os.Remove(UAPIDir + "/" + dead + "w.sock")
		_ = os.Remove(RecordDir + "/" + dead)
	})
	// A record naming a PID that does not exist (beyond pid_max).
	if err := os.WriteFile(RecordDir+"/"+dead, []byte("99999999 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(nil, "ip", "netns", "add", dead+"n"); err != nil {
		t.Fatal(err, out)
	}
	if out, err := run(nil, "ip", "link", "add", dead+"v1", "type", "veth", "peer", "name", dead+"v2"); err != nil {
		t.Fatal(err, out)
	}
	sock := UAPIDir + "/" + dead + "w.sock"
	_ = os.MkdirAll(UAPIDir, 0o755)
	if err := os.WriteFile(sock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	swept := SweepStale()
	if len(swept) != 1 || swept[0] != dead {
		t.Fatalf("swept %v, want [%s]", swept, dead)
	}
	for _, p := range []string{"/run/netns/" + dead + "n", "/sys/class/net/" + dead + "v1", sock, RecordDir + "/" + dead} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived the sweep", p)
		}
	}
	if _, err := os.Stat("/run/netns/" + liveNS.Name); err != nil {
		t.Errorf("sweep removed the live Env's namespace: %v", err)
	}
}
