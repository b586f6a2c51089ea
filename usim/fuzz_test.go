// SPDX-License-Identifier: Apache-2.0

package usim_test

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/wirefleet/wirefleet/usim"
)

// FuzzParseAuthenticate: any answer a card (or a modem pretending to be
// one) sends is parsed or refused, never a panic, and a parsed answer has
// the lengths the bootstrap relies on.
func FuzzParseAuthenticate(f *testing.F) {
	f.Add([]byte{0xDB, 0x08, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add(append([]byte{0xDC, 0x0E}, make([]byte, 14)...))
	f.Add([]byte{0xDB, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := usim.ParseAuthenticate(b)
		var se *usim.SyncError
		switch {
		case errors.As(err, &se):
			if len(se.AUTS) != 14 {
				t.Fatalf("AUTS of %d bytes", len(se.AUTS))
			}
		case err == nil:
			if len(a.RES) < 4 || len(a.RES) > 16 || len(a.CK) != 16 || len(a.IK) != 16 || (a.Kc != nil && len(a.Kc) != 8) {
				t.Fatalf("accepted %x: lengths %d/%d/%d/%d", b, len(a.RES), len(a.CK), len(a.IK), len(a.Kc))
			}
		}
	})
}

// FuzzParseCSIM: AT+CSIM arguments and answers are parsed or refused.
func FuzzParseCSIM(f *testing.F) {
	f.Add(`4,"9000"`)
	f.Add(`14,"00A40004023F00"`)
	f.Add(`3,"900"`)
	f.Add(`-2,""`)
	f.Fuzz(func(t *testing.T, s string) {
		b, err := usim.ParseCSIM(s)
		if err == nil && !strings.Contains(strings.ToLower(s), `"`+hex.EncodeToString(b)+`"`) {
			t.Fatalf("%q parsed as %x", s, b)
		}
	})
}

// FuzzDecodeIMSI: EF.IMSI contents decode to digits or are refused.
func FuzzDecodeIMSI(f *testing.F) {
	f.Add([]byte{0x08, 0x09, 0x10, 0x10, 0x10, 0x32, 0x54, 0x76, 0x98})
	f.Add([]byte{0x08})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := usim.DecodeIMSI(b)
		if err != nil {
			return
		}
		if len(s) < 6 || len(s) > 15 {
			t.Fatalf("IMSI %q from %x", s, b)
		}
		for _, c := range s {
			if c < '0' || c > '9' {
				t.Fatalf("IMSI %q from %x", s, b)
			}
		}
	})
}
