// SPDX-License-Identifier: Apache-2.0

package milenage

import (
	"crypto/subtle"
	"encoding/binary"
	"errors"
)

// ErrMAC is a MAC-A (in AUTN) or MAC-S (in AUTS) that does not match:
// the other side does not hold this subscriber's K and OPc.
var ErrMAC = errors.New("milenage: MAC does not match")

// Vector is what the network makes for one authentication (TS 33.102
// §6.3.2): the challenge (RAND, AUTN) and what a genuine card derives.
type Vector struct {
	RAND, AUTN []byte
	XRES       []byte
	CK, IK     []byte
}

// NewVector builds the authentication vector of rand, sqn and amf:
// AUTN = SQN ⊕ AK ‖ AMF ‖ MAC-A.
func (c *Cipher) NewVector(rand []byte, sqn SQN, amf []byte) Vector {
	s := sqn.Bytes()
	macA, _ := c.F1(rand, s[:], amf)
	res, ck, ik, ak := c.F2345(rand)
	autn := make([]byte, 0, AUTNSize)
	for i := range s {
		autn = append(autn, s[i]^ak[i])
	}
	autn = append(append(autn, amf...), macA...)
	return Vector{RAND: append([]byte(nil), rand...), AUTN: autn, XRES: res, CK: ck, IK: ik}
}

// Answer is what a card derives from a challenge whose MAC-A it checked.
type Answer struct {
	SQN    SQN
	RES    []byte
	CK, IK []byte
}

// Authenticate is the card's side of a challenge: it recovers SQN from
// AUTN and checks MAC-A (ErrMAC when it does not match: the network is not
// genuine). Whether SQN is fresh is the caller's to decide (Window).
func (c *Cipher) Authenticate(rand, autn []byte) (Answer, error) {
	if len(rand) != RANDSize || len(autn) != AUTNSize {
		return Answer{}, errors.New("milenage: RAND is 16 bytes and AUTN 16")
	}
	res, ck, ik, ak := c.F2345(rand)
	var s [SQNSize]byte
	subtle.XORBytes(s[:], autn[:SQNSize], ak)
	macA, _ := c.F1(rand, s[:], autn[SQNSize:SQNSize+AMFSize])
	if subtle.ConstantTimeCompare(macA, autn[SQNSize+AMFSize:]) != 1 {
		return Answer{}, ErrMAC
	}
	return Answer{SQN: ParseSQN(s[:]), RES: res, CK: ck, IK: ik}, nil
}

// resyncAMF is the AMF of MAC-S in AUTS: all zeros (TS 33.102 §6.3.3).
var resyncAMF = []byte{0, 0}

// AUTS is the card's answer to a challenge with a SQN out of its range:
// SQN_MS ⊕ AK* ‖ MAC-S, from which the network learns where the card is.
func (c *Cipher) AUTS(rand []byte, sqnMS SQN) []byte {
	s := sqnMS.Bytes()
	_, macS := c.F1(rand, s[:], resyncAMF)
	ak := c.F5Star(rand)
	out := make([]byte, 0, AUTSSize)
	for i := range s {
		out = append(out, s[i]^ak[i])
	}
	return append(out, macS...)
}

// Resync is the network's side of AUTS: it recovers the card's SQN_MS and
// checks MAC-S (ErrMAC: not this subscriber's card).
func (c *Cipher) Resync(rand, auts []byte) (SQN, error) {
	if len(rand) != RANDSize || len(auts) != AUTSSize {
		return 0, errors.New("milenage: RAND is 16 bytes and AUTS 14")
	}
	var s [SQNSize]byte
	subtle.XORBytes(s[:], auts[:SQNSize], c.F5Star(rand))
	_, macS := c.F1(rand, s[:], resyncAMF)
	if subtle.ConstantTimeCompare(macS, auts[SQNSize:]) != 1 {
		return 0, ErrMAC
	}
	return ParseSQN(s[:]), nil
}

// SQN is a 48-bit sequence number made, as TS 33.102 Annex C.1.1
// recommends, of SEQ (the high 43 bits) and IND (the low IndBits).
type SQN uint64

// IndBits is the length of IND; the card keeps one SEQ per IND value.
const IndBits = 5

const sqnMask = 1<<48 - 1

// MakeSQN joins seq and ind.
func MakeSQN(seq uint64, ind uint8) SQN {
	return SQN((seq<<IndBits | uint64(ind)&(1<<IndBits-1)) & sqnMask)
}

// ParseSQN reads a 6-byte SQN.
func ParseSQN(b []byte) SQN {
	var x [8]byte
	copy(x[2:], b)
	return SQN(binary.BigEndian.Uint64(x[:]))
}

// Seq and Ind are the parts of s.
func (s SQN) Seq() uint64 { return uint64(s) >> IndBits }

// Ind is s's IND.
func (s SQN) Ind() uint8 { return uint8(s & (1<<IndBits - 1)) }

// Bytes is s as its 6 bytes.
func (s SQN) Bytes() [SQNSize]byte {
	var x [8]byte
	binary.BigEndian.PutUint64(x[:], uint64(s)&sqnMask)
	var b [SQNSize]byte
	copy(b[:], x[2:])
	return b
}

// Next is the network's next SQN after last (Annex C.1.1 and C.3.2): SEQ
// one higher, IND the next slot, so a card's array of SEQs is used in turn.
func (s SQN) Next() SQN {
	return MakeSQN(s.Seq()+1, (s.Ind()+1)%(1<<IndBits))
}

// Delta is the largest step ahead a card accepts (Annex C.2.1's Δ): a SQN
// far beyond the card's is refused, so a captured challenge from the
// future cannot be used to exhaust its range.
const Delta = 1 << 28

// Window is a card's SQN state (Annex C.2.1): the highest SEQ accepted
// per IND. A challenge is fresh when its SEQ is higher than that of its
// IND and at most Delta above the highest the card has seen. The zero
// Window has seen none.
type Window struct {
	Seqs [1 << IndBits]uint64
}

// Highest is SQN_MS: the highest SEQ accepted, with its IND.
func (w *Window) Highest() SQN {
	var best uint64
	var ind uint8
	for i, s := range w.Seqs {
		if s > best {
			best, ind = s, uint8(i)
		}
	}
	return MakeSQN(best, ind)
}

// Accept reports whether sqn is fresh and, when it is, records it (a
// challenge is never accepted twice).
func (w *Window) Accept(sqn SQN) bool {
	seq, ind := sqn.Seq(), sqn.Ind()
	if seq <= w.Seqs[ind] || seq > w.Highest().Seq()+Delta {
		return false
	}
	w.Seqs[ind] = seq
	return true
}

// KcSize is the length of the GSM cipher key.
const KcSize = 8

// Kc is conversion function c3 (TS 33.102 §6.8.1.2): the GSM cipher key a
// USIM also returns from a 3G AUTHENTICATE, CK1 ⊕ CK2 ⊕ IK1 ⊕ IK2 of the
// keys' 64-bit halves.
func Kc(ck, ik []byte) []byte {
	kc := make([]byte, KcSize)
	for i := range kc {
		kc[i] = ck[i] ^ ck[i+KcSize] ^ ik[i] ^ ik[i+KcSize]
	}
	return kc
}
