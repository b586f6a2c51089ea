// SPDX-License-Identifier: Apache-2.0

// Package keystore defines where a WireGuard static private key lives and the
// only two things the engine may ask of it: the public key, and a
// Diffie-Hellman with a named purpose. A secure element, an HSM or a key-agent
// process can so implement Store without ever releasing the key.
//
// Memory and file stores live here; hardware stores implement the same
// interface elsewhere.
package keystore

import (
	"context"
	"crypto/ecdh"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/wirefleet/wirefleet/wgkey"
)

// Purpose names why the engine needs a DH with the static key, so a store
// can refuse or rate-limit some kinds (an initiator-only device refuses
// ResponderES: nobody can then use its key as an oracle).
type Purpose uint8

const (
	// StaticStatic is DH(our static, peer static), the second DH of an
	// initiation. Engines compute it once per peer and cache it.
	StaticStatic Purpose = iota + 1
	// ResponderES is DH(our static, initiator's ephemeral): a responder
	// processing an initiation. Anyone on the network can trigger it.
	ResponderES
	// InitiatorSE is DH(our static, responder's ephemeral): an initiator
	// processing a response to an initiation it sent.
	InitiatorSE
	// KeyProof is DH(our static, a platform challenge's ephemeral): the
	// device proving it holds the key (package keyproof). Only a MAC of
	// the result leaves the device.
	KeyProof
)

// String names the purpose as the documentation does.
func (p Purpose) String() string {
	switch p {
	case StaticStatic:
		return "static-static"
	case ResponderES:
		return "responder-es"
	case InitiatorSE:
		return "initiator-se"
	case KeyProof:
		return "key-proof"
	}
	return fmt.Sprintf("purpose(%d)", uint8(p))
}

// DHRequest is one DH the engine asks of a store.
type DHRequest struct {
	Purpose Purpose
	// Peer is the other party's public key used in this DH: the peer's static
	// key for StaticStatic, an ephemeral key otherwise.
	Peer wgkey.Public
	// PeerStatic is the peer's static key when it is known (it is not yet known
	// for ResponderES), for stores that apply policy per peer.
	PeerStatic wgkey.Public
	// Remote is the outer address the triggering packet came from, when known.
	Remote netip.AddrPort
}

// Store holds a static private key and never gives it out.
type Store interface {
	// PublicKey returns the public half of the static key.
	PublicKey() wgkey.Public
	// DH returns X25519(static private key, req.Peer). It must fail with
	// ErrLowOrder when the result is all zero.
	DH(ctx context.Context, req DHRequest) ([32]byte, error)
}

var (
	// ErrLowOrder is returned when a DH yields the all-zero value, which a
	// low-order peer point forces; WireGuard rejects such handshakes.
	ErrLowOrder = errors.New("keystore: DH result is all zero (low-order point)")
	// ErrRefused is returned by stores that decline a purpose.
	ErrRefused = errors.New("keystore: DH refused for this purpose")
)

// X25519 computes the DH of a parsed private key and maps the all-zero
// result to ErrLowOrder. It is for stores (and ephemeral keys) held in
// memory. A parsed *ecdh.PrivateKey costs one scalar multiplication per DH;
// building one from raw bytes costs another, which is why callers keep it.
func X25519(priv *ecdh.PrivateKey, peer *wgkey.Public) ([32]byte, error) {
	var out [32]byte
	pub, err := ecdh.X25519().NewPublicKey(peer[:])
	if err != nil {
		return out, ErrLowOrder
	}
	r, err := priv.ECDH(pub)
	if err != nil {
		return out, ErrLowOrder
	}
	copy(out[:], r)
	return out, nil
}

// Memory is a Store keeping the private key in process memory.
type Memory struct {
	key *ecdh.PrivateKey
	pub wgkey.Public
}

// NewMemory returns a Store over priv.
func NewMemory(priv wgkey.Private) *Memory {
	k, err := ecdh.X25519().NewPrivateKey(priv[:])
	if err != nil {
		panic("keystore: a 32-byte X25519 key was refused: " + err.Error()) // cannot happen: any 32 bytes are a key
	}
	return &Memory{key: k, pub: wgkey.Public(k.PublicKey().Bytes())}
}

// GenerateMemory returns a Store over a fresh random key.
func GenerateMemory() (*Memory, error) {
	k, err := wgkey.NewPrivate()
	if err != nil {
		return nil, err
	}
	return NewMemory(k), nil
}

// PublicKey implements Store.
func (m *Memory) PublicKey() wgkey.Public { return m.pub }

// DH implements Store.
func (m *Memory) DH(_ context.Context, req DHRequest) ([32]byte, error) {
	return X25519(m.key, &req.Peer)
}

// LoadFile reads a base64 private key (the `wg genkey` format) from path.
// It refuses a file that group or others may read: a key that leaked through
// permissions is a key to rotate, not to use.
func LoadFile(path string) (*Memory, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("keystore: %s has mode %v; want 0600 or stricter", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	k, err := wgkey.ParsePrivate(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("keystore: %s: %w", path, err)
	}
	return NewMemory(k), nil
}

// CreateFile generates a key and writes it to path with mode 0600. It fails
// if path exists, so a key is never overwritten by accident.
func CreateFile(path string) (*Memory, error) {
	k, err := wgkey.NewPrivate()
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	if _, err := f.WriteString(k.Base64() + "\n"); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("keystore: writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	return NewMemory(k), nil
}

// LoadOrCreateFile loads the key at path, creating it first if it is absent.
func LoadOrCreateFile(path string) (*Memory, error) {
	m, err := LoadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return CreateFile(path)
	}
	return m, err
}

// InitiatorOnly wraps a Store and refuses ResponderES, for devices that
// only ever initiate: floods of initiations then cannot drive the store.
type InitiatorOnly struct{ Store }

// DH implements Store.
func (s InitiatorOnly) DH(ctx context.Context, req DHRequest) ([32]byte, error) {
	if req.Purpose == ResponderES {
		return [32]byte{}, ErrRefused
	}
	return s.Store.DH(ctx, req)
}
