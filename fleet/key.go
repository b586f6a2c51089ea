// SPDX-License-Identifier: Apache-2.0

package fleet

import "github.com/wirefleet/wirefleet/wgkey"

// ValidatePublicKey refuses what no honest WireGuard peer sends as its
// public key (see wgkey.Public.Validate: the zero key, non-canonical
// encodings, low-order points), as a CodeInvalid error on field. Every key
// entry checks it, because an audit finding is too late: a SIM with such a
// key could never connect, and a second spelling of a key could register it
// twice.
func ValidatePublicKey(field string, k wgkey.Public) error {
	if err := k.Validate(); err != nil {
		return Errorf(CodeInvalid, field, "%s", err.Error())
	}
	return nil
}
