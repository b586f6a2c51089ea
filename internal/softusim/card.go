// SPDX-License-Identifier: Apache-2.0

// Package softusim is a software USIM for tests: the files and the
// AUTHENTICATE command of a real card (ETSI TS 102 221, 3GPP TS 31.102),
// answering APDUs as a card on T=0 does, behind the two interfaces real
// cards are reached by — a modem's AT+CSIM on a serial line (Modem) and a
// PC/SC reader (VICC, through vsmartcard's vpcd driver for pcscd). It
// checks MAC-A and the freshness of SQN as a card does, so a test can show
// a wrong network refused and a resynchronisation. Never in a shipped
// binary: it holds Ki in memory.
package softusim

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/wirefleet/wirefleet/internal/milenage"
)

// Status words (TS 102 221 §10.2).
var (
	swOK             = []byte{0x90, 0x00}
	swWrongLength    = []byte{0x67, 0x00}
	swNotFound       = []byte{0x6A, 0x82}
	swWrongP1P2      = []byte{0x6B, 0x00}
	swBadINS         = []byte{0x6D, 0x00}
	swBadCLA         = []byte{0x6E, 0x00}
	swNoEF           = []byte{0x69, 0x86} // command not allowed: no current EF
	swBadFileType    = []byte{0x69, 0x81} // incompatible with the file structure
	swRecordNotFound = []byte{0x6A, 0x83}
	swAuthMAC        = []byte{0x98, 0x62} // authentication error, incorrect MAC
	swRefData        = []byte{0x6A, 0x88} // referenced data not found (no USIM selected)
	swWrongData      = []byte{0x6A, 0x80}
)

// USIMAID is the application identifier of the USIM on the card: the 3GPP
// RID, application code 1002 and the provider's extension (TS 101 220).
var USIMAID = mustHex("a0000000871002ff49ff0589")

// File identifiers.
const (
	fidMF    = 0x3F00
	fidDIR   = 0x2F00 // EF.DIR: the card's applications
	fidICCID = 0x2FE2
	fidADF   = 0x7FFF // the current application's ADF
	fidIMSI  = 0x6F07
	fidAD    = 0x6FAD // administrative data: length of the MNC
)

// Config is a card's personalisation.
type Config struct {
	ICCID, IMSI string
	Ki, OPc     []byte
	// SEQ is the highest SEQ the card has accepted (its SQN_MS): a
	// challenge at or below it is refused with AUTS.
	SEQ uint64
	// MNCLength is the MNC's digits in the IMSI (2 or 3; default 2).
	MNCLength int
}

type file struct {
	fid     uint16
	data    []byte   // transparent
	records [][]byte // linear fixed
	df      bool
}

// Card is a software USIM. It is safe for concurrent use (one command at a
// time, as a card).
type Card struct {
	mu      sync.Mutex
	cipher  *milenage.Cipher
	window  milenage.Window
	mf, adf map[uint16]*file
	inADF   bool
	cur     *file  // current EF
	pending []byte // response data waiting for GET RESPONSE

	// Counters a test reads.
	Authentications, MACFailures, SyncFailures int
}

// New personalises a card.
func New(c Config) (*Card, error) {
	ci, err := milenage.New(c.Ki, c.OPc)
	if err != nil {
		return nil, err
	}
	imsi, err := encodeIMSI(c.IMSI)
	if err != nil {
		return nil, err
	}
	iccid, err := encodeICCID(c.ICCID)
	if err != nil {
		return nil, err
	}
	mnc := byte(c.MNCLength)
	if mnc == 0 {
		mnc = 2
	}
	card := &Card{cipher: ci}
	// All SEQs start at the configured one: the card has seen nothing
	// newer in any IND.
	for i := range card.window.Seqs {
		card.window.Seqs[i] = c.SEQ
	}
	label := "USIM"
	dir := append([]byte{0x61, byte(4 + len(USIMAID) + len(label)), 0x4F, byte(len(USIMAID))}, USIMAID...)
	dir = append(append(dir, 0x50, byte(len(label))), label...)
	for len(dir) < 32 {
		dir = append(dir, 0xFF)
	}
	card.mf = map[uint16]*file{
		fidMF:    {fid: fidMF, df: true},
		fidDIR:   {fid: fidDIR, records: [][]byte{dir}},
		fidICCID: {fid: fidICCID, data: iccid},
	}
	card.adf = map[uint16]*file{
		fidADF:  {fid: fidADF, df: true},
		fidIMSI: {fid: fidIMSI, data: imsi},
		fidAD:   {fid: fidAD, data: []byte{0x00, 0x00, 0x00, mnc}},
	}
	return card, nil
}

// ATR is the card's answer to reset: T=0, as SIM cards are.
func (c *Card) ATR() []byte { return mustHex("3b9f96801fc78031a073be21136743200718000001a5") }

// Reset returns the card to its state after power-on: the MF selected.
func (c *Card) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inADF, c.cur, c.pending = false, nil, nil
}

// Transmit runs one command APDU and returns the response APDU (data and
// SW1 SW2). Commands with data to return answer 61xx first, and the data
// comes with GET RESPONSE, as on T=0.
func (c *Card) Transmit(apdu []byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(apdu) < 4 {
		return swWrongLength
	}
	cla, ins, p1, p2 := apdu[0], apdu[1], apdu[2], apdu[3]
	if cla&0xF0 != 0x00 && cla&0xF0 != 0x80 {
		return swBadCLA // 0xA0 (the GSM SIM's class) is not served: a USIM-only card
	}
	var data []byte
	le := -1
	switch body := apdu[4:]; {
	case len(body) == 0:
	case len(body) == 1:
		le = int(body[0])
	default:
		lc := int(body[0])
		if lc == 0 || len(body) < 1+lc || len(body) > 2+lc {
			return swWrongLength
		}
		data = body[1 : 1+lc]
		if len(body) == 2+lc {
			le = int(body[1+lc])
		}
	}
	if ins != 0xC0 {
		c.pending = nil
	}
	switch ins {
	case 0xA4:
		return c.sel(p1, p2, data)
	case 0xC0:
		return c.getResponse(le)
	case 0xB0:
		return c.readBinary(int(p1)<<8|int(p2), le)
	case 0xB2:
		return c.readRecord(p1, p2, le)
	case 0x88:
		return c.authenticate(p1, p2, data)
	case 0xF2: // STATUS
		return swOK
	}
	return swBadINS
}

// respond queues data for GET RESPONSE.
func (c *Card) respond(data []byte) []byte {
	if len(data) == 0 {
		return swOK
	}
	c.pending = data
	return []byte{0x61, byte(len(data))}
}

func (c *Card) getResponse(le int) []byte {
	if c.pending == nil {
		return []byte{0x69, 0x85} // conditions of use not satisfied
	}
	n := le
	if n <= 0 {
		n = 256
	}
	if n > len(c.pending) {
		return []byte{0x6C, byte(len(c.pending))}
	}
	out := append(append([]byte(nil), c.pending[:n]...), swOK...)
	if rest := c.pending[n:]; len(rest) > 0 {
		c.pending = rest
		out[len(out)-2], out[len(out)-1] = 0x61, byte(len(rest))
	} else {
		c.pending = nil
	}
	return out
}

func (c *Card) sel(p1, p2 byte, data []byte) []byte {
	var f *file
	switch p1 {
	case 0x04: // by DF name: the USIM's AID, or a prefix of it
		if len(data) < 5 || !strings.HasPrefix(string(USIMAID), string(data)) {
			return swNotFound
		}
		c.inADF, f = true, c.adf[fidADF]
	case 0x00, 0x08, 0x09: // by FID, or a path of FIDs
		if len(data)%2 != 0 || len(data) == 0 {
			return swWrongData
		}
		for i := 0; i < len(data); i += 2 {
			fid := uint16(data[i])<<8 | uint16(data[i+1])
			var ok bool
			switch {
			case fid == fidMF:
				c.inADF, f = false, c.mf[fidMF]
			case fid == fidADF:
				c.inADF, f = true, c.adf[fidADF]
			case c.inADF:
				if f, ok = c.adf[fid]; !ok {
					f, ok = c.mf[fid]
				}
			default:
				f, ok = c.mf[fid]
			}
			if f == nil || (fid != fidMF && fid != fidADF && !ok) {
				return swNotFound
			}
		}
	default:
		return swWrongP1P2
	}
	if !f.df {
		c.cur = f
	} else {
		c.cur = nil
	}
	if p2&0x0C == 0x0C { // no data returned
		return swOK
	}
	return c.respond(fcp(f))
}

// fcp is a file's control parameters template (TS 102 221 §11.1.1.3).
func fcp(f *file) []byte {
	var b []byte
	switch {
	case f.df:
		b = append(b, 0x82, 0x02, 0x78, 0x21)
	case f.records != nil:
		b = append(b, 0x82, 0x05, 0x42, 0x21, 0x00, byte(len(f.records[0])), byte(len(f.records)))
	default:
		b = append(b, 0x82, 0x02, 0x41, 0x21)
	}
	b = append(b, 0x83, 0x02, byte(f.fid>>8), byte(f.fid))
	if !f.df {
		size := len(f.data)
		if f.records != nil {
			size = len(f.records) * len(f.records[0])
		}
		b = append(b, 0x80, 0x02, byte(size>>8), byte(size))
	}
	b = append(b, 0x8A, 0x01, 0x05) // life cycle: operational, activated
	return append([]byte{0x62, byte(len(b))}, b...)
}

func (c *Card) readBinary(off, le int) []byte {
	if c.cur == nil {
		return swNoEF
	}
	if c.cur.records != nil {
		return swBadFileType
	}
	if off >= len(c.cur.data) {
		return []byte{0x6B, 0x00}
	}
	avail := c.cur.data[off:]
	if le <= 0 || le > len(avail) {
		return []byte{0x6C, byte(len(avail))} // on T=0 a wrong P3 is answered with the right one
	}
	return append(append([]byte(nil), avail[:le]...), swOK...)
}

func (c *Card) readRecord(rec, p2 byte, le int) []byte {
	if c.cur == nil {
		return swNoEF
	}
	if c.cur.records == nil {
		return swBadFileType
	}
	if p2 != 0x04 || rec == 0 || int(rec) > len(c.cur.records) {
		return swRecordNotFound
	}
	r := c.cur.records[rec-1]
	if le != len(r) {
		return []byte{0x6C, byte(len(r))}
	}
	return append(append([]byte(nil), r...), swOK...)
}

// authenticate is AUTHENTICATE in 3G context (TS 31.102 §7.1.2): P2 0x81,
// data len‖RAND‖len‖AUTN; answer DB len‖RES len‖CK len‖IK len‖Kc, or
// DC len‖AUTS when SQN is not fresh, or 98 62 when MAC-A is wrong.
func (c *Card) authenticate(p1, p2 byte, data []byte) []byte {
	if !c.inADF {
		return swRefData
	}
	if p1 != 0x00 || p2 != 0x81 {
		return swWrongP1P2
	}
	if len(data) != 2+milenage.RANDSize+milenage.AUTNSize || data[0] != milenage.RANDSize || data[1+milenage.RANDSize] != milenage.AUTNSize {
		return swWrongData
	}
	rnd, autn := data[1:1+milenage.RANDSize], data[2+milenage.RANDSize:]
	c.Authentications++
	a, err := c.cipher.Authenticate(rnd, autn)
	if err != nil {
		c.MACFailures++
		return swAuthMAC
	}
	if !c.window.Accept(a.SQN) {
		c.SyncFailures++
		auts := c.cipher.AUTS(rnd, c.window.Highest())
		return c.respond(append([]byte{0xDC, byte(len(auts))}, auts...))
	}
	out := []byte{0xDB, byte(len(a.RES))}
	out = append(out, a.RES...)
	out = append(append(out, byte(len(a.CK))), a.CK...)
	out = append(append(out, byte(len(a.IK))), a.IK...)
	out = append(append(out, milenage.KcSize), milenage.Kc(a.CK, a.IK)...)
	return c.respond(out)
}

// encodeIMSI is EF.IMSI's content (TS 31.102 §4.2.2): length, then the
// digits in swapped BCD after a parity nibble (9: odd, 1: even).
func encodeIMSI(imsi string) ([]byte, error) {
	if len(imsi) < 6 || len(imsi) > 15 || strings.Trim(imsi, "0123456789") != "" {
		return nil, fmt.Errorf("softusim: IMSI %q: 6 to 15 digits", imsi)
	}
	nib := []byte{1}
	if len(imsi)%2 == 1 {
		nib[0] = 9
	}
	for _, d := range imsi {
		nib = append(nib, byte(d-'0'))
	}
	if len(nib)%2 == 1 {
		nib = append(nib, 0xF)
	}
	out := []byte{byte(len(nib) / 2)}
	for i := 0; i < len(nib); i += 2 {
		out = append(out, nib[i+1]<<4|nib[i])
	}
	for len(out) < 9 {
		out = append(out, 0xFF)
	}
	return out, nil
}

// encodeICCID is EF.ICCID: the digits in swapped BCD, padded with F.
func encodeICCID(iccid string) ([]byte, error) {
	if len(iccid) < 18 || len(iccid) > 20 || strings.Trim(iccid, "0123456789") != "" {
		return nil, errors.New("softusim: ICCID: 18 to 20 digits")
	}
	out := make([]byte, 10)
	for i := range out {
		lo, hi := byte(0xF), byte(0xF)
		if 2*i < len(iccid) {
			lo = iccid[2*i] - '0'
		}
		if 2*i+1 < len(iccid) {
			hi = iccid[2*i+1] - '0'
		}
		out[i] = hi<<4 | lo
	}
	return out, nil
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
