// SPDX-License-Identifier: Apache-2.0

package enginebench

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/wirefleet/wirefleet/wgkey"
)

// Message types and sizes of the WireGuard protocol the blaster looks at.
const (
	msgInitiation     = 1
	msgResponse       = 2
	msgCookieReply    = 3
	initiationSize    = 148
	responseSize      = 92
	cookieReplySize   = 64
	handshakeMaterial = "WFHS1\n" // magic of a HandshakeSet file
)

// InitiationMaker produces valid handshake initiations. It is how initiator
// cost leaves the handshake measurement: messages are made once, before any
// responder runs, and replayed to each subject (a fresh responder has seen no
// timestamp, so every message is accepted once).
//
// The wireguard-go implementation (package wggo) drives
// golang.zx2c4.com/wireguard's own initiator; our noise package can replace it
// without touching the harness.
type InitiationMaker interface {
	// Initiations returns, for each initiator key pair, one initiation
	// (148 bytes, MAC1 set, MAC2 zero) from it to responder, in order.
	Initiations(responder wgkey.Public, initiators []KeyPair) ([][]byte, error)
}

// HandshakeSet is a responder key, initiator public keys and one initiation
// from each of them.
type HandshakeSet struct {
	Responder  wgkey.Private
	Initiators []wgkey.Public
	Messages   [][]byte
}

// NewHandshakeSet makes n initiator keys and their initiations to a fresh
// responder key.
func NewHandshakeSet(m InitiationMaker, n int) (*HandshakeSet, error) {
	hs := &HandshakeSet{Responder: NewPrivateKey()}
	pairs := make([]KeyPair, n)
	hs.Initiators = make([]wgkey.Public, n)
	// One scalar multiplication per key: spread over the CPUs, it is a
	// second instead of several for 100,000 keys.
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				k := NewPrivateKey()
				pairs[i] = KeyPair{Private: k, Public: k.Public()}
				hs.Initiators[i] = pairs[i].Public
			}
		}()
	}
	wg.Wait()
	msgs, err := m.Initiations(hs.Responder.Public(), pairs)
	if err != nil {
		return nil, err
	}
	if len(msgs) != n {
		return nil, fmt.Errorf("initiation maker returned %d messages for %d keys", len(msgs), n)
	}
	for i, msg := range msgs {
		if len(msg) != initiationSize || msg[0] != msgInitiation {
			return nil, fmt.Errorf("initiation %d malformed (%d bytes)", i, len(msg))
		}
	}
	hs.Messages = msgs
	return hs, nil
}

// Prefix returns the first n initiators and messages (all if n is larger).
func (hs *HandshakeSet) Prefix(n int) *HandshakeSet {
	n = min(n, len(hs.Messages))
	return &HandshakeSet{Responder: hs.Responder, Initiators: hs.Initiators[:n], Messages: hs.Messages[:n]}
}

// Peers returns the responder's peer configuration: every initiator, each
// with its own /32.
func (hs *HandshakeSet) Peers() []PeerConfig {
	peers := make([]PeerConfig, len(hs.Initiators))
	for i, k := range hs.Initiators {
		peers[i] = PeerConfig{PublicKey: k, AllowedIP: peerAllowedIP(i)}
	}
	return peers
}

// Lookup returns a resolver over Peers(): the SIM store of a lazy engine.
func (hs *HandshakeSet) Lookup() func(wgkey.Public) (PeerConfig, bool) {
	peers := hs.Peers()
	index := make(map[wgkey.Public]int32, len(peers))
	for i, p := range peers {
		index[p.PublicKey] = int32(i)
	}
	return func(k wgkey.Public) (PeerConfig, bool) {
		i, ok := index[k]
		if !ok {
			return PeerConfig{}, false
		}
		return peers[i], true
	}
}

// WriteFile stores the set for a child process.
func (hs *HandshakeSet) WriteFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	w.WriteString(handshakeMaterial)
	w.Write(hs.Responder[:])
	binary.Write(w, binary.LittleEndian, uint32(len(hs.Messages)))
	for i, m := range hs.Messages {
		w.Write(hs.Initiators[i][:])
		w.Write(m)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ReadHandshakeFile loads a set written by WriteFile.
func ReadHandshakeFile(path string) (*HandshakeSet, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	magic := make([]byte, len(handshakeMaterial))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != handshakeMaterial {
		return nil, fmt.Errorf("%s: not a handshake set", path)
	}
	hs := &HandshakeSet{}
	var n uint32
	if _, err := io.ReadFull(r, hs.Responder[:]); err != nil {
		return nil, err
	}
	if err := binary.Read(r, binary.LittleEndian, &n); err != nil {
		return nil, err
	}
	hs.Initiators = make([]wgkey.Public, n)
	hs.Messages = make([][]byte, n)
	all := make([]byte, int(n)*initiationSize) // one allocation: the set is ballast in memory tests
	for i := range hs.Messages {
		if _, err := io.ReadFull(r, hs.Initiators[i][:]); err != nil {
			return nil, err
		}
		hs.Messages[i] = all[i*initiationSize : (i+1)*initiationSize : (i+1)*initiationSize]
		if _, err := io.ReadFull(r, hs.Messages[i]); err != nil {
			return nil, err
		}
	}
	return hs, nil
}

// HandshakeResult is one run of the blaster against a responder.
type HandshakeResult struct {
	Sent          int       `json:"sent"`
	Responses     int       `json:"responses"`
	CookieReplies int       `json:"cookie_replies"`
	PerSec        float64   `json:"per_sec"` // responses per second, first send to last response
	DurationSec   float64   `json:"duration_sec"`
	RoundsPerSec  []float64 `json:"rounds_per_sec,omitempty"` // every round, when this is the median of several
}

// DefaultWindow is how many initiations the blaster keeps outstanding. It keeps
// every responder core busy while staying under wireguard-go's under-load
// threshold (a handshake queue of 128), so the figure is the responder's
// capacity for valid handshakes, not its cookie path.
const DefaultWindow = 64

// Blast sends msgs to addr from one 127.0.0.1 socket, keeping window
// initiations outstanding: each response or cookie reply releases the next
// message. If nothing comes back for 200ms, it assumes the outstanding ones
// lost and sends another window. It stops when every message is answered,
// after 1s of silence once all are sent, or at maxDuration.
func Blast(addr netip.AddrPort, msgs [][]byte, window int, maxDuration time.Duration) (HandshakeResult, error) {
	if window <= 0 {
		window = DefaultWindow
	}
	c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return HandshakeResult{}, err
	}
	defer c.Close()
	_ = c.SetReadBuffer(4 << 20)

	// One goroutine sends and receives: a reply releases the next message,
	// so no locking is needed.
	var (
		next     int
		sendErr  error
		res      HandshakeResult
		lastResp time.Time
	)
	send := func(k int) {
		for ; k > 0 && next < len(msgs); k-- {
			if _, err := c.Write(msgs[next]); err != nil && sendErr == nil {
				sendErr = err
			}
			next++
			res.Sent++
		}
	}
	start := time.Now()
	send(window)

	end := start.Add(maxDuration)
	buf := make([]byte, 2048)
	for res.Responses+res.CookieReplies < len(msgs) {
		now := time.Now()
		if now.After(end) {
			break
		}
		allSent := next >= len(msgs)
		silence := 200 * time.Millisecond
		if allSent {
			silence = time.Second
		}
		_ = c.SetReadDeadline(now.Add(silence))
		n, err := c.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if allSent {
					break
				}
				send(window)
				continue
			}
			return res, err
		}
		switch {
		case n == responseSize && buf[0] == msgResponse:
			res.Responses++
			lastResp = time.Now()
			send(1)
		case n == cookieReplySize && buf[0] == msgCookieReply:
			res.CookieReplies++
			send(1)
		}
	}
	if !lastResp.IsZero() {
		res.DurationSec = lastResp.Sub(start).Seconds()
		res.PerSec = float64(res.Responses) / res.DurationSec
	}
	return res, sendErr
}

// Handshakes starts a responder of s that knows every initiator of hs and
// blasts hs's initiations at it.
func Handshakes(s Subject, hs *HandshakeSet, maxDuration time.Duration) (res HandshakeResult, err error) {
	r, err := s.NewResponder(ResponderConfig{PrivateKey: hs.Responder, Peers: hs.Peers(), Lookup: hs.Lookup(), Tun: newIdleTun()})
	if err != nil {
		return HandshakeResult{}, fmt.Errorf("%s: responder: %w", s.Name(), err)
	}
	defer func() {
		if cerr := closeWithin(s.Name()+" responder", r, CloseTimeout); cerr != nil && err == nil {
			err = cerr
		}
	}()
	return Blast(r.Addr(), hs.Messages, DefaultWindow, maxDuration)
}
