// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"crypto/cipher"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/net/ipv4"

	"github.com/wirefleet/wirefleet/engine/cookie"
	"github.com/wirefleet/wirefleet/engine/noise"
	"github.com/wirefleet/wirefleet/engine/tai64n"
	"github.com/wirefleet/wirefleet/engine/wire"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

// fleetSimCommand is the hidden subcommand that simulates a fleet: many
// WireGuard initiators in one process, each with a source address of its
// own on loopback (127.1.0.1 on: the whole of 127/8 is local), all
// behind one UDP socket that picks the source per packet (IP_PKTINFO)
// and learns from the destination which session an answer is for. It
// behaves as a standard client does where the gateway can see it: an
// initiation, a retry after RekeyTimeout (with the cookie, when it got
// one), a keepalive once connected, then a keepalive every interval at a
// random phase. It does no rekeying: runs stay under RekeyAfterTime.
//
// The protocol with the bench: keys (raw 32-byte private keys, one per
// session) in a file; "ready" on stdout once every initiation is made;
// SIGUSR1 sends them all at once; "connected" when every session has its
// answer; SIGTERM ends it. Events are JSON lines.
const fleetSimCommand = "fleet-sim"

// fleetBase is the first session's source address.
var fleetBase = netip.MustParseAddr("127.1.0.1")

type simEvent struct {
	Event         string  `json:"event"`
	Sessions      int     `json:"sessions"`
	Connected     int     `json:"connected"`
	Seconds       float64 `json:"seconds,omitempty"`
	Initiations   int64   `json:"initiations"`
	CookieReplies int64   `json:"cookieReplies"`
	Keepalives    int64   `json:"keepalives"`
}

type simSession struct {
	src  netip.Addr
	ks   *keystore.Memory
	ss   [32]byte // static-static DH with the gateway, once
	macs cookie.Generator

	mu        sync.Mutex
	init      *noise.Initiator
	sender    uint32 // our index in the pending handshake
	sentAt    time.Time
	receiver  uint32 // the gateway's index, once connected
	send      cipher.AEAD
	counter   uint64
	connected bool
}

type fleetSim struct {
	gw       wgkey.Public
	target   *net.UDPAddr
	conn     *ipv4.PacketConn
	sessions []*simSession
	byIndex  sync.Map // sender index → *simSession

	connected            atomic.Int64
	initiations, cookies atomic.Int64
	sent                 atomic.Int64 // keepalives
	out                  *json.Encoder
	outMu                sync.Mutex
	rekeyTimeout, jitter time.Duration
	keepaliveEvery       time.Duration
}

func (f *fleetSim) emit(ev string, secs float64) {
	f.outMu.Lock()
	defer f.outMu.Unlock()
	_ = f.out.Encode(simEvent{Event: ev, Sessions: len(f.sessions), Connected: int(f.connected.Load()), Seconds: secs,
		Initiations: f.initiations.Load(), CookieReplies: f.cookies.Load(), Keepalives: f.sent.Load()})
}

func runFleetSim(args []string) int {
	fs := flag.NewFlagSet(fleetSimCommand, flag.ContinueOnError)
	keysFile := fs.String("keys", "", "file of raw 32-byte private keys, one per session")
	gwKey := fs.String("gateway-key", "", "the gateway's public key (base64)")
	target := fs.String("target", "127.0.0.1:51820", "the gateway's UDP address")
	keepalive := fs.Duration("keepalive", 25*time.Second, "keepalive interval once connected")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "fleet-sim:", err); return 1 }
	raw, err := os.ReadFile(*keysFile)
	if err != nil || len(raw)%32 != 0 || len(raw) == 0 {
		return fail(fmt.Errorf("keys file %q: %v (%d bytes)", *keysFile, err, len(raw)))
	}
	gw, err := wgkey.ParsePublic(*gwKey)
	if err != nil {
		return fail(err)
	}
	ua, err := net.ResolveUDPAddr("udp4", *target)
	if err != nil {
		return fail(err)
	}
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{Port: 0})
	if err != nil {
		return fail(err)
	}
	// Large socket buffers (root may force them): a burst of 100,000
	// answers must not be dropped here, where a real fleet has one each.
	if rc, err := uc.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			for _, opt := range []int{syscall.SO_RCVBUFFORCE, syscall.SO_SNDBUFFORCE} {
				_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, 64<<20)
			}
		})
	}
	pc := ipv4.NewPacketConn(uc)
	if err := pc.SetControlMessage(ipv4.FlagDst, true); err != nil {
		return fail(err)
	}
	f := &fleetSim{gw: gw, target: ua, conn: pc, out: json.NewEncoder(os.Stdout),
		rekeyTimeout: 5 * time.Second, jitter: 333 * time.Millisecond, keepaliveEvery: *keepalive}
	n := len(raw) / 32
	f.sessions = make([]*simSession, n)
	base := fleetBase.As4()
	b0 := binary.BigEndian.Uint32(base[:])
	// Keys and the static-static DH once, and every first initiation made
	// before the start, so the burst is only sends.
	first := make([][]byte, n)
	parallel(n, func(i int) {
		var priv wgkey.Private
		copy(priv[:], raw[i*32:])
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], b0+uint32(i))
		s := &simSession{src: netip.AddrFrom4(a), ks: keystore.NewMemory(priv)}
		ss, err := s.ks.DH(context.Background(), keystore.DHRequest{Purpose: keystore.StaticStatic, Peer: gw})
		if err != nil {
			panic(err)
		}
		s.ss = ss
		s.macs.Init(gw)
		f.sessions[i] = s
		first[i] = f.initiation(s, time.Now())
	})
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGTERM, os.Interrupt)
	f.emit("ready", 0)
	if s := <-sig; s != syscall.SIGUSR1 {
		return 0
	}
	go f.read()
	start := time.Now()
	for i, s := range f.sessions {
		s.mu.Lock()
		s.sentAt = time.Now()
		s.mu.Unlock()
		f.write(first[i], s.src)
	}
	go f.retry()
	done := make(chan struct{})
	go func() {
		for f.connected.Load() < int64(n) {
			time.Sleep(5 * time.Millisecond)
		}
		close(done)
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for waiting := true; waiting; {
		select {
		case <-done:
			f.emit("connected", time.Since(start).Seconds())
			waiting = false
		case <-tick.C:
			f.emit("progress", time.Since(start).Seconds())
		case <-sig:
			return 0
		}
	}
	go f.keepalives()
	<-sig
	return 0
}

// parallel runs fn(0..n-1) on every CPU.
func parallel(n int, fn func(int)) {
	var wg sync.WaitGroup
	w := runtime.GOMAXPROCS(0)
	for k := range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := k; i < n; i += w {
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// initiation makes a fresh handshake initiation for s, with its MACs.
func (f *fleetSim) initiation(s *simSession, now time.Time) []byte {
	idx := rand.Uint32()
	st, msg, err := noise.CreateInitiation(noise.InitiationParams{Local: s.ks.PublicKey(), Peer: f.gw, StaticStatic: &s.ss, SenderIndex: idx, Timestamp: tai64n.From(now)})
	if err != nil {
		panic(err)
	}
	b := make([]byte, wire.InitiationSize)
	msg.Marshal(b)
	s.macs.AddMACs(b, now)
	s.mu.Lock()
	if s.sender != 0 {
		f.byIndex.Delete(s.sender)
	}
	s.init, s.sender = st, idx
	s.mu.Unlock()
	f.byIndex.Store(idx, s)
	f.initiations.Add(1)
	return b
}

func (f *fleetSim) write(b []byte, src netip.Addr) {
	cm := &ipv4.ControlMessage{Src: src.AsSlice()}
	for {
		_, err := f.conn.WriteTo(b, cm, f.target)
		if err == nil || !isNoBuffer(err) {
			return
		}
		time.Sleep(100 * time.Microsecond) // the socket's queue is full: as a device would, wait
	}
}

func isNoBuffer(err error) bool {
	return errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.EAGAIN)
}

// read takes the gateway's answers; each handshake response's DH work
// goes to a worker per CPU.
func (f *fleetSim) read() {
	work := make(chan []byte, 4096)
	for range runtime.GOMAXPROCS(0) {
		go func() {
			for b := range work {
				f.answer(b)
			}
		}()
	}
	for {
		b := make([]byte, 256)
		n, _, _, err := f.conn.ReadFrom(b)
		if err != nil {
			close(work)
			return
		}
		work <- b[:n]
	}
}

func (f *fleetSim) answer(b []byte) {
	t, err := wire.Type(b)
	if err != nil {
		return
	}
	switch t {
	case wire.TypeResponse:
		m, err := wire.ParseResponse(b)
		if err != nil {
			return
		}
		v, ok := f.byIndex.Load(m.Receiver)
		if !ok {
			return
		}
		s := v.(*simSession)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.connected || s.init == nil || s.sender != m.Receiver {
			return
		}
		keys, err := s.init.ConsumeResponse(context.Background(), s.ks, &m)
		if err != nil {
			return
		}
		s.init.Wipe()
		s.init = nil
		s.send, _ = chacha20poly1305.New(keys.Send[:])
		s.receiver, s.connected = m.Sender, true
		f.byIndex.Delete(s.sender)
		f.keepalive(s) // confirms the session to the responder
		f.connected.Add(1)
	case wire.TypeCookieReply:
		m, err := wire.ParseCookieReply(b)
		if err != nil {
			return
		}
		if v, ok := f.byIndex.Load(m.Receiver); ok && v.(*simSession).macs.ConsumeReply(&m, time.Now()) == nil {
			f.cookies.Add(1)
		}
	}
}

// keepalive sends s an empty transport packet; s.mu is held.
func (f *fleetSim) keepalive(s *simSession) {
	b := make([]byte, wire.TransportHeaderSize, wire.TransportMinSize)
	wire.PutTransportHeader(b, s.receiver, s.counter)
	var nonce [chacha20poly1305.NonceSize]byte
	binary.LittleEndian.PutUint64(nonce[4:], s.counter)
	s.counter++
	b = s.send.Seal(b, nonce[:], nil, nil)
	f.write(b, s.src)
	f.sent.Add(1)
}

// retry re-sends an initiation RekeyTimeout (plus jitter) after the last
// one of every session still unanswered, as standard clients do.
func (f *fleetSim) retry() {
	for f.connected.Load() < int64(len(f.sessions)) {
		time.Sleep(50 * time.Millisecond)
		now := time.Now()
		for _, s := range f.sessions {
			s.mu.Lock()
			due := !s.connected && now.Sub(s.sentAt) >= f.rekeyTimeout+time.Duration(rand.Int64N(int64(f.jitter)))
			if due {
				s.sentAt = now
			}
			s.mu.Unlock()
			if due {
				f.write(f.initiation(s, now), s.src)
			}
		}
	}
}

// keepalives sends each session's keepalive every interval, the sessions
// spread evenly over it.
func (f *fleetSim) keepalives() {
	const slot = 10 * time.Millisecond
	slots := max(1, int(f.keepaliveEvery/slot))
	t := time.NewTicker(slot)
	defer t.Stop()
	for k := 0; ; k = (k + 1) % slots {
		<-t.C
		for i := k; i < len(f.sessions); i += slots {
			s := f.sessions[i]
			s.mu.Lock()
			f.keepalive(s)
			s.mu.Unlock()
		}
	}
}
