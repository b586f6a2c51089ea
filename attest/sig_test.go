// SPDX-License-Identifier: Apache-2.0

package attest

import (
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

func parseDERSig(der []byte) (*big.Int, *big.Int, bool) {
	r, s := new(big.Int), new(big.Int)
	in := cryptobyte.String(der)
	var inner cryptobyte.String
	ok := in.ReadASN1(&inner, cbasn1.SEQUENCE) && in.Empty() && inner.ReadASN1Integer(r) && inner.ReadASN1Integer(s) && inner.Empty()
	return r, s, ok
}
