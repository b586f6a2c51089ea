// SPDX-License-Identifier: Apache-2.0

//go:build !cgo || nopcsc

package usim

import "errors"

// PCSC is not in this build (no cgo, or the nopcsc tag): the PC/SC
// binding links libpcsclite.
type PCSC struct{ Reader string }

// OpenPCSC fails: this build has no PC/SC.
func OpenPCSC(string) (*PCSC, error) {
	return nil, errors.New("usim: this build has no PC/SC (built without cgo or with the nopcsc tag)")
}

// Transmit is never reached.
func (*PCSC) Transmit([]byte) ([]byte, error) { return nil, errors.New("usim: no PC/SC") }

// Close does nothing.
func (*PCSC) Close() error { return nil }
