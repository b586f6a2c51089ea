// SPDX-License-Identifier: Apache-2.0

package controlplane_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/seal"
)

const cardsCSV = "ICCID,IMSI,Ki,OPc\n" +
	"898110000000000001,001010000000001,465b5ce8b199b49faa5f0a2ee238a6bc,cd63cb71954a9f4e48a5994e37a02baf\n" +
	"898110000000000002,001010000000002,0396eb317b6d1c36f19c1c84cd6ffd16,53c15671c60a4b731c55b4a441c0bde2\n"

// Importing SIM cards: admins only (an operator and a viewer are
// refused), keys sealed at rest (and opening to what was imported), never
// in a read, the audit trail or the logs; all or nothing on a duplicate;
// operators suspend a card, only admins delete one.
func TestSIMCardImport(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, _ := seal.GenerateKey()
	logs := &syncBuf{}
	svc := controlplane.New(st, controlplane.Config{Logger: slogTo(logs), Secrets: key})
	operator := controlplane.Actor{Kind: "token", ID: "tok_op", Role: fleet.RoleOperator}
	viewer := controlplane.Actor{Kind: "token", ID: "tok_view", Role: fleet.RoleViewer}
	for _, a := range []controlplane.Actor{operator, viewer} {
		if _, err := svc.ImportSIMCards(ctx, a, strings.NewReader(cardsCSV), ""); code(err) != fleet.CodeForbidden {
			t.Fatalf("import by %s: %v", a.Role, err)
		}
	}
	res, err := svc.ImportSIMCards(ctx, admin, strings.NewReader(cardsCSV), "")
	if err != nil || res.Imported != 2 {
		t.Fatalf("import: %+v %v", res, err)
	}
	c, _ := st.SIMCardByIMSI(ctx, "001010000000001")
	if !seal.IsSealed(c.KiSealed) || !seal.IsSealed(c.OPcSealed) {
		t.Fatalf("keys not sealed at rest: %q %q", c.KiSealed, c.OPcSealed)
	}
	if ki, err := key.Open(c.KiSealed); err != nil || ki != "465b5ce8b199b49faa5f0a2ee238a6bc" {
		t.Fatalf("sealed Ki opens to %q, %v", ki, err)
	}
	// A second import with one card already there: nothing of it stays.
	again := "ICCID,IMSI,Ki,OPc\n898110000000000003,001010000000003,00112233445566778899aabbccddeeff,00112233445566778899aabbccddeeff\n" +
		"898110000000000009,001010000000002,00112233445566778899aabbccddeeff,00112233445566778899aabbccddeeff\n"
	if _, err := svc.ImportSIMCards(ctx, admin, strings.NewReader(again), ""); code(err) != fleet.CodeConflict {
		t.Fatalf("duplicate IMSI: %v", err)
	}
	if _, err := st.SIMCard(ctx, "898110000000000003"); err != store.ErrNotFound {
		t.Fatalf("a card of the refused import was kept: %v", err)
	}
	p, err := svc.ListSIMCards(ctx, viewer, store.PageRequest{})
	if err != nil || len(p.Items) != 2 {
		t.Fatalf("list: %+v %v", p, err)
	}
	suspended := fleet.CardSuspended
	if _, err := svc.UpdateSIMCard(ctx, viewer, c.ICCID, controlplane.SIMCardUpdate{Status: &suspended}); code(err) != fleet.CodeForbidden {
		t.Fatalf("update by a viewer: %v", err)
	}
	if got, err := svc.UpdateSIMCard(ctx, operator, c.ICCID, controlplane.SIMCardUpdate{Status: &suspended}); err != nil || got.Status != fleet.CardSuspended {
		t.Fatalf("suspend: %+v %v", got, err)
	}
	if err := svc.DeleteSIMCard(ctx, operator, c.ICCID); code(err) != fleet.CodeForbidden {
		t.Fatalf("delete by an operator: %v", err)
	}
	if err := svc.DeleteSIMCard(ctx, admin, c.ICCID); err != nil {
		t.Fatal(err)
	}
	ev, _ := svc.ListEvents(ctx, admin, store.EventFilter{})
	for _, e := range ev.Items {
		for _, secret := range []string{"465b5ce8", "cd63cb71", "0396eb31", "53c15671"} {
			if strings.Contains(strings.ToLower(strings.Join([]string{e.Action, e.ObjectID, toJSON(e.Details)}, " ")), secret) {
				t.Fatalf("a key in event %+v", e)
			}
		}
	}
	for _, secret := range []string{"465b5ce8", "cd63cb71", "0396eb31", "53c15671"} {
		if strings.Contains(strings.ToLower(logs.String()), secret) {
			t.Fatal("a key in the logs")
		}
	}
}

func slogTo(w *syncBuf) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
