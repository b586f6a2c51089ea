// SPDX-License-Identifier: Apache-2.0

package agentstore

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/wirefleet/wirefleet/keystore"
)

// Backend holds the agent's keys by slot name. pkcs11store.Token is one
// through BackendOf; MemoryBackend is another, for tests and examples.
// Open and Delete of an empty slot fail with an error matching
// fs.ErrNotExist; Generate on a used slot with one matching fs.ErrExist.
type Backend interface {
	Open(slot string) (keystore.Store, error)
	Generate(slot string) (keystore.Store, error)
	Delete(slot string) error
}

// Slots is the shape of a key container whose methods return a concrete
// store type, such as *pkcs11store.Token.
type Slots[K keystore.Store] interface {
	Open(slot string) (K, error)
	Generate(slot string) (K, error)
	Delete(slot string) error
}

// BackendOf adapts a Slots to Backend.
func BackendOf[K keystore.Store](s Slots[K]) Backend { return slotsBackend[K]{s} }

type slotsBackend[K keystore.Store] struct{ s Slots[K] }

func (b slotsBackend[K]) Open(slot string) (keystore.Store, error) {
	k, err := b.s.Open(slot)
	if err != nil {
		return nil, err
	}
	return k, nil
}

func (b slotsBackend[K]) Generate(slot string) (keystore.Store, error) {
	k, err := b.s.Generate(slot)
	if err != nil {
		return nil, err
	}
	return k, nil
}

func (b slotsBackend[K]) Delete(slot string) error { return b.s.Delete(slot) }

// Policy says who may use the agent and for what.
type Policy struct {
	// AllowedUIDs may connect. Empty means only the agent's own UID. The
	// check uses the kernel's record of the connecting process (SO_PEERCRED),
	// not anything the client says.
	AllowedUIDs []uint32
	// InitiatorOnly refuses responder-es DHs: the device only initiates, so
	// strangers' initiations can never drive its key.
	InitiatorOnly bool
	// Timeout bounds each backend call (default 10 s).
	Timeout time.Duration
	// Logger receives denials and backend failures (never keys or DH
	// results); default slog.Default().
	Logger *slog.Logger
}

// allows is the UID check, apart from the socket so its denied case is
// tested directly as well as through a real connection.
func (p *Policy) allows(uid uint32) bool {
	if len(p.AllowedUIDs) == 0 {
		return uid == uint32(os.Getuid())
	}
	return slices.Contains(p.AllowedUIDs, uid)
}

// Server answers the protocol on listeners. Each connection has its own
// goroutine, so a slow DH delays only the connection that asked for it.
type Server struct {
	backend Backend
	policy  Policy
	log     *slog.Logger

	// manage serialises generate and delete, apart from mu so a slow
	// token generating a key does not hold up DHs with other slots.
	manage sync.Mutex
	mu     sync.Mutex
	keys   map[string]keystore.Store // opened slots
	lns    map[net.Listener]bool
	conns  map[net.Conn]bool
	closed bool
	wg     sync.WaitGroup
}

// NewServer returns a server over backend with policy.
func NewServer(backend Backend, policy Policy) *Server {
	if policy.Timeout <= 0 {
		policy.Timeout = 10 * time.Second
	}
	log := policy.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Server{backend: backend, policy: policy, log: log, keys: map[string]keystore.Store{}, lns: map[net.Listener]bool{}, conns: map[net.Conn]bool{}}
}

// Serve is NewServer(backend, policy).Serve(ln).
func Serve(ln net.Listener, backend Backend, policy Policy) error {
	return NewServer(backend, policy).Serve(ln)
}

// Listen makes the agent's Unix socket at path, readable and writable by
// its owner only (mode 0600); Policy.AllowedUIDs still decides, so a
// caller who widens the mode for another UID does not widen who is served.
func Listen(path string) (*net.UnixListener, error) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("agentstore: %w", err)
	}
	// The socket appears with the umask's mode; it is narrowed at once, and
	// the UID check on every connection does not depend on it.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("agentstore: %w", err)
	}
	return ln, nil
}

// Serve accepts connections on ln until ln or the server is closed. It
// returns nil after Close.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.lns[ln] = true
	s.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			delete(s.lns, ln)
			s.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("agentstore: accept: %w", err)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return nil
		}
		s.conns[c] = true
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

// Close stops the listeners and the connections and waits for them.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for ln := range s.lns {
		ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) serveConn(c net.Conn) {
	cred, err := peerCred(c)
	if err != nil {
		s.log.Warn("key agent: cannot read peer credentials; refusing", "err", err)
		c.Write(errorLine(CodeDenied, "peer credentials unavailable"))
		return
	}
	if !s.policy.allows(cred.UID) {
		s.log.Warn("key agent: connection denied", "uid", cred.UID, "pid", cred.PID)
		c.Write(errorLine(CodeDenied, fmt.Sprintf("uid %d is not allowed", cred.UID)))
		return
	}
	r := bufio.NewReaderSize(c, MaxLine)
	var out []byte
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// Past MaxLine there is no telling where the next request starts.
			c.Write(errorLine(CodeBadRequest, fmt.Sprintf("line longer than %d bytes; closing", MaxLine-1)))
			return
		}
		if err != nil {
			if err != io.EOF && !errors.Is(err, net.ErrClosed) {
				s.log.Debug("key agent: read", "err", err)
			}
			return
		}
		out = s.handle(out[:0], line[:len(line)-1], cred.UID)
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// handle answers one request line (without newline), appending the
// response line to out.
func (s *Server) handle(out, line []byte, uid uint32) []byte {
	req, err := ParseRequest(line)
	if err != nil {
		return append(out, errorLine(CodeBadRequest, err.Error())...)
	}
	switch req.Op {
	case OpVersion:
		return append(out, "ok "+Version+"\n"...)
	case OpPublicKey:
		k, err := s.key(req.Slot)
		if err != nil {
			return append(out, s.backendError(req, err)...)
		}
		return okKey(out, k.PublicKey())
	case OpDH:
		if s.policy.InitiatorOnly && req.Purpose == keystore.ResponderES {
			return append(out, errorLine(CodeRefused, "the agent is initiator-only")...)
		}
		k, err := s.key(req.Slot)
		if err != nil {
			return append(out, s.backendError(req, err)...)
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.policy.Timeout)
		res, err := k.DH(ctx, keystore.DHRequest{Purpose: req.Purpose, Peer: req.Peer})
		cancel()
		if err != nil {
			return append(out, s.backendError(req, err)...)
		}
		out = okKey(out, res)
		clear(res[:])
		return out
	case OpGenerate:
		s.manage.Lock()
		defer s.manage.Unlock()
		k, err := s.backend.Generate(req.Slot)
		if err != nil {
			return append(out, s.backendError(req, err)...)
		}
		s.mu.Lock()
		s.keys[req.Slot] = k
		s.mu.Unlock()
		s.log.Info("key agent: generated a key", "slot", req.Slot, "public_key", k.PublicKey().String(), "uid", uid)
		return okKey(out, k.PublicKey())
	case OpDelete:
		s.manage.Lock()
		defer s.manage.Unlock()
		s.mu.Lock()
		delete(s.keys, req.Slot)
		s.mu.Unlock()
		if err := s.backend.Delete(req.Slot); err != nil {
			return append(out, s.backendError(req, err)...)
		}
		s.log.Info("key agent: deleted a key", "slot", req.Slot, "uid", uid)
		return append(out, "ok\n"...)
	}
	return append(out, errorLine(CodeBadRequest, "unhandled request")...) // ParseRequest knows no other op
}

func okKey(out []byte, k [32]byte) []byte {
	out = append(out, "ok "...)
	out = base64.StdEncoding.AppendEncode(out, k[:])
	return append(out, '\n')
}

// key returns the store of slot, opening it on first use. A first use
// takes the manage lock so it cannot interleave with a delete of the slot
// and cache a key that no longer exists; DHs with open slots take only mu.
func (s *Server) key(slot string) (keystore.Store, error) {
	s.mu.Lock()
	k := s.keys[slot]
	s.mu.Unlock()
	if k != nil {
		return k, nil
	}
	s.manage.Lock()
	defer s.manage.Unlock()
	s.mu.Lock()
	k = s.keys[slot]
	s.mu.Unlock()
	if k != nil {
		return k, nil
	}
	k, err := s.backend.Open(slot)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.keys[slot] = k
	s.mu.Unlock()
	return k, nil
}

// backendError maps a backend error to a response. Unexpected errors are
// logged here and answered without detail: the client needs the kind, the
// operator the cause.
func (s *Server) backendError(req Request, err error) []byte {
	switch {
	case errors.Is(err, keystore.ErrLowOrder):
		return errorLine(CodeLowOrder, "DH result is all zero")
	case errors.Is(err, keystore.ErrRefused):
		return errorLine(CodeRefused, "the key store refused this purpose")
	case errors.Is(err, fs.ErrNotExist):
		return errorLine(CodeNotFound, "no key in slot "+req.Slot)
	case errors.Is(err, fs.ErrExist):
		return errorLine(CodeExists, "slot "+req.Slot+" already holds a key")
	}
	s.log.Error("key agent: backend failed", "op", string(req.Op), "slot", req.Slot, "err", err)
	return errorLine(CodeUnavailable, "the key store failed; see the agent's log")
}

// MemoryBackend keeps keys in process memory: for tests, and for an agent
// whose only job is to keep the key out of the tunnel process.
type MemoryBackend struct {
	mu   sync.Mutex
	keys map[string]*keystore.Memory
}

// Open implements Backend.
func (m *MemoryBackend) Open(slot string) (keystore.Store, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if k := m.keys[slot]; k != nil {
		return k, nil
	}
	return nil, fmt.Errorf("agentstore: slot %q: %w", slot, fs.ErrNotExist)
}

// Generate implements Backend.
func (m *MemoryBackend) Generate(slot string) (keystore.Store, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.keys[slot] != nil {
		return nil, fmt.Errorf("agentstore: slot %q: %w", slot, fs.ErrExist)
	}
	k, err := keystore.GenerateMemory()
	if err != nil {
		return nil, err
	}
	if m.keys == nil {
		m.keys = map[string]*keystore.Memory{}
	}
	m.keys[slot] = k
	return k, nil
}

// Delete implements Backend.
func (m *MemoryBackend) Delete(slot string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.keys[slot] == nil {
		return fmt.Errorf("agentstore: slot %q: %w", slot, fs.ErrNotExist)
	}
	delete(m.keys, slot)
	return nil
}
