// SPDX-License-Identifier: Apache-2.0

package fleet

import (
	"fmt"
	"strings"
	"testing"
)

const goodCSV = "\ufeffICCID,IMSI,KI,OPC,PIN1\n" +
	"8981100000000000001F,001010000000001,465b5ce8b199b49faa5f0a2ee238a6bc,cd63cb71954a9f4e48a5994e37a02baf,1234\n" +
	"# a comment\n" +
	"898110000000000002, 001010000000002 ,0396eb317b6d1c36f19c1c84cd6ffd16,53c15671c60a4b731c55b4a441c0bde2,1234\n"

func TestParseCardCSV(t *testing.T) {
	cards, err := ParseCardCSV(strings.NewReader(goodCSV))
	if err != nil || len(cards) != 2 {
		t.Fatalf("%v %v", cards, err)
	}
	if cards[0].ICCID != "8981100000000000001" || cards[1].IMSI != "001010000000002" || fmt.Sprintf("%x", cards[0].Ki) != "465b5ce8b199b49faa5f0a2ee238a6bc" {
		t.Fatalf("%+v", cards)
	}
	if s := fmt.Sprint(cards[0]); strings.Contains(s, "465b") || strings.Contains(s, "cd63") {
		t.Fatalf("keys printed: %s", s)
	}
	for _, tc := range []struct{ csv, want string }{
		{"", "empty"},
		{"ICCID,IMSI,Ki\n", "no opc column"},
		{"ICCID,IMSI,Ki,OP\n", "has OP, not OPc"},
		{"ICCID,IMSI,Ki,OPc\n", "no cards"},
		{"ICCID,IMSI,Ki,OPc\n12345,001010000000001,00112233445566778899aabbccddeeff,00112233445566778899aabbccddeeff\n", "line 2: \"12345\": 18 to 20 digits"},
		{"ICCID,IMSI,Ki,OPc\n898110000000000002,0010a,00112233445566778899aabbccddeeff,00112233445566778899aabbccddeeff\n", "line 2: IMSI"},
		{"ICCID,IMSI,Ki,OPc\n898110000000000002,001010000000001,0011,00112233445566778899aabbccddeeff\n", "line 2: Ki"},
		{"ICCID,IMSI,Ki,OPc\n898110000000000002,001010000000001,00112233445566778899aabbccddeeff,zz\n", "line 2: OPc"},
		{"ICCID,IMSI,Ki,OPc\n898110000000000002,001010000000001,00112233445566778899aabbccddeeff,00112233445566778899aabbccddeeff\n898110000000000002,001010000000003,00112233445566778899aabbccddeeff,00112233445566778899aabbccddeeff\n", "line 3: ICCID 898110000000000002 already on line 2"},
		{"ICCID,IMSI,Ki,OPc\n\"unterminated\n", "extraneous"},
	} {
		_, err := ParseCardCSV(strings.NewReader(tc.csv))
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.want)) {
			t.Errorf("%q: %v, want %q", tc.csv, err, tc.want)
		}
	}
}

func FuzzParseCardCSV(f *testing.F) {
	f.Add(goodCSV)
	f.Add("ICCID,IMSI,Ki,OPc\n\"a\"\"b\",1,2,3\n")
	f.Fuzz(func(t *testing.T, s string) {
		cards, err := ParseCardCSV(strings.NewReader(s))
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		for _, c := range cards {
			if len(c.Ki) != 16 || len(c.OPc) != 16 || ValidateCardIMSI(c.IMSI) != nil {
				t.Fatalf("accepted %+v", c)
			}
		}
	})
}
