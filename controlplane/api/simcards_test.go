// SPDX-License-Identifier: Apache-2.0

package api_test

import (
	"strings"
	"testing"

	"github.com/wirefleet/wirefleet/fleet"
)

// A vendor's CSV in, cards listed without keys; a CSV with a bad line is
// refused with the line named and nothing imported.
func TestSIMCardImportAPI(t *testing.T) {
	e := newEnv(t)
	csv := "ICCID,IMSI,Ki,OPc\n898110000000000001,001010000000001,465b5ce8b199b49faa5f0a2ee238a6bc,cd63cb71954a9f4e48a5994e37a02baf\n"
	if code, b := e.do("POST", "/api/v1/sim-cards/import", fleet.RoleAdmin, csv); code != 201 || !strings.Contains(strings.ReplaceAll(string(b), " ", ""), `"imported":1`) {
		t.Fatalf("import: %d %s", code, b)
	}
	code, b := e.do("GET", "/api/v1/sim-cards", fleet.RoleViewer, nil)
	if code != 200 || !strings.Contains(string(b), "898110000000000001") {
		t.Fatalf("list: %d %s", code, b)
	}
	for _, secret := range []string{"465b5ce8", "cd63cb71", "sealed", "kiSealed", "sqn"} {
		if strings.Contains(string(b), secret) {
			t.Fatalf("the list shows %q: %s", secret, b)
		}
	}
	bad := "ICCID,IMSI,Ki,OPc\n898110000000000002,001010000000002,465b5ce8b199b49faa5f0a2ee238a6bc,cd63cb71954a9f4e48a5994e37a02baf\n898110000000000003,x,00,00\n"
	e.wantError("POST", "/api/v1/sim-cards/import", fleet.RoleAdmin, bad, 400, fleet.CodeInvalid, "csv")
	if code, _ := e.do("GET", "/api/v1/sim-cards/898110000000000002", fleet.RoleViewer, nil); code != 404 {
		t.Fatalf("a card of the refused import: %d", code)
	}
}
