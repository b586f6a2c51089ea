// SPDX-License-Identifier: Apache-2.0

package api_test

import (
	"encoding/asn1"
	"math/big"
)

type bigInt = big.Int

func asn1Unmarshal(b []byte, v any) ([]byte, error) { return asn1.Unmarshal(b, v) }
