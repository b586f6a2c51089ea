// SPDX-License-Identifier: Apache-2.0

// Package netns builds throwaway test hosts out of Linux network namespaces:
// namespaces, veth links between them (or to the root namespace), commands and
// background processes inside them, and Debian's wireguard-go as a real,
// separate WireGuard peer.
//
// Everything a test creates is named with a prefix unique to that test
// (Env.Prefix) and removed in t.Cleanup, also when the test fails: processes are
// ended by their PID (never by name), then interfaces and namespaces are
// deleted. Traffic stays inside what the test built: addresses live on veth
// interfaces the test created.
//
// Running Go code inside a namespace: NS.Do locks the calling goroutine to its
// OS thread and moves that thread into the namespace for the duration of a
// function. Sockets (and TUN devices) created by that function belong to the
// namespace for their whole life, so an in-process engine can listen in one
// namespace while wireguard-go runs in another. We chose this over helper
// processes because our engine is a library the test wants to drive and
// inspect directly; the price is that only the goroutine running fn is in the
// namespace — goroutines it starts are not, so create sockets synchronously.
//
// The tests need root and the tools iproute2 (ip), wireguard-tools (wg),
// wireguard-go and ping. Without them a test is skipped — unless the
// environment has CI=true, where it fails, so CI can never pass by skipping.
package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// MaxIfNameLen is the longest Linux interface name (IFNAMSIZ - 1).
const MaxIfNameLen = 15

// Tools are the programs Require checks for.
var Tools = []string{"ip", "wg", "wireguard-go", "ping"}

// Require skips t unless the process runs as root and every tool in Tools is
// on PATH, and TUN is available. With CI=true in the environment it fails t
// instead of skipping: in CI a missing prerequisite is a broken setup.
func Require(t T) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range Tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		missing = append(missing, "/dev/net/tun")
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("network namespace test needs: %s", strings.Join(missing, ", "))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: failing instead of skipping)")
	}
	t.Skip(msg)
}

// T is what an Env needs of its test: testing.TB has it, and so can a
// benchmark command (wirefleet-bench) that builds the same topologies
// outside `go test`.
type T interface {
	Helper()
	Cleanup(func())
	Errorf(format string, args ...any)
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Skip(args ...any)
	TempDir() string
}

var _ T = testing.TB(nil)

// Env is the set of namespaces, links and processes of one test. Create it with
// New; everything it made is removed when the test ends.
type Env struct {
	t      T
	prefix string

	mu        sync.Mutex
	seq       int
	names     map[string]bool // every name handed out, so two objects never share one
	cleanups  []func()        // run in reverse order
	cleanDone bool
}

// New calls Require and SweepStale, then returns an empty Env whose names start with a fresh
// prefix: "wf" + two base-36 digits of the PID + three random base-36 digits
// (7 characters), which leaves 8 characters for a suffix in interface names.
func New(t T) *Env {
	t.Helper()
	Require(t)
	if swept := SweepStale(); len(swept) > 0 {
		t.Logf("netns: removed leftovers of killed test processes: %v", swept)
	}
	e := &Env{t: t, prefix: newPrefix(), names: map[string]bool{}}
	t.Cleanup(e.cleanup)
	e.writeRecord()
	return e
}

func newPrefix() string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	pid := os.Getpid() % (36 * 36)
	b := []byte{'w', 'f', digits[pid/36], digits[pid%36]}
	for i := 0; i < 3; i++ {
		n, err := rand.Int(rand.Reader, big.NewInt(36))
		if err != nil {
			panic(err)
		}
		b = append(b, digits[n.Int64()])
	}
	return string(b)
}

// Prefix is the prefix of every name this Env creates.
func (e *Env) Prefix() string { return e.prefix }

// Name returns prefix+suffix, failing the test if the result is too long for an
// interface name or was already handed out.
func (e *Env) Name(suffix string) string {
	e.t.Helper()
	name := e.prefix + suffix
	if len(name) > MaxIfNameLen {
		e.t.Fatalf("netns: name %q is longer than %d characters", name, MaxIfNameLen)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.names[name] {
		e.t.Fatalf("netns: name %q used twice", name)
	}
	e.names[name] = true
	return name
}

// autoName returns a fresh name with a short generated suffix ("<kind><n>").
func (e *Env) autoName(kind string) string {
	e.mu.Lock()
	e.seq++
	n := e.seq
	e.mu.Unlock()
	return e.Name(fmt.Sprintf("%s%d", kind, n))
}

// addCleanup registers f to run at cleanup, before everything registered earlier.
func (e *Env) addCleanup(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cleanups = append(e.cleanups, f)
}

func (e *Env) cleanup() {
	e.mu.Lock()
	if e.cleanDone {
		e.mu.Unlock()
		return
	}
	e.cleanDone = true
	fs := e.cleanups
	e.cleanups = nil
	e.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// NS is a network namespace made by an Env. The zero *NS (nil) stands for the
// root namespace where methods accept one.
type NS struct {
	env  *Env
	Name string
}

// NewNS creates a namespace named Env.Name(suffix) — an empty suffix picks one —
// with its loopback up. It is deleted at cleanup, after the processes in it
// have been ended.
func (e *Env) NewNS(suffix string) *NS {
	e.t.Helper()
	var name string
	if suffix == "" {
		name = e.autoName("n")
	} else {
		name = e.Name(suffix)
	}
	if out, err := run(nil, "ip", "netns", "add", name); err != nil {
		e.t.Fatalf("netns: ip netns add %s: %v: %s", name, err, out)
	}
	e.addCleanup(func() {
		if out, err := run(nil, "ip", "netns", "del", name); err != nil {
			e.t.Errorf("netns: ip netns del %s: %v: %s", name, err, out)
		}
	})
	ns := &NS{env: e, Name: name}
	ns.MustExec("ip", "link", "set", "lo", "up")
	return ns
}

// argv returns the command line that runs name with args inside n (directly
// when n is the root namespace).
func (n *NS) argv(name string, args ...string) []string {
	if n == nil {
		return append([]string{name}, args...)
	}
	return append([]string{"ip", "netns", "exec", n.Name, name}, args...)
}

// Command returns an unstarted command running name with args inside n.
// `ip netns exec` execs the program in place, so the command's PID is the
// program's PID.
func (n *NS) Command(name string, args ...string) *exec.Cmd {
	argv := n.argv(name, args...)
	return exec.Command(argv[0], argv[1:]...)
}

// Exec runs name with args inside n (root namespace when n is nil), waits at most
// 30 seconds, and returns its combined output.
func (n *NS) Exec(name string, args ...string) (string, error) {
	return run(n, name, args...)
}

// MustExec is Exec that fails the test on error. n must not be nil; use
// Env.RootExec for the root namespace.
func (n *NS) MustExec(name string, args ...string) string {
	n.env.t.Helper()
	out, err := n.Exec(name, args...)
	if err != nil {
		n.env.t.Fatalf("netns: %s: %v: %s", strings.Join(n.argv(name, args...), " "), err, out)
	}
	return out
}

// RootExec runs a command in the root namespace, failing the test on error.
func (e *Env) RootExec(name string, args ...string) string {
	e.t.Helper()
	out, err := run(nil, name, args...)
	if err != nil {
		e.t.Fatalf("netns: %s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func run(n *NS, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	argv := n.argv(name, args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.String(), err
}

// Process is a background process started by Start; cleanup ends it by PID.
type Process struct {
	Cmd  *exec.Cmd
	PID  int
	done chan struct{}
	err  error
	out  *lockedBuffer
}

// Output returns what the process wrote to stdout and stderr so far.
func (p *Process) Output() string { return p.out.String() }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits for the process to end and returns its exit error.
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// Stop ends the process: SIGTERM to its PID (and the process group it leads),
// then SIGKILL after two seconds. Calling it again is harmless.
func (p *Process) Stop() {
	if p.Exited() {
		return
	}
	// The process leads its own group (Setpgid), so -PID reaches only it and
	// children it forked, never anything else.
	_ = syscall.Kill(-p.PID, syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(2 * time.Second):
	}
	_ = syscall.Kill(-p.PID, syscall.SIGKILL)
	<-p.done
}

// Start starts name with args in the background inside n (root when nil). The
// process is ended by PID at cleanup, and killed by the kernel if the test
// process dies first (Pdeathsig).
func (e *Env) Start(n *NS, env []string, name string, args ...string) *Process {
	e.t.Helper()
	argv := n.argv(name, args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	out := &lockedBuffer{}
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("netns: start %s: %v", strings.Join(argv, " "), err)
	}
	p := &Process{Cmd: cmd, PID: cmd.Process.Pid, done: make(chan struct{}), out: out}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	e.addCleanup(p.Stop)
	return p
}

// Start is Env.Start inside n.
func (n *NS) Start(env []string, name string, args ...string) *Process {
	n.env.t.Helper()
	return n.env.Start(n, env, name, args...)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Link is one end of a veth pair.
type Link struct {
	env  *Env
	NS   *NS // nil: the root namespace
	Name string
	Peer *Link // the other end

	mu    sync.Mutex
	addrs []netip.Prefix
}

// Addrs returns the addresses currently assigned by this package.
func (l *Link) Addrs() []netip.Prefix {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]netip.Prefix(nil), l.addrs...)
}

// Addr returns the first address of the link (the zero Addr if none).
func (l *Link) Addr() netip.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.addrs) == 0 {
		return netip.Addr{}
	}
	return l.addrs[0].Addr()
}

// Veth creates a veth pair between a and b (either may be nil for the root
// namespace), puts addrA on a's end and addrB on b's end (zero prefixes are
// skipped) and brings both up. A root-namespace end is deleted at cleanup; an
// end inside a namespace goes with the namespace.
func (e *Env) Veth(a *NS, addrA netip.Prefix, b *NS, addrB netip.Prefix) (*Link, *Link) {
	e.t.Helper()
	la := &Link{env: e, NS: a, Name: e.autoName("v")}
	lb := &Link{env: e, NS: b, Name: e.autoName("v")}
	la.Peer, lb.Peer = lb, la
	// Create both ends in the root namespace, then move them: one command
	// form for every combination, and a failure leaves nothing in a foreign place.
	e.RootExec("ip", "link", "add", la.Name, "type", "veth", "peer", "name", lb.Name)
	e.addCleanup(func() {
		// Whatever end is still in the root namespace (both, if moving one
		// failed) goes; deleting one end deletes the pair. Ends inside
		// namespaces are not found here and go with their namespace.
		for _, l := range []*Link{la, lb} {
			_, _ = run(nil, "ip", "link", "del", l.Name)
		}
	})
	for _, l := range []*Link{la, lb} {
		if l.NS != nil {
			e.RootExec("ip", "link", "set", l.Name, "netns", l.NS.Name)
		}
	}
	for _, p := range []struct {
		l    *Link
		addr netip.Prefix
	}{{la, addrA}, {lb, addrB}} {
		if p.addr.IsValid() {
			p.l.AddAddr(p.addr)
		}
		p.l.exec("ip", "link", "set", p.l.Name, "up")
	}
	return la, lb
}

func (l *Link) exec(name string, args ...string) string {
	l.env.t.Helper()
	out, err := run(l.NS, name, args...)
	if err != nil {
		l.env.t.Fatalf("netns: %s: %v: %s", strings.Join(l.NS.argv(name, args...), " "), err, out)
	}
	return out
}

// AddAddr adds an address to the link.
func (l *Link) AddAddr(p netip.Prefix) {
	l.env.t.Helper()
	args := []string{"addr", "add", p.String(), "dev", l.Name}
	if p.Addr().Is6() {
		args = append(args, "nodad") // usable at once: the test owns the link
	}
	l.exec("ip", args...)
	l.mu.Lock()
	l.addrs = append(l.addrs, p)
	l.mu.Unlock()
}

// DelAddr removes an address from the link.
func (l *Link) DelAddr(p netip.Prefix) {
	l.env.t.Helper()
	l.exec("ip", "addr", "del", p.String(), "dev", l.Name)
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, a := range l.addrs {
		if a == p {
			l.addrs = append(l.addrs[:i], l.addrs[i+1:]...)
			break
		}
	}
}

// SetAddr replaces every address of the link by p. The new address is added
// before the old ones go, so the link is never without one.
//
// Note for roaming tests: Debian's wireguard-go (like golang.zx2c4.com/wireguard)
// pins the source address of its replies ("sticky sockets") and only re-picks
// it when the route to the peer moves to another interface. Changing the
// address on the same interface therefore strands it on the removed address.
// To roam a wireguard-go, give it a second link and move the route to its peer
// there (ReplaceRoute), then remove the old address — as a device switching
// from Wi-Fi to cellular does.
func (l *Link) SetAddr(p netip.Prefix) {
	l.env.t.Helper()
	old := l.Addrs()
	// Without promote_secondaries, deleting the old (primary) address of a
	// subnet takes the new (secondary) one with it.
	l.exec("sh", "-c", "echo 1 > /proc/sys/net/ipv4/conf/$0/promote_secondaries", l.Name)
	l.exec("ip", "addr", "add", p.String(), "dev", l.Name)
	for _, o := range old {
		if o != p {
			l.exec("ip", "addr", "del", o.String(), "dev", l.Name)
		}
	}
	l.mu.Lock()
	l.addrs = []netip.Prefix{p}
	l.mu.Unlock()
}

// ReplaceRoute adds or replaces a route in n (root namespace when nil), e.g.
// ReplaceRoute(ns, "10.200.0.2/32", "via", "10.202.0.2", "dev", link.Name).
func (e *Env) ReplaceRoute(n *NS, dst string, args ...string) {
	e.t.Helper()
	a := append([]string{"route", "replace", dst}, args...)
	out, err := run(n, "ip", a...)
	if err != nil {
		e.t.Fatalf("netns: %s: %v: %s", strings.Join(n.argv("ip", a...), " "), err, out)
	}
}

// AddAddr adds an address to any interface of n (for example "lo", to give a
// namespace a service address that several links route to).
func (n *NS) AddAddr(dev string, p netip.Prefix) {
	n.env.t.Helper()
	n.MustExec("ip", "addr", "add", p.String(), "dev", dev)
}

// AddRoute adds a route in n (root namespace when nil), e.g.
// AddRoute(ns, "10.9.0.0/24", "dev", "wg0"). Routes in the root namespace
// must go through links the test created, so they vanish with them.
func (e *Env) AddRoute(n *NS, dst string, args ...string) {
	e.t.Helper()
	a := append([]string{"route", "add", dst}, args...)
	out, err := run(n, "ip", a...)
	if err != nil {
		e.t.Fatalf("netns: %s: %v: %s", strings.Join(n.argv("ip", a...), " "), err, out)
	}
}
