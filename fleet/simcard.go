// SPDX-License-Identifier: Apache-2.0

package fleet

import (
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// SIMCard is a physical SIM card (a USIM) the platform holds the keys of:
// it authenticates the device it sits in by 3GPP AKA (MILENAGE), so that
// device needs no credential of ours to bootstrap its virtual SIM.
type SIMCard struct {
	ICCID string `json:"iccid"`
	IMSI  string `json:"imsi"`
	// KiSealed and OPcSealed are the card's keys, sealed with the
	// settings key (internal/seal): never returned, never logged.
	KiSealed  string `json:"-"`
	OPcSealed string `json:"-"`
	// SQN is the network's sequence number for the card (SEQ‖IND, TS
	// 33.102 Annex C): the last one a challenge carried.
	SQN    uint64     `json:"-"`
	Status CardStatus `json:"status"`
	// GroupID is the group the card's virtual SIM joins when it is made.
	GroupID string `json:"groupId,omitempty"`
	// SIMID is the virtual SIM the card bootstrapped ("" until then).
	SIMID   string    `json:"simId,omitempty"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// CardStatus is whether a card may authenticate.
type CardStatus string

// Card statuses.
const (
	CardActive    CardStatus = "active"
	CardSuspended CardStatus = "suspended"
)

// CardKeys is one card of an import: its identity and its keys in clear,
// until the control plane seals them.
type CardKeys struct {
	ICCID, IMSI string
	Ki, OPc     []byte
}

// MaxCardImport bounds the cards of one import.
const MaxCardImport = 100_000

// ValidateICCID checks an ICCID: 18 to 20 digits (ITU-T E.118; a trailing
// 'F' of the card's padding is dropped).
func ValidateICCID(s string) (string, error) {
	s = strings.TrimSuffix(strings.TrimSuffix(s, "F"), "f")
	if len(s) < 18 || len(s) > 20 || !allDigits(s) {
		return "", Errorf(CodeInvalid, "iccid", "%q: 18 to 20 digits", s)
	}
	return s, nil
}

// ValidateCardIMSI checks a card's IMSI: 6 to 15 digits (E.212).
func ValidateCardIMSI(s string) error {
	if len(s) < 6 || len(s) > 15 || !allDigits(s) {
		return Errorf(CodeInvalid, "imsi", "%q: 6 to 15 digits", s)
	}
	return nil
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// MaxCardCSV bounds a SIM-card import's CSV (about 100,000 cards): the
// API and the console refuse a larger one.
const MaxCardCSV = 16 << 20

// ParseCardCSV reads the CSV SIM vendors ship: a header row naming the
// columns ICCID, IMSI, Ki and OPc (in any order and case; other columns
// are ignored; OP instead of OPc is refused: OPc is derived per card and
// the import never sees the operator's OP), then a row a card. Keys are
// hex. An error names the line; nothing of a file with an error is used.
// Duplicates within the file are errors.
func ParseCardCSV(r io.Reader) ([]CardKeys, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cr.Comment = '#'
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Errorf(CodeInvalid, "csv", "empty: want a header row with ICCID, IMSI, Ki and OPc")
		}
		return nil, Errorf(CodeInvalid, "csv", "line 1: %v", err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))] = i
	}
	for _, want := range []string{"iccid", "imsi", "ki", "opc"} {
		if _, ok := col[want]; !ok {
			if want == "opc" {
				if _, op := col["op"]; op {
					return nil, Errorf(CodeInvalid, "csv", "line 1: the file has OP, not OPc: derive each card's OPc (E_K(OP) ⊕ OP) before importing")
				}
			}
			// The row is not quoted: without a header it is a card, keys and all.
			return nil, Errorf(CodeInvalid, "csv", "line 1: no %s column in the header (%d columns; the first row must name ICCID, IMSI, Ki and OPc)", want, len(header))
		}
	}
	var out []CardKeys
	seenICCID, seenIMSI := map[string]int{}, map[string]int{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return nil, Errorf(CodeInvalid, "csv", "%v", err)
		} else if err != nil {
			return nil, err // reading failed (a body over its bound): not the file's fault
		}
		line, _ := cr.FieldPos(0)
		field := func(name string) string {
			if i := col[name]; i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		if len(out) == MaxCardImport {
			return nil, Errorf(CodeInvalid, "csv", "more than %d cards: import them in parts", MaxCardImport)
		}
		iccid, err := ValidateICCID(field("iccid"))
		if err != nil {
			return nil, Errorf(CodeInvalid, "csv", "line %d: %s", line, err.(*Error).Message)
		}
		imsi := field("imsi")
		if err := ValidateCardIMSI(imsi); err != nil {
			return nil, Errorf(CodeInvalid, "csv", "line %d: IMSI %s", line, err.(*Error).Message)
		}
		ki, err := hex.DecodeString(field("ki"))
		if err != nil || len(ki) != 16 {
			return nil, Errorf(CodeInvalid, "csv", "line %d: Ki: 32 hex digits", line)
		}
		opc, err := hex.DecodeString(field("opc"))
		if err != nil || len(opc) != 16 {
			return nil, Errorf(CodeInvalid, "csv", "line %d: OPc: 32 hex digits", line)
		}
		if prev, dup := seenICCID[iccid]; dup {
			return nil, Errorf(CodeInvalid, "csv", "line %d: ICCID %s already on line %d", line, iccid, prev)
		}
		if prev, dup := seenIMSI[imsi]; dup {
			return nil, Errorf(CodeInvalid, "csv", "line %d: IMSI %s already on line %d", line, imsi, prev)
		}
		seenICCID[iccid], seenIMSI[imsi] = line, line
		out = append(out, CardKeys{ICCID: iccid, IMSI: imsi, Ki: ki, OPc: opc})
	}
	if len(out) == 0 {
		return nil, Errorf(CodeInvalid, "csv", "no cards after the header")
	}
	return out, nil
}

// String keeps the keys out of logs and %v.
func (k CardKeys) String() string { return fmt.Sprintf("card %s (IMSI %s)", k.ICCID, k.IMSI) }

// CardKey is a key the platform and a SIM card derived by AKA: its id
// (Krypton's keyId), the card, the expected answer's hash, and the cipher
// key CK (sealed) the device signs later requests with. Unverified, it
// lives minutes; verified (the card's RES matched), an hour.
type CardKey struct {
	ID       string
	ICCID    string
	XRESHash string // hex SHA-256 of XRES: RES is compared, never stored
	CKSealed string
	Verified bool
	Expires  time.Time
	Created  time.Time
}
