// SPDX-License-Identifier: Apache-2.0

package webhook

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/gateway/monitor"
	"github.com/wirefleet/wirefleet/internal/egress"
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
	s := New(key, slog.New(slog.DiscardHandler), loopback)
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
		s := New(c.key, slog.New(slog.DiscardHandler), loopback)
		s.Send("http://127.0.0.1:9/", sealed, monitor.Alert{SIM: "sim_1", Kind: "cloned-key"})
		if len(s.q) != c.queued {
			t.Fatalf("key %p: %d alerts queued, want %d", c.key, len(s.q), c.queued)
		}
	}
}

// loopback lets the tests' receivers (httptest, on 127.0.0.1) be reached.
var loopback = egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}

// By default a webhook URL on this host or a private network is refused
// at the connection (a group's settings must not make the gateway call
// its own host's services).
func TestPrivateDestinationRefused(t *testing.T) {
	url, got := receiver(t)
	s := New(nil, slog.New(slog.DiscardHandler), egress.Policy{})
	_, err := s.client.Post(url, "application/json", strings.NewReader("{}"))
	var de *egress.DeniedError
	if !errors.As(err, &de) {
		t.Fatalf("posting to %s: %v, want a refusal", url, err)
	}
	select {
	case <-got:
		t.Fatal("the loopback receiver got a delivery")
	default:
	}
}
