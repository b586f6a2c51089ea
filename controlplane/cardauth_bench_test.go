// SPDX-License-Identifier: Apache-2.0

package controlplane_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/internal/milenage"
	"github.com/wirefleet/wirefleet/internal/seal"
)

// BenchmarkCardAKA is the platform's side of one SIM-card authentication
// — a challenge (SQN by compare-and-set, the key stored) and the
// verification of the card's answer — on SQLite, in process, over 100
// cards; the card's own computation (under a microsecond) is inside the
// timer. It reports authentications a second.
func BenchmarkCardAKA(b *testing.B) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(b.TempDir(), "fleet.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	key, _ := seal.GenerateKey()
	svc := controlplane.New(st, controlplane.Config{Logger: discard(), Secrets: key})
	const cards = 100
	var csv strings.Builder
	csv.WriteString("ICCID,IMSI,Ki,OPc\n")
	for i := range cards {
		fmt.Fprintf(&csv, "8981100000%08d,00101%010d,465b5ce8b199b49faa5f0a2ee238a6bc,cd63cb71954a9f4e48a5994e37a02baf\n", i, i)
	}
	if _, err := svc.ImportSIMCards(ctx, admin, strings.NewReader(csv.String()), ""); err != nil {
		b.Fatal(err)
	}
	card, _ := milenage.New(mustHex("465b5ce8b199b49faa5f0a2ee238a6bc"), mustHex("cd63cb71954a9f4e48a5994e37a02baf"))
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			imsi := fmt.Sprintf("00101%010d", n.Add(1)%cards)
			ch, err := svc.ChallengeCard(ctx, imsi, nil, nil)
			if err != nil {
				b.Error(err)
				return
			}
			a, err := card.Authenticate(ch.RAND, ch.AUTN)
			if err != nil {
				b.Error(err)
				return
			}
			if err := svc.VerifyCardKey(ctx, ch.KeyID, a.RES); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "auth/s")
}
