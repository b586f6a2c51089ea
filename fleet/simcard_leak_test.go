// SPDX-License-Identifier: Apache-2.0

package fleet_test

import (
	"strings"
	"testing"

	"github.com/wirefleet/wirefleet/fleet"
)

// TestCardCSVWithoutHeaderHidesKeys: a file without its header row is
// refused without quoting its first row, which is a card with its keys.
func TestCardCSVWithoutHeaderHidesKeys(t *testing.T) {
	_, err := fleet.ParseCardCSV(strings.NewReader("898110000000000001,001010000000001,465b5ce8b199b49faa5f0a2ee238a6bc,cd63cb71954a9f4e48a5994e37a02baf\n"))
	if err == nil || strings.Contains(err.Error(), "465b5ce8") || strings.Contains(err.Error(), "cd63cb71") {
		t.Fatalf("a header-less CSV: %v", err)
	}
}
