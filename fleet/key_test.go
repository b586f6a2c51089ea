// SPDX-License-Identifier: Apache-2.0

package fleet

import (
	"encoding/hex"
	"testing"

	"github.com/wirefleet/wirefleet/wgkey"
)

func hexKey(t *testing.T, s string) wgkey.Public {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		t.Fatalf("bad test key %s", s)
	}
	return wgkey.Public(b)
}

// Low-order points, non-canonical encodings and the zero key are refused;
// real keys are not (issue 14, item 9: they used to be accepted).
func TestValidatePublicKey(t *testing.T) {
	ff := "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
	bad := map[string]string{
		"zero":        "0000000000000000000000000000000000000000000000000000000000000000",
		"one":         "0100000000000000000000000000000000000000000000000000000000000000",
		"order 8 (a)": "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
		"order 8 (b)": "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
		"p-1":         "ec" + ff + "7f",
		"p":           "ed" + ff + "7f",
		"p+1":         "ee" + ff + "7f",
		"top bit":     "0900000000000000000000000000000000000000000000000000000000000080",
	}
	for name, h := range bad {
		if err := ValidatePublicKey("publicKey", hexKey(t, h)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for range 100 {
		priv, _ := wgkey.NewPrivate()
		if err := ValidatePublicKey("publicKey", priv.Public()); err != nil {
			t.Fatalf("a real key %s: %v", priv.Public(), err)
		}
	}
	if err := ValidatePublicKey("publicKey", hexKey(t, "0900000000000000000000000000000000000000000000000000000000000000")); err != nil {
		t.Errorf("the base point: %v", err)
	}
}
