// SPDX-License-Identifier: Apache-2.0

package controlplane_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"io"
	"log/slog"
	"testing"

	"github.com/wirefleet/wirefleet/attest"
	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/wgkey"
)

// BenchmarkAttestBootstrap is one device's whole attestation bootstrap on
// the server: a challenge, the device's signature (in software, as a
// secure element would make it), the bootstrap that verifies it and
// creates the SIM. Each op is a new device.
//
//	go test -run XXX -bench AttestBootstrap -benchtime 300x ./controlplane
func BenchmarkAttestBootstrap(b *testing.B) {
	for _, be := range backends {
		for _, alg := range []attest.Algorithm{attest.Ed25519, attest.P256} {
			b.Run(be.name+"/"+string(alg), func(b *testing.B) {
				st := be.open(b)
				defer st.Close()
				svc := controlplane.New(st, controlplane.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
				ctx := context.Background()
				signers := make([]crypto.Signer, b.N)
				keys := make([]attest.PublicKey, b.N)
				wg := make([]wgkey.Public, b.N)
				for i := range signers {
					if alg == attest.Ed25519 {
						_, signers[i], _ = ed25519.GenerateKey(rand.Reader)
					} else {
						signers[i], _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
					}
					keys[i], _ = attest.FromCrypto(signers[i].Public())
					priv, _ := wgkey.NewPrivate()
					wg[i] = priv.Public()
				}
				for lo := 0; lo < b.N; lo += controlplane.MaxIdentitiesPerCall {
					if _, err := svc.ImportIdentities(ctx, controlplane.System, controlplane.IdentityBatchSpec{Name: "bench", Keys: keys[lo:min(lo+controlplane.MaxIdentitiesPerCall, b.N)]}); err != nil {
						b.Fatal(err)
					}
				}
				b.ResetTimer()
				for i := range b.N {
					c, err := svc.AttestChallenge(ctx)
					if err != nil {
						b.Fatal(err)
					}
					msg, _ := attest.Message(c.Nonce, keys[i], wg[i])
					sig, err := attest.Sign(signers[i], msg)
					if err != nil {
						b.Fatal(err)
					}
					if _, _, err := svc.AttestBootstrap(ctx, controlplane.AttestRequest{Identity: keys[i], PublicKey: wg[i], Nonce: c.Nonce, Signature: sig}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
