// SPDX-License-Identifier: Apache-2.0

// Package usim talks to a device's SIM card: selecting its USIM
// application, reading the IMSI (3GPP TS 31.102) and running AUTHENTICATE
// in 3G context, whatever carries the APDUs — a modem's AT+CSIM on a
// serial port (Modem) or a PC/SC reader (PCSC). The agent's bootstrap by
// SIM card is built on it.
package usim

import (
	"errors"
	"fmt"
	"strings"
)

// Transmitter carries one command APDU to the card and returns its
// response APDU (data and SW1 SW2).
type Transmitter interface {
	Transmit(apdu []byte) ([]byte, error)
	Close() error
}

// StatusError is a card's refusal: its status word.
type StatusError struct {
	Command string
	SW      uint16
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("usim: %s: the card answered %04X", e.Command, e.SW)
}

// ErrMAC is the card's refusal of a challenge whose MAC-A it could not
// verify: the network does not hold this card's keys (SW 9862).
var ErrMAC = errors.New("usim: the card refused the challenge: its MAC does not match (not this card's network)")

// SyncError is the card's answer to a challenge whose sequence number it
// has already seen or finds out of range: AUTS, from which the network
// resynchronises.
type SyncError struct {
	AUTS []byte
}

func (e *SyncError) Error() string { return "usim: the card asks to resynchronise (AUTS)" }

// Answer is a card's answer to a challenge.
type Answer struct {
	RES, CK, IK, Kc []byte
}

// Card is a USIM reached through a Transmitter.
type Card struct {
	t        Transmitter
	selected bool
}

// Open wraps t.
func Open(t Transmitter) *Card { return &Card{t: t} }

// Close closes the transport.
func (c *Card) Close() error { return c.t.Close() }

// USIMRID is the start of every USIM's application identifier (3GPP RID
// A000000087, application 1002).
var USIMRID = []byte{0xA0, 0x00, 0x00, 0x00, 0x87, 0x10, 0x02}

// exchange runs one command, fetching the response data a T=0 card holds
// back (61xx → GET RESPONSE) and repeating a command whose expected
// length was wrong (6Cxx), and returns data and status word.
func (c *Card) exchange(name string, apdu []byte) ([]byte, uint16, error) {
	rsp, err := c.t.Transmit(apdu)
	if err != nil {
		return nil, 0, fmt.Errorf("usim: %s: %w", name, err)
	}
	var data []byte
	for range 16 { // bounded: a card that keeps saying 61xx is broken
		if len(rsp) < 2 {
			return nil, 0, fmt.Errorf("usim: %s: a %d-byte answer", name, len(rsp))
		}
		data = append(data, rsp[:len(rsp)-2]...)
		sw1, sw2 := rsp[len(rsp)-2], rsp[len(rsp)-1]
		switch sw1 {
		case 0x61, 0x9F: // more data: GET RESPONSE
			rsp, err = c.t.Transmit([]byte{apdu[0] & 0x03, 0xC0, 0x00, 0x00, sw2})
		case 0x6C: // wrong Le: the same command with the card's
			again := append([]byte(nil), apdu...)
			if len(again) == 4 {
				again = append(again, sw2)
			} else {
				again[len(again)-1] = sw2
			}
			rsp, err = c.t.Transmit(again)
		default:
			return data, uint16(sw1)<<8 | uint16(sw2), nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("usim: %s: %w", name, err)
		}
	}
	return nil, 0, fmt.Errorf("usim: %s: the card never finished answering", name)
}

// ok runs a command that must end in 9000.
func (c *Card) ok(name string, apdu []byte) ([]byte, error) {
	data, sw, err := c.exchange(name, apdu)
	if err != nil {
		return nil, err
	}
	if sw != 0x9000 && sw>>8 != 0x91 { // 91xx: 9000 with a proactive command pending
		return nil, &StatusError{Command: name, SW: sw}
	}
	return data, nil
}

// SelectUSIM selects the USIM application: its AID read from EF.DIR, or
// the USIM RID alone (cards select by partial AID) when EF.DIR does not
// name one.
func (c *Card) SelectUSIM() error {
	aid := USIMRID
	if _, err := c.ok("SELECT MF", []byte{0x00, 0xA4, 0x00, 0x04, 0x02, 0x3F, 0x00}); err == nil {
		if fcp, err := c.ok("SELECT EF.DIR", []byte{0x00, 0xA4, 0x00, 0x04, 0x02, 0x2F, 0x00}); err == nil {
			if recLen, n, ok := recordShape(fcp); ok {
				for i := 1; i <= n; i++ {
					rec, err := c.ok("READ RECORD EF.DIR", []byte{0x00, 0xB2, byte(i), 0x04, byte(recLen)})
					if err != nil {
						break
					}
					if a := dirAID(rec); a != nil && len(a) >= len(USIMRID) && string(a[:len(USIMRID)]) == string(USIMRID) {
						aid = a
						break
					}
				}
			}
		}
	}
	apdu := append([]byte{0x00, 0xA4, 0x04, 0x04, byte(len(aid))}, aid...)
	if _, err := c.ok("SELECT USIM", apdu); err != nil {
		return err
	}
	c.selected = true
	return nil
}

// ReadIMSI reads EF.IMSI of the USIM.
func (c *Card) ReadIMSI() (string, error) {
	if !c.selected {
		if err := c.SelectUSIM(); err != nil {
			return "", err
		}
	}
	if _, err := c.ok("SELECT EF.IMSI", []byte{0x00, 0xA4, 0x00, 0x04, 0x02, 0x6F, 0x07}); err != nil {
		return "", err
	}
	b, err := c.ok("READ BINARY EF.IMSI", []byte{0x00, 0xB0, 0x00, 0x00, 0x09})
	if err != nil {
		return "", err
	}
	return DecodeIMSI(b)
}

// Authenticate runs AUTHENTICATE in 3G context (TS 31.102 §7.1.2) with a
// challenge. A *SyncError carries the card's AUTS; ErrMAC is a challenge
// the card does not recognise as its network's.
func (c *Card) Authenticate(rand, autn []byte) (Answer, error) {
	if len(rand) != 16 || len(autn) != 16 {
		return Answer{}, errors.New("usim: RAND and AUTN are 16 bytes each")
	}
	if !c.selected {
		if err := c.SelectUSIM(); err != nil {
			return Answer{}, err
		}
	}
	apdu := []byte{0x00, 0x88, 0x00, 0x81, 0x22, 0x10}
	apdu = append(append(append(apdu, rand...), 0x10), autn...)
	data, sw, err := c.exchange("AUTHENTICATE", apdu)
	if err != nil {
		return Answer{}, err
	}
	switch sw {
	case 0x9000:
	case 0x9862:
		return Answer{}, ErrMAC
	default:
		return Answer{}, &StatusError{Command: "AUTHENTICATE", SW: sw}
	}
	return ParseAuthenticate(data)
}

// ParseAuthenticate reads AUTHENTICATE's response data: DB then RES, CK,
// IK and (optionally) Kc, each after its length; or DC then AUTS.
func ParseAuthenticate(data []byte) (Answer, error) {
	if len(data) == 0 {
		return Answer{}, errors.New("usim: AUTHENTICATE returned no data")
	}
	fields, err := lengthPrefixed(data[1:])
	switch {
	case err != nil:
		return Answer{}, err
	case data[0] == 0xDC:
		if len(fields) != 1 || len(fields[0]) != 14 {
			return Answer{}, errors.New("usim: AUTHENTICATE: a synchronisation failure without a 14-byte AUTS")
		}
		return Answer{}, &SyncError{AUTS: fields[0]}
	case data[0] != 0xDB:
		return Answer{}, fmt.Errorf("usim: AUTHENTICATE: tag %02X (want DB or DC)", data[0])
	case len(fields) < 3 || len(fields) > 4:
		return Answer{}, fmt.Errorf("usim: AUTHENTICATE: %d fields (want RES, CK, IK and Kc)", len(fields))
	case len(fields[0]) < 4 || len(fields[0]) > 16 || len(fields[1]) != 16 || len(fields[2]) != 16:
		return Answer{}, errors.New("usim: AUTHENTICATE: RES of 4 to 16 bytes, CK and IK of 16")
	}
	a := Answer{RES: fields[0], CK: fields[1], IK: fields[2]}
	if len(fields) == 4 {
		if len(fields[3]) != 8 {
			return Answer{}, errors.New("usim: AUTHENTICATE: Kc of 8 bytes")
		}
		a.Kc = fields[3]
	}
	return a, nil
}

// lengthPrefixed splits b into its length-prefixed fields; trailing bytes
// that are not a whole field are an error.
func lengthPrefixed(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		n := int(b[0])
		if n == 0 || len(b) < 1+n {
			return nil, errors.New("usim: AUTHENTICATE: a field longer than the answer")
		}
		out = append(out, b[1:1+n])
		b = b[1+n:]
	}
	return out, nil
}

// DecodeIMSI reads EF.IMSI's content: a length byte, then swapped BCD
// digits after a parity nibble.
func DecodeIMSI(b []byte) (string, error) {
	if len(b) < 2 || int(b[0]) < 1 || int(b[0]) > 8 || len(b) < 1+int(b[0]) {
		return "", errors.New("usim: EF.IMSI: malformed")
	}
	var s strings.Builder
	for i, x := range b[1 : 1+int(b[0])] {
		for j, d := range []byte{x & 0xF, x >> 4} {
			if i == 0 && j == 0 {
				continue // parity
			}
			if d == 0xF && i == int(b[0])-1 && j == 1 {
				break
			}
			if d > 9 {
				return "", errors.New("usim: EF.IMSI: not a digit")
			}
			s.WriteByte('0' + d)
		}
	}
	if s.Len() < 6 {
		return "", errors.New("usim: EF.IMSI: fewer than 6 digits")
	}
	return s.String(), nil
}

// recordShape reads a linear-fixed EF's record length and count from its
// FCP template (tag 82: descriptor, coding, record length (2), count).
func recordShape(fcp []byte) (recLen, n int, ok bool) {
	if len(fcp) < 2 || fcp[0] != 0x62 {
		return 0, 0, false
	}
	b := fcp[2:]
	for len(b) >= 2 {
		tag, l := b[0], int(b[1])
		if len(b) < 2+l {
			return 0, 0, false
		}
		if tag == 0x82 && l == 5 {
			return int(b[4])<<8 | int(b[5]), int(b[6]), true
		}
		b = b[2+l:]
	}
	return 0, 0, false
}

// dirAID reads the AID of an EF.DIR record (61 len 4F len AID …).
func dirAID(rec []byte) []byte {
	if len(rec) < 4 || rec[0] != 0x61 || rec[2] != 0x4F {
		return nil
	}
	n := int(rec[3])
	if n < 5 || n > 16 || len(rec) < 4+n {
		return nil
	}
	return rec[4 : 4+n]
}
