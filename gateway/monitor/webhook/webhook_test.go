// SPDX-License-Identifier: Apache-2.0

package webhook

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/gateway/monitor"
	"github.com/wirefleet/wirefleet/internal/seal"
)

type delivery struct {
	body            []byte
	signature, time string
}

func receiver(t *testing.T) (string, chan delivery) {
	got := make(chan delivery, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- delivery{b, r.Header.Get(SignatureHeader), r.Header.Get(TimestampHeader)}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, got
}

// A sealed secret is opened to sign: the receiver can check the signature
// over timestamp and body with the clear secret, and another secret does
// not verify.
func TestSealedSecretSigns(t *testing.T) {
	key, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	const secret = "a webhook secret 0123"
	sealed, err := key.Seal(secret)
	if err != nil {
		t.Fatal(err)
	}
	url, got := receiver(t)
	s := New(key, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	s.Send(url, sealed, monitor.Alert{SIM: "sim_1", Kind: "cloned-key"})
	select {
	case d := <-got:
		ts, err := strconv.ParseInt(d.time, 10, 64)
		if err != nil || d.signature != Sign(secret, ts, d.body) || d.signature == Sign("another secret 0123", ts, d.body) {
			t.Fatalf("signature %q over %s at %q", d.signature, d.body, d.time)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery")
	}
}

// Without the key that sealed it, the secret cannot be opened and nothing
// is queued: never an unsigned alert. With the key, it is.
func TestNoKeyNoAlert(t *testing.T) {
	key, _ := seal.GenerateKey()
	sealed, err := key.Seal("a webhook secret 0123")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := seal.GenerateKey()
	for _, c := range []struct {
		key    *seal.Key
		queued int
	}{{nil, 0}, {other, 0}, {key, 1}} {
		s := New(c.key, slog.New(slog.DiscardHandler))
		s.Send("http://127.0.0.1:9/", sealed, monitor.Alert{SIM: "sim_1", Kind: "cloned-key"})
		if len(s.q) != c.queued {
			t.Fatalf("key %p: %d alerts queued, want %d", c.key, len(s.q), c.queued)
		}
	}
}
