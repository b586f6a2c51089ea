// SPDX-License-Identifier: Apache-2.0

package controlplane_test

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"runtime"
	"testing"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/keyproof"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// bootstrapProof is the key proof a device holding priv sends to
// re-bootstrap (keyproof.Bootstrap), against a fresh challenge of svc.
func bootstrapProof(t *testing.T, svc *controlplane.Service, priv wgkey.Private) *keyproof.Reply {
	t.Helper()
	ch, err := svc.KeyProofChallenge(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p, err := keyproof.Answer(context.Background(), keystore.NewMemory(priv), keyproof.Statement{Purpose: keyproof.Bootstrap, Nonce: ch.Nonce, ServerKey: ch.ServerKey})
	if err != nil {
		t.Fatal(err)
	}
	return &keyproof.Reply{Nonce: ch.Nonce, Proof: p}
}
