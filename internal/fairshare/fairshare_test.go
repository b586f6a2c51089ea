// SPDX-License-Identifier: Apache-2.0

package fairshare

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/internal/clock"
)

// pipeListener hands out one end of a pipe per dial, from the address
// the dial names.
type pipeListener struct{ conns chan net.Conn }

type fromConn struct {
	net.Conn
	from *net.TCPAddr
}

func (c fromConn) RemoteAddr() net.Addr { return c.from }

func (l *pipeListener) Accept() (net.Conn, error) {
	c, ok := <-l.conns
	if !ok {
		return nil, net.ErrClosed
	}
	return c, nil
}
func (l *pipeListener) Close() error   { close(l.conns); return nil }
func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{} }

// accepting runs ln's Accept loop, handing out what it accepts.
func accepting(ln net.Listener) chan net.Conn {
	ch := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ch <- c
		}
	}()
	return ch
}

// dial makes a connection from addr and returns what Accept made of it
// (nil when it was refused and closed) and the far end.
func dial(t *testing.T, pl *pipeListener, accepted chan net.Conn, addr string) (net.Conn, net.Conn) {
	t.Helper()
	a, b := net.Pipe()
	pl.conns <- fromConn{a, net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(addr), 1000))}
	select {
	case c := <-accepted:
		return c, b
	case <-time.After(100 * time.Millisecond):
	}
	b.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := b.Read(make([]byte, 1)); err != io.EOF && !strings.Contains(err.Error(), "closed") {
		t.Fatalf("neither accepted nor closed: %v", err)
	}
	return nil, b
}

func byAddr(a netip.Addr) string { return a.String() }

func TestConnsPerSIM(t *testing.T) {
	s := New("t", Limits{Conns: 2, PerSecond: -1}, nil)
	pl := &pipeListener{conns: make(chan net.Conn, 4)}
	acc := accepting(s.Listener(pl, byAddr))
	var held []net.Conn
	for i := 0; i < 2; i++ {
		c, _ := dial(t, pl, acc, "10.0.0.1")
		if c == nil {
			t.Fatalf("connection %d refused", i)
		}
		held = append(held, c)
	}
	if c, _ := dial(t, pl, acc, "10.0.0.1"); c != nil {
		t.Fatal("a third connection of one SIM was let in")
	}
	if got := s.Refused(ReasonConns); got != 1 {
		t.Fatalf("refusals counted: %d", got)
	}
	if c, _ := dial(t, pl, acc, "10.0.0.2"); c == nil {
		t.Fatal("another SIM was refused")
	}
	held[0].Close()
	held[0].Close() // twice: counted back once
	if _, of := s.Conns("10.0.0.1"); of != 1 {
		t.Fatalf("after a close the SIM holds %d", of)
	}
	if c, _ := dial(t, pl, acc, "10.0.0.1"); c == nil {
		t.Fatal("a freed slot is not usable")
	}
}

// When the service is full, a SIM holding fewer gets in by evicting the
// oldest connection of the one holding most, until they are even.
func TestFairUnderContention(t *testing.T) {
	s := New("t", Limits{Conns: -1, MaxConns: 4, PerSecond: -1}, nil)
	pl := &pipeListener{conns: make(chan net.Conn, 4)}
	acc := accepting(s.Listener(pl, byAddr))
	var hog []net.Conn
	var far []net.Conn
	for i := 0; i < 4; i++ {
		c, b := dial(t, pl, acc, "10.0.0.1")
		if c == nil {
			t.Fatal("refused below the cap")
		}
		hog, far = append(hog, c), append(far, b)
	}
	for i := 0; i < 2; i++ {
		if c, _ := dial(t, pl, acc, "10.0.0.2"); c == nil {
			t.Fatalf("newcomer's connection %d refused while the hog holds more", i)
		}
	}
	if got := s.Evicted(); got != 2 {
		t.Fatalf("evicted %d", got)
	}
	// The hog's oldest two were closed under it.
	for i, b := range far[:2] {
		b.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := b.Read(make([]byte, 1)); err == nil {
			t.Fatalf("hog connection %d still open", i)
		}
	}
	// Even now (2 and 2): the newcomer's third is refused, not evicting.
	if c, _ := dial(t, pl, acc, "10.0.0.2"); c != nil {
		t.Fatal("evicted below an even split")
	}
	if s.Refused(ReasonFull) != 1 {
		t.Fatalf("full refusals: %d", s.Refused(ReasonFull))
	}
	// The evicted connections' own Close does not free slots twice.
	hog[0].Close()
	hog[1].Close()
	if total, of := s.Conns("10.0.0.1"); total != 4 || of != 2 {
		t.Fatalf("counted %d, hog %d", total, of)
	}
}

func TestRequestRate(t *testing.T) {
	s := New("t", Limits{PerSecond: 1, Burst: 3}, nil)
	clk := clock.NewFake(time.Unix(1e9, 0))
	s.clk = clk
	a, b := s.Account("a"), s.Account("b")
	for i := 0; i < 3; i++ {
		if ok, _ := a.Request(); !ok {
			t.Fatalf("request %d refused within the burst", i)
		}
	}
	ok, wait := a.Request()
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("over the burst: %v, wait %v", ok, wait)
	}
	if ok, _ := b.Request(); !ok {
		t.Fatal("another SIM was refused")
	}
	clk.Advance(time.Second)
	if ok, _ := a.Request(); !ok {
		t.Fatal("refused after refilling")
	}
	if s.Refused(ReasonRate) != 1 {
		t.Fatalf("rate refusals: %d", s.Refused(ReasonRate))
	}
}

func TestInFlight(t *testing.T) {
	s := New("t", Limits{InFlight: 100}, nil)
	a := s.Account("a")
	r1, ok := a.Hold(60)
	if !ok {
		t.Fatal("first hold refused")
	}
	if _, ok := a.Hold(60); ok {
		t.Fatal("over the budget let through")
	}
	if _, ok := s.Account("b").Hold(60); !ok {
		t.Fatal("another SIM was refused")
	}
	r1()
	r1() // once only
	big, ok := a.Hold(500)
	if !ok {
		t.Fatal("a body bigger than the budget, alone, was refused")
	}
	big()
	if s.Refused(ReasonInFlight) != 1 {
		t.Fatalf("in-flight refusals: %d", s.Refused(ReasonInFlight))
	}
}

func TestPacketConnDropsOverRate(t *testing.T) {
	s := New("t", Limits{PerSecond: 0.001, Burst: 2}, nil)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	wrapped := s.PacketConn(pc, byAddr)
	snd, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Close()
	for i := 0; i < 5; i++ {
		snd.Write([]byte{byte(i)})
	}
	buf := make([]byte, 8)
	for i := 0; i < 2; i++ {
		wrapped.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, from, err := wrapped.ReadFrom(buf)
		if err != nil || n != 1 || buf[0] != byte(i) {
			t.Fatalf("datagram %d: %v %d %v", i, err, n, buf[0])
		}
		if PacketAccount(wrapped, from) == nil {
			t.Fatal("no account for the sender")
		}
	}
	wrapped.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, _, err := wrapped.ReadFrom(buf); err == nil {
		t.Fatal("a datagram over the rate was delivered")
	}
	if got := s.Refused(ReasonRate); got != 3 {
		t.Fatalf("dropped %d, want 3", got)
	}
}

func TestHandler(t *testing.T) {
	s := New("t", Limits{PerSecond: 0.001, Burst: 2, InFlight: 10}, nil)
	a := s.Account("a")
	h := Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		}
	}))
	do := func(body io.Reader, n int64) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/", body)
		r.ContentLength = n
		r = r.WithContext(t.Context())
		r = r.WithContext(contextWith(r, a))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	// A chunked body over the budget, while another request holds bytes.
	release, _ := a.Hold(5)
	if w := do(io.NopCloser(strings.NewReader(strings.Repeat("x", 20))), -1); w.Code != http.StatusRequestEntityTooLarge || !strings.Contains(w.Body.String(), ErrInFlight.Error()) {
		t.Fatalf("chunked over the budget: %d %q", w.Code, w.Body)
	}
	release()
	if w := do(strings.NewReader("0123456789"), 10); w.Code != http.StatusOK {
		t.Fatalf("within the share: %d", w.Code)
	}
	w := do(strings.NewReader(""), 0)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), `"rate_limited"`) {
		t.Fatalf("over the rate: %d %v %q", w.Code, w.Header(), w.Body)
	}
	// A request with no account passes.
	r := httptest.NewRequest("GET", "/", nil)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("without an account: %d", w.Code)
	}
	if a.inFlight != 0 {
		t.Fatalf("%d bytes still held", a.inFlight)
	}
}

func TestIdleAccountsForgotten(t *testing.T) {
	s := New("t", Limits{}, nil)
	for i := 0; i < 5000; i++ {
		s.Account(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}).String())
	}
	if n := len(s.accounts); n > 2048 {
		t.Fatalf("%d idle accounts kept", n)
	}
}

func contextWith(r *http.Request, a *Account) context.Context {
	return context.WithValue(r.Context(), ctxKey{}, a)
}

// Wait takes a token, waiting for one when the bucket is empty, and gives
// up when its context ends; a wait is counted once.
func TestWait(t *testing.T) {
	s := New("t", Limits{PerSecond: 20, Burst: 1}, nil)
	a := s.Account("a")
	if err := a.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := a.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 20*time.Millisecond {
		t.Fatalf("an empty bucket let a request through after %v (a token takes 50 ms)", waited)
	}
	if s.Refused(ReasonRate) != 1 {
		t.Fatalf("waits counted: %d", s.Refused(ReasonRate))
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := a.Wait(ctx); err == nil {
		t.Fatal("a wait with an ended context returned a token")
	}
	var none *Account
	if err := none.Wait(ctx); err != nil {
		t.Fatal("a nil account waited")
	}
}
