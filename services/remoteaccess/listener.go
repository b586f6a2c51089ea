// SPDX-License-Identifier: Apache-2.0

package remoteaccess

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
)

// portListener is one mapping's public port and its connections.
type portListener struct {
	s      *Service
	m      fleet.Mapping
	target netip.AddrPort // the device's overlay address and port
	ln     net.Listener
	expiry *time.Timer
	denied denyLimiter

	mu     sync.Mutex
	conns  map[*session]struct{}
	closed bool
	wg     sync.WaitGroup
}

func newPortListener(s *Service, m fleet.Mapping, addr netip.Addr, ln net.Listener) *portListener {
	return &portListener{s: s, m: m, target: netip.AddrPortFrom(addr, uint16(m.Port)), ln: ln, conns: map[*session]struct{}{}}
}

func (l *portListener) start() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.expiry = time.AfterFunc(time.Until(l.m.Expires), func() { l.s.expire(l.m.ID) })
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.acceptLoop()
	}()
}

// close stops accepting and ends every open connection.
func (l *portListener) close(reason string) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	conns := l.conns
	l.conns = map[*session]struct{}{}
	expiry := l.expiry
	l.mu.Unlock()
	if expiry != nil {
		expiry.Stop()
	}
	l.ln.Close()
	for c := range conns {
		c.kill(reason)
	}
}

// wait waits for the accept loop and the connections' goroutines.
func (l *portListener) wait() { l.wg.Wait() }

func (l *portListener) acceptLoop() {
	backoff := 5 * time.Millisecond
	for {
		c, err := l.ln.Accept()
		if err != nil {
			l.mu.Lock()
			closed := l.closed
			l.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors, most likely: wait, do not spin.
			l.s.log.Warn("remote access: accept", "mapping", l.m.ID, "err", err)
			time.Sleep(backoff)
			backoff = min(backoff*2, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		l.admit(c)
	}
}

// admit checks a new connection against the mapping and hands it to a
// session, or refuses it at once: refusals cost an accept and a close.
func (l *portListener) admit(c net.Conn) {
	src := addrOf(c.RemoteAddr())
	reason := ""
	switch {
	case !l.m.Allows(src):
		reason = DenySource
	case !l.m.Live(l.s.cfg.Clock.Now()):
		reason = DenyExpired
	case !l.s.host.Online(l.m.SIMID):
		reason = DenyOffline
	}
	var sess *session
	if reason == "" {
		l.mu.Lock()
		switch {
		case l.closed:
			reason = DenyExpired
		case len(l.conns) >= l.m.MaxConnections:
			reason = DenyTooMany
		default:
			sess = &session{l: l, public: c, src: src, start: time.Now(), done: make(chan struct{})}
			l.conns[sess] = struct{}{}
			l.wg.Add(1)
		}
		l.mu.Unlock()
	}
	if reason != "" {
		c.Close()
		l.deny(src, reason)
		return
	}
	l.s.metrics.active.Inc()
	go func() {
		defer l.wg.Done()
		defer l.s.metrics.active.Dec()
		sess.run()
	}()
}

func (l *portListener) deny(src netip.Addr, reason string) {
	l.s.metrics.denied.WithLabelValues(reason).Inc()
	if n, ok := l.denied.allow(reason, time.Now()); ok {
		d := map[string]any{"source": src.String(), "reason": reason, "simId": l.m.SIMID, "publicPort": l.m.PublicPort}
		if n > 0 {
			d["suppressed"] = n // refusals for this reason not recorded one by one since the last event
		}
		l.s.events.add(l.m.ID, src.String(), "mapping.deny", d)
	}
}

// killAll ends the open connections but keeps the port open.
func (l *portListener) killAll(reason string) {
	l.mu.Lock()
	conns := make([]*session, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		c.kill(reason)
	}
}

func (l *portListener) forget(s *session) {
	l.mu.Lock()
	delete(l.conns, s)
	l.mu.Unlock()
}

func addrOf(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ap := ta.AddrPort(); ap.IsValid() {
			return ap.Addr().Unmap()
		}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap.Addr().Unmap()
}

// denyLimiter lets through one refusal event per reason per second, and
// counts the ones it held back: a flood is visible in the audit trail
// without writing a row per connection.
type denyLimiter struct {
	mu   sync.Mutex
	last map[string]time.Time
	held map[string]int
}

func (d *denyLimiter) allow(reason string, now time.Time) (suppressed int, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.last == nil {
		d.last, d.held = map[string]time.Time{}, map[string]int{}
	}
	if now.Sub(d.last[reason]) < time.Second {
		d.held[reason]++
		return 0, false
	}
	d.last[reason] = now
	n := d.held[reason]
	d.held[reason] = 0
	return n, true
}

// session is one carried connection.
type session struct {
	l      *portListener
	public net.Conn
	src    netip.Addr
	start  time.Time
	done   chan struct{}

	mu     sync.Mutex
	device net.Conn
	killed string // why the platform ended it ("" : one side closed)

	toDevice, fromDevice atomic.Int64
}

// kill ends the session from the platform's side.
func (s *session) kill(reason string) {
	s.mu.Lock()
	if s.killed == "" {
		s.killed = reason
	}
	dev := s.device
	s.mu.Unlock()
	s.public.Close()
	if dev != nil {
		dev.Close()
	}
}

func (s *session) run() {
	l := s.l
	defer l.forget(s)
	defer s.public.Close()
	client := s.public
	if l.m.TLS {
		tc := tls.Server(s.public, l.s.cfg.TLS)
		ctx, cancel := context.WithTimeout(l.s.ctx, l.s.cfg.HandshakeTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			l.deny(s.src, DenyTLS)
			return
		}
		client = tc
	}
	ctx, cancel := context.WithTimeout(l.s.ctx, l.s.cfg.DialTimeout)
	dev, err := l.s.host.DialTCP(ctx, l.target)
	cancel()
	if err != nil {
		l.deny(s.src, DenyUnreached)
		return
	}
	s.mu.Lock()
	s.device = dev
	killed := s.killed
	s.mu.Unlock()
	defer dev.Close()
	if killed != "" {
		return
	}
	l.s.metrics.connections.Inc()
	l.s.events.add(l.m.ID, s.src.String(), "mapping.connect", map[string]any{"source": s.src.String(), "simId": l.m.SIMID, "port": l.m.Port, "publicPort": l.m.PublicPort, "tls": l.m.TLS})

	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		pipe(dev, client, &s.toDevice, l.s.metrics.bytesToDevice)
	}()
	go func() {
		defer wg.Done()
		pipe(client, dev, &s.fromDevice, l.s.metrics.bytesFromDevice)
	}()
	wg.Wait()

	s.mu.Lock()
	reason := s.killed
	s.mu.Unlock()
	if reason == "" {
		reason = "ended"
	}
	l.s.events.add(l.m.ID, s.src.String(), "mapping.close", map[string]any{"source": s.src.String(), "simId": l.m.SIMID,
		"bytesToDevice": s.toDevice.Load(), "bytesFromDevice": s.fromDevice.Load(),
		"durationMs": time.Since(s.start).Milliseconds(), "reason": reason})
}

type closeWriter interface{ CloseWrite() error }

type counter interface{ Add(float64) }

// pipe copies src to dst, counting bytes, then half-closes dst so the other
// direction can finish (a client that sends its request and waits).
func pipe(dst, src net.Conn, n *atomic.Int64, total counter) {
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				src.Close()
				return
			}
			n.Add(int64(k))
			total.Add(float64(k))
		}
		if err != nil {
			if err != io.EOF {
				// A reset or a kill: end both directions.
				dst.Close()
				src.Close()
				return
			}
			if cw, ok := dst.(closeWriter); ok {
				cw.CloseWrite()
			} else {
				dst.Close()
			}
			return
		}
	}
}
