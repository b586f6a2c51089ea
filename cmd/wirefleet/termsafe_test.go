// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
)

// Terminal escape injection (issue 14, item 8): a device bootstrapping
// with a name holding ESC/OSC sequences is refused; a name stored before
// (written to the store directly here) is printed escaped, never raw.
func TestTerminalEscapes(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := controlplane.New(st, controlplane.Config{Logger: log})
	srv := httptest.NewServer(api.New(svc, api.Config{Logger: log}))
	defer srv.Close()
	admin, _, err := svc.EnsureAdminToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &cli{t: t, env: map[string]string{"WIREFLEET_URL": srv.URL, "WIREFLEET_TOKEN": admin}}

	evil := "cam\x1b]0;owned\x07\x1b[2J\u009b31m\u202e"
	_, secret, err := svc.CreateAuthKey(ctx, controlplane.System, controlplane.AuthKeySpec{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Bootstrap(ctx, controlplane.BootstrapRequest{AuthKey: secret, GenerateKey: true, Name: evil}); err == nil {
		t.Fatal("a bootstrap name with escape sequences was accepted")
	}
	c.fails(exitInvalid, "sims", "create", "--name", evil, "--generate-key")
	c.fails(exitInvalid, "sims", "create", "--name", "tab\there", "--generate-key")

	sim, _, err := svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{Name: "plain", GenerateKey: true, Tags: map[string]string{"site": "a"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Update(ctx, func(tx store.Tx) error {
		s, err := tx.SIM(ctx, sim.ID)
		if err != nil {
			return err
		}
		s.Name, s.Tags = evil, map[string]string{"site": evil}
		return tx.UpdateSIM(ctx, s)
	}); err != nil {
		t.Fatal(err)
	}
	out := c.ok("sims", "list")
	if strings.ContainsAny(out, "\x1b\x07\u009b\u202e") {
		t.Fatalf("the list prints control characters raw: %q", out)
	}
	if !strings.Contains(out, `cam\x1b]0;owned\x07\x1b[2J\u009b31m\u202e`) {
		t.Fatalf("the escaped name is not shown: %q", out)
	}
}
