// SPDX-License-Identifier: Apache-2.0

package usim_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/wirefleet/wirefleet/internal/milenage"
	"github.com/wirefleet/wirefleet/internal/softusim"
	"github.com/wirefleet/wirefleet/usim"
)

var (
	testKi, _  = hex.DecodeString("465b5ce8b199b49faa5f0a2ee238a6bc")
	testOPc, _ = hex.DecodeString("cd63cb71954a9f4e48a5994e37a02baf")
)

const (
	testIMSI  = "001010123456789"
	testICCID = "8981100000000000017"
)

func newCard(t *testing.T, seq uint64) *softusim.Card {
	t.Helper()
	c, err := softusim.New(softusim.Config{ICCID: testICCID, IMSI: testIMSI, Ki: testKi, OPc: testOPc, SEQ: seq})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func challenge(t *testing.T, ki []byte, sqn milenage.SQN) milenage.Vector {
	t.Helper()
	ci, err := milenage.New(ki, testOPc)
	if err != nil {
		t.Fatal(err)
	}
	r := make([]byte, 16)
	rand.Read(r)
	return ci.NewVector(r, sqn, []byte{0x80, 0x00})
}

// TestModemDialogue runs the whole card dialogue over AT+CSIM on a
// pseudo-terminal: USIM selected from EF.DIR, IMSI read, a challenge
// answered, a replayed one answered with AUTS the network can read, a
// foreign network's refused.
func TestModemDialogue(t *testing.T) {
	card := newCard(t, 10)
	m, err := softusim.NewModem(card, "490154203237518")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	port, err := usim.OpenModem(m.Path, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := usim.Open(port)
	defer c.Close()
	dialogue(t, c, card)
}

// dialogue is what every transport must carry.
func dialogue(t *testing.T, c *usim.Card, card *softusim.Card) {
	t.Helper()
	imsi, err := c.ReadIMSI()
	if err != nil || imsi != testIMSI {
		t.Fatalf("ReadIMSI = %q, %v", imsi, err)
	}
	v := challenge(t, testKi, milenage.MakeSQN(11, 3))
	a, err := c.Authenticate(v.RAND, v.AUTN)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.RES, v.XRES) || !bytes.Equal(a.CK, v.CK) || !bytes.Equal(a.IK, v.IK) || !bytes.Equal(a.Kc, milenage.Kc(v.CK, v.IK)) {
		t.Fatalf("answer %x/%x/%x/%x does not match the vector", a.RES, a.CK, a.IK, a.Kc)
	}
	// The same SQN again: the card asks to resynchronise.
	v2 := challenge(t, testKi, milenage.MakeSQN(11, 3))
	_, err = c.Authenticate(v2.RAND, v2.AUTN)
	var se *usim.SyncError
	if !errors.As(err, &se) {
		t.Fatalf("replayed SQN: %v, want a SyncError", err)
	}
	ci, _ := milenage.New(testKi, testOPc)
	sqnMS, err := ci.Resync(v2.RAND, se.AUTS)
	if err != nil || sqnMS.Seq() != 11 {
		t.Fatalf("AUTS gives SQN_MS %v (SEQ %d), %v; want SEQ 11", sqnMS, sqnMS.Seq(), err)
	}
	// A network without this card's Ki.
	other := append([]byte(nil), testKi...)
	other[0] ^= 1
	v3 := challenge(t, other, milenage.MakeSQN(20, 0))
	if _, err := c.Authenticate(v3.RAND, v3.AUTN); !errors.Is(err, usim.ErrMAC) {
		t.Fatalf("foreign network: %v, want ErrMAC", err)
	}
	if card.Authentications != 3 || card.MACFailures != 1 || card.SyncFailures != 1 {
		t.Fatalf("card counted %d/%d/%d", card.Authentications, card.MACFailures, card.SyncFailures)
	}
}
