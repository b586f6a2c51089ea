// SPDX-License-Identifier: Apache-2.0

//go:build cgo && !nopcsc

package usim_test

import (
	"testing"

	"github.com/wirefleet/wirefleet/internal/softusim"
	"github.com/wirefleet/wirefleet/usim"
)

// TestPCSCDialogue runs the card dialogue through a real pcscd, the card
// in a vpcd reader.
func TestPCSCDialogue(t *testing.T) {
	softusim.RequirePCSCD(t)
	card := newCard(t, 10)
	d, err := softusim.StartPCSCD(card, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	t.Setenv("PCSCLITE_CSOCK_NAME", d.Socket)
	p, err := usim.OpenPCSC(d.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c := usim.Open(p)
	defer c.Close()
	dialogue(t, c, card)
}
