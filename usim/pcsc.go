// SPDX-License-Identifier: Apache-2.0

//go:build cgo && !nopcsc

package usim

import (
	"fmt"
	"strings"

	"github.com/ebfe/scard"
)

// PCSC carries APDUs to a card in a PC/SC reader (pcscd on Linux).
type PCSC struct {
	ctx    *scard.Context
	card   *scard.Card
	Reader string // the reader's name
}

// OpenPCSC connects to the card in the first reader whose name contains
// reader (any reader when empty).
func OpenPCSC(reader string) (*PCSC, error) {
	ctx, err := scard.EstablishContext()
	if err != nil {
		return nil, fmt.Errorf("usim: PC/SC: %w (is pcscd running?)", err)
	}
	readers, err := ctx.ListReaders()
	if err != nil {
		ctx.Release()
		return nil, fmt.Errorf("usim: PC/SC: listing readers: %w", err)
	}
	for _, r := range readers {
		if !strings.Contains(r, reader) {
			continue
		}
		card, err := ctx.Connect(r, scard.ShareExclusive, scard.ProtocolAny)
		if err != nil {
			ctx.Release()
			return nil, fmt.Errorf("usim: PC/SC: reader %q: %w", r, err)
		}
		return &PCSC{ctx: ctx, card: card, Reader: r}, nil
	}
	ctx.Release()
	return nil, fmt.Errorf("usim: PC/SC: no reader matching %q among %q", reader, readers)
}

// Transmit sends one APDU.
func (p *PCSC) Transmit(apdu []byte) ([]byte, error) { return p.card.Transmit(apdu) }

// Close releases the card and the context.
func (p *PCSC) Close() error {
	err := p.card.Disconnect(scard.ResetCard)
	if rerr := p.ctx.Release(); err == nil {
		err = rerr
	}
	return err
}
