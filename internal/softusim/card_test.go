// SPDX-License-Identifier: Apache-2.0

package softusim

import (
	"encoding/hex"
	"strings"
	"testing"
)

func testCard(t testing.TB) *Card {
	ki, _ := hex.DecodeString("465b5ce8b199b49faa5f0a2ee238a6bc")
	opc, _ := hex.DecodeString("cd63cb71954a9f4e48a5994e37a02baf")
	c, err := New(Config{ICCID: "8981100000000000017", IMSI: "001010123456789", Ki: ki, OPc: opc})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCardAnswers checks the card's answers a host relies on: T=0's
// 61xx and 6Cxx, files by path, the IMSI's encoding.
func TestCardAnswers(t *testing.T) {
	c := testCard(t)
	for _, tc := range []struct{ apdu, want string }{
		{"00a40004023f00", "610d"},                      // MF's FCP held for GET RESPONSE
		{"00c0000010", "6c0d"},                          // wrong Le: the right one
		{"00a4000c022fe2", "9000"},                      // EF.ICCID, no FCP
		{"00b0000000", "6c0a"},                          // P3 0 on T=0: the length
		{"00b000000a", "981801000000000010f7" + "9000"}, // ICCID in swapped BCD, F-padded
		{"00a40004026f07", "6a82"},                      // EF.IMSI is in the ADF, not the MF
		{"0088008122" + "10" + "00000000000000000000000000000000" + "10" + "00000000000000000000000000000000", "6a88"}, // no USIM selected
		{"00a4080c047fff6f07", "9000"}, // path from the MF through the ADF
		{"00b0000009", "080910101032547698" + "9000"},
		{"a0a40000023f00", "6e00"}, // the GSM class is not served
		{"00", "6700"},
		{"00a40004ff", "6a80"}, // SELECT without a file
	} {
		apdu, _ := hex.DecodeString(tc.apdu)
		if got := hex.EncodeToString(c.Transmit(apdu)); got != tc.want {
			t.Errorf("%s → %s, want %s", tc.apdu, got, tc.want)
		}
	}
}

// FuzzTransmit: whatever a host sends, the card answers with at least a
// status word and never panics.
func FuzzTransmit(f *testing.F) {
	for _, s := range []string{"00a40004023f00", "00c0000000", "00b2010420", "0088008122", "00a4040c07a0000000871002", "80f2000000"} {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	c := testCard(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if r := c.Transmit(b); len(r) < 2 {
			t.Fatalf("%x → %x", b, r)
		}
	})
}

// FuzzModemCommand: any command line gets OK or ERROR, never a panic,
// and echo changes only with E.
func FuzzModemCommand(f *testing.F) {
	for _, s := range []string{"ATE0V1", "AT+CSIM=14,\"00A40004023F00\"", "AT+CIMI", "AT&F&C1E1", "ATV0", "AT+CSIM=4,\"00\"", "ATS0=0", "AT"} {
		f.Add(s)
	}
	m := &Modem{card: testCard(f), imei: "490154203237518"}
	f.Fuzz(func(t *testing.T, cmd string) {
		echo := true
		m.run(cmd, &echo)
		if !echo && !strings.Contains(strings.ToUpper(cmd), "E") {
			t.Fatalf("%q turned echo off", cmd)
		}
	})
}
