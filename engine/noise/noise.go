// SPDX-License-Identifier: Apache-2.0

// Package noise is WireGuard's handshake, Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s,
// as pure functions over message structs: no I/O, no peers, no timers.
//
// The static private key is reached only through a keystore.Store, one DH
// with a named purpose at a time. The responder side is split in two steps so
// the caller can resolve the initiator's static key (known after the first
// DH) before spending the second.
package noise

import (
	"context"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/rand"
	"errors"
	"hash"

	"github.com/wirefleet/wirefleet/engine/tai64n"
	"github.com/wirefleet/wirefleet/engine/wire"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/chacha20poly1305"
)

const (
	// Construction is the Noise protocol name WireGuard hashes first.
	Construction = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
	// Identifier is WireGuard's prologue.
	Identifier = "WireGuard v1 zx2c4 Jason@zx2c4.com"
)

// Errors of handshake processing. Each names one rejection reason so the
// engine can report it.
var (
	ErrDecrypt  = errors.New("noise: handshake field does not authenticate")
	ErrLowOrder = errors.New("noise: DH result is all zero")
)

var (
	initialChainKey [32]byte
	initialHash     [32]byte
	zeroNonce       [chacha20poly1305.NonceSize]byte
)

func init() {
	initialChainKey = blake2s.Sum256([]byte(Construction))
	initialHash = hashOf(initialChainKey[:], []byte(Identifier))
}

func hashOf(parts ...[]byte) [32]byte {
	h, _ := blake2s.New256(nil)
	for _, p := range parts {
		h.Write(p)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func mixHash(h *[32]byte, data []byte) { *h = hashOf(h[:], data) }

func newBlake2s() hash.Hash { h, _ := blake2s.New256(nil); return h }

func hmacSum(key []byte, parts ...[]byte) [32]byte {
	m := hmac.New(newBlake2s, key)
	for _, p := range parts {
		m.Write(p)
	}
	var out [32]byte
	m.Sum(out[:0])
	return out
}

// kdf is WireGuard's HKDF over HMAC-BLAKE2s, returning n (1..3) outputs.
func kdf(n int, key *[32]byte, input []byte) (t1, t2, t3 [32]byte) {
	t0 := hmacSum(key[:], input)
	t1 = hmacSum(t0[:], []byte{1})
	if n > 1 {
		t2 = hmacSum(t0[:], t1[:], []byte{2})
	}
	if n > 2 {
		t3 = hmacSum(t0[:], t2[:], []byte{3})
	}
	return
}

func mixKey(ck *[32]byte, input []byte) { *ck, _, _ = kdf(1, ck, input) }

func seal(dst []byte, key *[32]byte, plain, ad []byte) {
	aead, _ := chacha20poly1305.New(key[:])
	aead.Seal(dst[:0], zeroNonce[:], plain, ad)
}

func open(dst []byte, key *[32]byte, ct, ad []byte) error {
	aead, _ := chacha20poly1305.New(key[:])
	if _, err := aead.Open(dst[:0], zeroNonce[:], ct, ad); err != nil {
		return ErrDecrypt
	}
	return nil
}

func x25519(priv *ecdh.PrivateKey, pub *[32]byte) ([32]byte, error) {
	r, err := keystore.X25519(priv, (*wgkey.Public)(pub))
	if err != nil {
		return r, ErrLowOrder
	}
	return r, nil
}

// newEphemeral returns a fresh ephemeral key pair. The ecdh form keeps the
// parsed scalar, so each DH with it costs one scalar multiplication.
func newEphemeral() (*ecdh.PrivateKey, [32]byte, error) {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, [32]byte{}, err
	}
	return k, [32]byte(k.PublicKey().Bytes()), nil
}

// Keys are the two transport keys a completed handshake yields.
type Keys struct {
	Send, Recv [32]byte
}

// Initiator is the state an initiator keeps between sending an initiation
// and receiving the response.
type Initiator struct {
	hash      [32]byte
	chainKey  [32]byte
	ephemeral *ecdh.PrivateKey
	peer      wgkey.Public
	psk       wgkey.Preshared
}

// InitiationParams are the inputs of CreateInitiation.
type InitiationParams struct {
	Local wgkey.Public // our static public key
	Peer  wgkey.Public // the responder's static public key
	// StaticStatic is DH(our static, Peer), computed once per peer through
	// the key store (purpose keystore.StaticStatic) and cached.
	StaticStatic *[32]byte
	PSK          wgkey.Preshared
	SenderIndex  uint32
	Timestamp    tai64n.Timestamp
}

// CreateInitiation builds handshake message 1, MACs left for the caller.
func CreateInitiation(p InitiationParams) (*Initiator, wire.Initiation, error) {
	var msg wire.Initiation
	st := &Initiator{peer: p.Peer, psk: p.PSK}
	st.hash, st.chainKey = initialHash, initialChainKey
	mixHash(&st.hash, p.Peer[:])

	e, epub, err := newEphemeral()
	if err != nil {
		return nil, msg, err
	}
	st.ephemeral = e
	msg.Sender = p.SenderIndex
	msg.Ephemeral = epub
	mixKey(&st.chainKey, epub[:])
	mixHash(&st.hash, epub[:])

	es, err := x25519(e, (*[32]byte)(&p.Peer))
	if err != nil {
		return nil, msg, err
	}
	var key [32]byte
	st.chainKey, key, _ = kdf(2, &st.chainKey, es[:])
	seal(msg.Static[:], &key, p.Local[:], st.hash[:])
	mixHash(&st.hash, msg.Static[:])

	if isZero(p.StaticStatic[:]) {
		return nil, msg, ErrLowOrder
	}
	st.chainKey, key, _ = kdf(2, &st.chainKey, p.StaticStatic[:])
	seal(msg.Timestamp[:], &key, p.Timestamp[:], st.hash[:])
	mixHash(&st.hash, msg.Timestamp[:])
	return st, msg, nil
}

// ConsumeResponse checks handshake message 2 against the state of the
// initiation it answers and returns the transport keys. The one DH with our
// static key goes through ks with purpose keystore.InitiatorSE.
func (st *Initiator) ConsumeResponse(ctx context.Context, ks keystore.Store, msg *wire.Response) (Keys, error) {
	h, ck := st.hash, st.chainKey
	mixHash(&h, msg.Ephemeral[:])
	mixKey(&ck, msg.Ephemeral[:])
	ee, err := x25519(st.ephemeral, &msg.Ephemeral)
	if err != nil {
		return Keys{}, err
	}
	mixKey(&ck, ee[:])
	se, err := ks.DH(ctx, keystore.DHRequest{Purpose: keystore.InitiatorSE, Peer: msg.Ephemeral, PeerStatic: st.peer})
	if err != nil {
		return Keys{}, err
	}
	mixKey(&ck, se[:])
	var tau, key [32]byte
	ck, tau, key = kdf(3, &ck, st.psk[:])
	mixHash(&h, tau[:])
	if err := open(nil, &key, msg.Empty[:], h[:]); err != nil {
		return Keys{}, err
	}
	send, recv, _ := kdf(2, &ck, nil)
	return Keys{Send: send, Recv: recv}, nil
}

// Wipe drops the ephemeral secret once the state is no longer needed.
func (st *Initiator) Wipe() { st.ephemeral = nil; clear(st.chainKey[:]) }

// Responder is the state of a responder that has opened an initiation's
// static field: it knows who claims to be initiating.
type Responder struct {
	hash, chainKey [32]byte
	// PeerStatic is the initiator's static public key.
	PeerStatic wgkey.Public
	// PeerEphemeral is the initiator's ephemeral key.
	PeerEphemeral [32]byte
	// PeerIndex is the initiator's sender index.
	PeerIndex   uint32
	timestampCT [12 + wire.TagSize]byte
}

// OpenInitiation performs the first half of the responder's work: one DH
// through ks (purpose keystore.ResponderES) and the decryption of the
// initiator's static key. local is our static public key.
func OpenInitiation(ctx context.Context, ks keystore.Store, local wgkey.Public, msg *wire.Initiation, req keystore.DHRequest) (*Responder, error) {
	r := &Responder{PeerEphemeral: msg.Ephemeral, PeerIndex: msg.Sender, timestampCT: msg.Timestamp}
	r.hash, r.chainKey = initialHash, initialChainKey
	mixHash(&r.hash, local[:])
	mixHash(&r.hash, msg.Ephemeral[:])
	mixKey(&r.chainKey, msg.Ephemeral[:])
	req.Purpose = keystore.ResponderES
	req.Peer = msg.Ephemeral
	es, err := ks.DH(ctx, req)
	if err != nil {
		return nil, err
	}
	var key [32]byte
	r.chainKey, key, _ = kdf(2, &r.chainKey, es[:])
	if err := open(r.PeerStatic[:], &key, msg.Static[:], r.hash[:]); err != nil {
		return nil, err
	}
	mixHash(&r.hash, msg.Static[:])
	return r, nil
}

// OpenTimestamp performs the second half: with ss = DH(our static, the
// initiator's static) it authenticates the initiator and returns its
// timestamp, which the caller must check is newer than the last one seen.
func (r *Responder) OpenTimestamp(ss *[32]byte) (tai64n.Timestamp, error) {
	var ts tai64n.Timestamp
	if isZero(ss[:]) {
		return ts, ErrLowOrder
	}
	var key [32]byte
	r.chainKey, key, _ = kdf(2, &r.chainKey, ss[:])
	if err := open(ts[:], &key, r.timestampCT[:], r.hash[:]); err != nil {
		return ts, err
	}
	mixHash(&r.hash, r.timestampCT[:])
	return ts, nil
}

// CreateResponse builds handshake message 2 (MACs left for the caller) and
// returns the transport keys. It needs no DH with our static key.
func (r *Responder) CreateResponse(psk wgkey.Preshared, senderIndex uint32) (wire.Response, Keys, error) {
	msg := wire.Response{Sender: senderIndex, Receiver: r.PeerIndex}
	e, epub, err := newEphemeral()
	if err != nil {
		return msg, Keys{}, err
	}
	msg.Ephemeral = epub
	h, ck := r.hash, r.chainKey
	mixKey(&ck, epub[:])
	mixHash(&h, epub[:])
	ee, err := x25519(e, &r.PeerEphemeral)
	if err != nil {
		return msg, Keys{}, err
	}
	mixKey(&ck, ee[:])
	se, err := x25519(e, (*[32]byte)(&r.PeerStatic))
	if err != nil {
		return msg, Keys{}, err
	}
	mixKey(&ck, se[:])
	var tau, key [32]byte
	ck, tau, key = kdf(3, &ck, psk[:])
	mixHash(&h, tau[:])
	seal(msg.Empty[:], &key, nil, h[:])
	recv, send, _ := kdf(2, &ck, nil)
	clear(r.chainKey[:])
	return msg, Keys{Send: send, Recv: recv}, nil
}

func isZero(b []byte) bool {
	var acc byte
	for _, c := range b {
		acc |= c
	}
	return acc == 0
}
