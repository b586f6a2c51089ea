// SPDX-License-Identifier: Apache-2.0

//go:build !cgo

package pkcs11store_test

import (
	"os"
	"testing"
)

// Without cgo the SoftHSM tests are not even compiled; CI must not pass
// by building that way.
func TestSoftHSMNeedsCgo(t *testing.T) {
	if os.Getenv("CI") == "true" {
		t.Fatal("built without cgo: the PKCS#11 tests did not run (install gcc and libc6-dev)")
	}
	t.Skip("built without cgo: PKCS#11 tests need cgo")
}
