// SPDX-License-Identifier: Apache-2.0

// Package milenage is the 3GPP MILENAGE algorithm set (TS 35.206) —
// the authentication functions f1, f1*, f2, f3, f4, f5 and f5* over
// AES-128 — with the AKA values built from them (TS 33.102 §6.3): the
// network's AUTN, and the card's AUTS for resynchronisation. The
// conformance test sets of TS 35.208 are the proof (milenage_test.go).
//
// The constants are the standard ones of TS 35.206 §4.1 (r1..r5 = 64, 0,
// 32, 64, 96 bits; c1..c5 = 0, 1, 2, 4, 8 in the last byte), which every
// programmable USIM ships with.
package milenage

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"errors"
)

// Sizes of the values, in bytes.
const (
	KeySize  = 16 // K (Ki)
	OPSize   = 16 // OP and OPc
	RANDSize = 16
	SQNSize  = 6
	AMFSize  = 2
	MACSize  = 8 // MAC-A and MAC-S
	RESSize  = 8
	CKSize   = 16
	IKSize   = 16
	AKSize   = 6
	AUTNSize = SQNSize + AMFSize + MACSize // 16
	AUTSSize = SQNSize + MACSize           // 14
)

// Cipher is MILENAGE for one subscriber: its K and OPc.
type Cipher struct {
	k   cipher.Block
	opc [16]byte
}

// New returns the functions of the subscriber with key k and OPc opc.
func New(k, opc []byte) (*Cipher, error) {
	if len(k) != KeySize || len(opc) != OPSize {
		return nil, errors.New("milenage: K and OPc are 16 bytes each")
	}
	b, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	c := &Cipher{k: b}
	copy(c.opc[:], opc)
	return c, nil
}

// OPc derives OPc from the operator's OP: E_K(OP) ⊕ OP.
func OPc(k, op []byte) ([]byte, error) {
	if len(k) != KeySize || len(op) != OPSize {
		return nil, errors.New("milenage: K and OP are 16 bytes each")
	}
	b, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 16)
	b.Encrypt(out, op)
	subtle.XORBytes(out, out, op)
	return out, nil
}

// temp is E_K(RAND ⊕ OPc).
func (c *Cipher) temp(rand []byte) [16]byte {
	var t [16]byte
	subtle.XORBytes(t[:], rand, c.opc[:])
	c.k.Encrypt(t[:], t[:])
	return t
}

// rotl rotates x left (toward its first byte) by r bytes: every standard
// rotation is whole bytes.
func rotl(x [16]byte, r int) [16]byte {
	var z [16]byte
	for i := range z {
		z[i] = x[(i+r)%16]
	}
	return z
}

// final is E_K(in) ⊕ OPc, the last step of every OUTi.
func (c *Cipher) final(in [16]byte) [16]byte {
	c.k.Encrypt(in[:], in[:])
	subtle.XORBytes(in[:], in[:], c.opc[:])
	return in
}

// out is OUTi = E_K(rot(TEMP ⊕ OPc, r) ⊕ ci) ⊕ OPc for i = 2..5 (ci
// is all zero but its last byte).
func (c *Cipher) out(temp [16]byte, r int, ci byte) [16]byte {
	var x [16]byte
	subtle.XORBytes(x[:], temp[:], c.opc[:])
	x = rotl(x, r)
	x[15] ^= ci
	return c.final(x)
}

// F1 returns MAC-A (f1) and MAC-S (f1*) of rand, sqn and amf:
// OUT1 = E_K(TEMP ⊕ rot(IN1 ⊕ OPc, r1) ⊕ c1) ⊕ OPc with
// IN1 = SQN‖AMF‖SQN‖AMF, r1 = 64 bits, c1 = 0.
func (c *Cipher) F1(rand, sqn, amf []byte) (macA, macS []byte) {
	t := c.temp(rand)
	var in1 [16]byte
	copy(in1[0:6], sqn)
	copy(in1[6:8], amf)
	copy(in1[8:14], sqn)
	copy(in1[14:16], amf)
	subtle.XORBytes(in1[:], in1[:], c.opc[:])
	x := rotl(in1, 8)
	subtle.XORBytes(x[:], x[:], t[:])
	o := c.final(x)
	return o[0:8], o[8:16]
}

// F2345 returns RES (f2), CK (f3), IK (f4) and AK (f5) of rand.
func (c *Cipher) F2345(rand []byte) (res, ck, ik, ak []byte) {
	t := c.temp(rand)
	o2 := c.out(t, 0, 1) // r2 = 0, c2 = 1
	o3 := c.out(t, 4, 2) // r3 = 32 bits, c3 = 2
	o4 := c.out(t, 8, 4) // r4 = 64 bits, c4 = 4
	return o2[8:16], o3[:], o4[:], o2[0:6]
}

// F5Star returns AK for resynchronisation (f5*) of rand.
func (c *Cipher) F5Star(rand []byte) []byte {
	o5 := c.out(c.temp(rand), 12, 8) // r5 = 96 bits, c5 = 8
	return o5[0:6]
}
