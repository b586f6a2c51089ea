// SPDX-License-Identifier: Apache-2.0

// Package wire holds WireGuard's four message formats: their sizes, and
// parsing and encoding between bytes and structs. It does no cryptography;
// every parser checks lengths and the reserved bytes and returns an error for
// anything else, so garbage never reaches the protocol code.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Message types, as the first little-endian 32-bit word of every message
// (type byte plus three zero reserved bytes).
const (
	TypeInitiation  uint32 = 1
	TypeResponse    uint32 = 2
	TypeCookieReply uint32 = 3
	TypeTransport   uint32 = 4
)

// Sizes of the messages and their parts.
const (
	InitiationSize      = 148
	ResponseSize        = 92
	CookieReplySize     = 64
	TransportHeaderSize = 16
	TagSize             = 16                            // Poly1305 tag
	TransportMinSize    = TransportHeaderSize + TagSize // a keepalive
	MACSize             = 16
	CookieNonceSize     = 24
	// MaxTransportSize is the largest transport message the engine accepts
	// (the largest UDP payload).
	MaxTransportSize = 65535
	// PaddingMultiple is what inner packets are padded to before encryption.
	PaddingMultiple = 16
)

// ErrMalformed wraps every parse failure.
var ErrMalformed = errors.New("wire: malformed message")

// Type returns the message type of b after checking that its length fits
// that type. Unknown types and bad lengths are ErrMalformed.
func Type(b []byte) (uint32, error) {
	if len(b) < 4 {
		return 0, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	t := binary.LittleEndian.Uint32(b)
	ok := false
	switch t {
	case TypeInitiation:
		ok = len(b) == InitiationSize
	case TypeResponse:
		ok = len(b) == ResponseSize
	case TypeCookieReply:
		ok = len(b) == CookieReplySize
	case TypeTransport:
		ok = len(b) >= TransportMinSize && len(b) <= MaxTransportSize
	default:
		return 0, fmt.Errorf("%w: unknown type word %#x", ErrMalformed, t)
	}
	if !ok {
		return 0, fmt.Errorf("%w: type %d with %d bytes", ErrMalformed, t, len(b))
	}
	return t, nil
}

// Initiation is handshake message 1.
type Initiation struct {
	Sender    uint32
	Ephemeral [32]byte
	Static    [32 + TagSize]byte
	Timestamp [12 + TagSize]byte
	MAC1      [MACSize]byte
	MAC2      [MACSize]byte
}

// Offsets of the MACs inside an encoded initiation: MAC1 covers the bytes
// before it, MAC2 the bytes before it.
const (
	InitiationMAC1Offset = 116
	InitiationMAC2Offset = 132
	ResponseMAC1Offset   = 60
	ResponseMAC2Offset   = 76
)

// Marshal encodes m into b, which must have InitiationSize bytes.
func (m *Initiation) Marshal(b []byte) {
	_ = b[InitiationSize-1]
	binary.LittleEndian.PutUint32(b[0:], TypeInitiation)
	binary.LittleEndian.PutUint32(b[4:], m.Sender)
	copy(b[8:40], m.Ephemeral[:])
	copy(b[40:88], m.Static[:])
	copy(b[88:116], m.Timestamp[:])
	copy(b[116:132], m.MAC1[:])
	copy(b[132:148], m.MAC2[:])
}

// ParseInitiation decodes b.
func ParseInitiation(b []byte) (Initiation, error) {
	var m Initiation
	if t, err := Type(b); err != nil || t != TypeInitiation {
		return m, fmt.Errorf("%w: not an initiation", ErrMalformed)
	}
	m.Sender = binary.LittleEndian.Uint32(b[4:])
	copy(m.Ephemeral[:], b[8:40])
	copy(m.Static[:], b[40:88])
	copy(m.Timestamp[:], b[88:116])
	copy(m.MAC1[:], b[116:132])
	copy(m.MAC2[:], b[132:148])
	return m, nil
}

// Response is handshake message 2.
type Response struct {
	Sender    uint32
	Receiver  uint32
	Ephemeral [32]byte
	Empty     [TagSize]byte
	MAC1      [MACSize]byte
	MAC2      [MACSize]byte
}

// Marshal encodes m into b, which must have ResponseSize bytes.
func (m *Response) Marshal(b []byte) {
	_ = b[ResponseSize-1]
	binary.LittleEndian.PutUint32(b[0:], TypeResponse)
	binary.LittleEndian.PutUint32(b[4:], m.Sender)
	binary.LittleEndian.PutUint32(b[8:], m.Receiver)
	copy(b[12:44], m.Ephemeral[:])
	copy(b[44:60], m.Empty[:])
	copy(b[60:76], m.MAC1[:])
	copy(b[76:92], m.MAC2[:])
}

// ParseResponse decodes b.
func ParseResponse(b []byte) (Response, error) {
	var m Response
	if t, err := Type(b); err != nil || t != TypeResponse {
		return m, fmt.Errorf("%w: not a response", ErrMalformed)
	}
	m.Sender = binary.LittleEndian.Uint32(b[4:])
	m.Receiver = binary.LittleEndian.Uint32(b[8:])
	copy(m.Ephemeral[:], b[12:44])
	copy(m.Empty[:], b[44:60])
	copy(m.MAC1[:], b[60:76])
	copy(m.MAC2[:], b[76:92])
	return m, nil
}

// CookieReply is the message a loaded responder sends instead of a response.
type CookieReply struct {
	Receiver uint32
	Nonce    [CookieNonceSize]byte
	Cookie   [MACSize + TagSize]byte
}

// Marshal encodes m into b, which must have CookieReplySize bytes.
func (m *CookieReply) Marshal(b []byte) {
	_ = b[CookieReplySize-1]
	binary.LittleEndian.PutUint32(b[0:], TypeCookieReply)
	binary.LittleEndian.PutUint32(b[4:], m.Receiver)
	copy(b[8:32], m.Nonce[:])
	copy(b[32:64], m.Cookie[:])
}

// ParseCookieReply decodes b.
func ParseCookieReply(b []byte) (CookieReply, error) {
	var m CookieReply
	if t, err := Type(b); err != nil || t != TypeCookieReply {
		return m, fmt.Errorf("%w: not a cookie reply", ErrMalformed)
	}
	m.Receiver = binary.LittleEndian.Uint32(b[4:])
	copy(m.Nonce[:], b[8:32])
	copy(m.Cookie[:], b[32:64])
	return m, nil
}

// TransportHeader is the clear part of a transport message.
type TransportHeader struct {
	Receiver uint32
	Counter  uint64
}

// ParseTransportHeader decodes the header of a transport message; the rest
// of b is the ciphertext with its tag.
func ParseTransportHeader(b []byte) (TransportHeader, error) {
	if t, err := Type(b); err != nil || t != TypeTransport {
		return TransportHeader{}, fmt.Errorf("%w: not a transport message", ErrMalformed)
	}
	return TransportHeader{
		Receiver: binary.LittleEndian.Uint32(b[4:]),
		Counter:  binary.LittleEndian.Uint64(b[8:]),
	}, nil
}

// PutTransportHeader writes a transport header into b[:TransportHeaderSize].
func PutTransportHeader(b []byte, receiver uint32, counter uint64) {
	_ = b[TransportHeaderSize-1]
	binary.LittleEndian.PutUint32(b[0:], TypeTransport)
	binary.LittleEndian.PutUint32(b[4:], receiver)
	binary.LittleEndian.PutUint64(b[8:], counter)
}

// ReceiverIndex returns the receiver index of a response, cookie reply or
// transport message that Type has accepted.
func ReceiverIndex(t uint32, b []byte) uint32 {
	if t == TypeResponse {
		return binary.LittleEndian.Uint32(b[8:])
	}
	return binary.LittleEndian.Uint32(b[4:])
}
