// SPDX-License-Identifier: Apache-2.0

package forwarder

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/egress"
	"github.com/wirefleet/wirefleet/internal/seal"
)

func sealed(t *testing.T, k *seal.Key, s string) string {
	v, err := k.Seal(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A destination that never answers gives a 504-class failure within the
// timeout.
func TestSendTimeout(t *testing.T) {
	key, _ := seal.GenerateKey()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	s := New(Config{Egress: testEgress, Secrets: key, Timeout: 300 * time.Millisecond})
	u, _ := url.Parse(srv.URL)
	start := time.Now()
	_, f := s.send(context.Background(), Identity{SIMID: "s"}, outbound{kind: kindHTTP, method: "POST", url: u, secret: sealed(t, key, "sign-secret-0123456789")})
	if f == nil || f.status != http.StatusGatewayTimeout || f.reason != "timeout" {
		t.Fatalf("failure %+v, want 504 timeout", f)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("took %v with a 300 ms timeout", el)
	}
}

// A destination that refuses connections is tried again (nothing was
// sent), and reached once it listens.
func TestSendRetriesUnreachable(t *testing.T) {
	key, _ := seal.GenerateKey()
	port := freePort(t)
	var hits atomic.Int32
	go func() {
		time.Sleep(150 * time.Millisecond) // after the first attempt was refused
		l, err := net.Listen("tcp", "127.0.0.1:"+itoa(port))
		if err != nil {
			return
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1); io.WriteString(w, "late") })}
		t.Cleanup(func() { srv.Close() })
		srv.Serve(l)
	}()
	s := New(Config{Egress: testEgress, Secrets: key, Timeout: 5 * time.Second, Retries: 4})
	u, _ := url.Parse("http://127.0.0.1:" + itoa(port) + "/")
	resp, f := s.send(context.Background(), Identity{}, outbound{kind: kindHTTP, method: "POST", url: u, secret: sealed(t, key, "sign-secret-0123456789")})
	if f != nil {
		t.Fatalf("failure %+v", f)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "late" || hits.Load() != 1 {
		t.Fatalf("answer %q after %d hits", b, hits.Load())
	}
	// With the retries used up, refusal is a 502 with its reason.
	s = New(Config{Egress: testEgress, Secrets: key, Timeout: 5 * time.Second, Retries: -1})
	u, _ = url.Parse("http://127.0.0.1:" + itoa(freePort(t)) + "/")
	if _, f := s.send(context.Background(), Identity{}, outbound{kind: kindHTTP, method: "POST", url: u}); f == nil || f.status != 502 || f.reason != "unreachable" {
		t.Fatalf("failure %+v", f)
	}
}

// A failure after the request may have been delivered is not retried: a
// destination never gets a request twice.
func TestSendNoRetryAfterSending(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		c, _, _ := w.(http.Hijacker).Hijack()
		c.Close() // dies mid-request
	}))
	defer srv.Close()
	s := New(Config{Egress: testEgress, Timeout: 5 * time.Second, Retries: 3})
	u, _ := url.Parse(srv.URL)
	_, f := s.send(context.Background(), Identity{}, outbound{kind: kindHTTP, method: "POST", url: u, body: []byte("x")})
	if f == nil || f.status != 502 {
		t.Fatalf("failure %+v", f)
	}
	if hits.Load() != 1 {
		t.Fatalf("the destination got the request %d times", hits.Load())
	}
}

// A secret sealed under another key (the seal key file was replaced) is a
// 502 naming no secret, and nothing is sent.
func TestSendWrongKey(t *testing.T) {
	k1, _ := seal.GenerateKey()
	k2, _ := seal.GenerateKey()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	s := New(Config{Egress: testEgress, Secrets: k2})
	u, _ := url.Parse(srv.URL)
	_, f := s.send(context.Background(), Identity{}, outbound{kind: kindHTTP, method: "POST", url: u, secret: sealed(t, k1, "sign-secret-0123456789"),
		cred: fleet.Credential{Type: fleet.CredentialBearer, Value: sealed(t, k1, "tok")}})
	if f == nil || f.reason != "secret" || strings.Contains(f.msg, "sign-secret") || hits.Load() != 0 {
		t.Fatalf("failure %+v, %d hits", f, hits.Load())
	}
}

func TestMatchHTTP(t *testing.T) {
	routes := []fleet.HTTPForward{{PathPrefix: "/"}, {PathPrefix: "/t"}, {PathPrefix: "/t/deep/"}}
	for _, c := range []struct {
		path, prefix, rest string
	}{
		{"/t", "/t", ""}, {"/t/x", "/t", "/x"}, {"/tx", "/", "/tx"}, {"/t/deep/a", "/t/deep/", "/a"}, {"/t/deep", "/t/deep/", ""}, {"/", "/", "/"},
	} {
		r, rest := matchHTTP(routes, c.path)
		if r == nil || r.PathPrefix != c.prefix || rest != c.rest {
			t.Errorf("%s: got %v %q, want %s %q", c.path, r, rest, c.prefix, c.rest)
		}
	}
	if r, _ := matchHTTP(routes[1:], "/other"); r != nil {
		t.Errorf("matched %v", r)
	}
	u, _ := destURL("https://h/in", "/a/b", "x=1")
	if u.String() != "https://h/in/a/b?x=1" {
		t.Errorf("destURL %s", u)
	}
	u, _ = destURL("https://h/in?k=v", "", "x=1")
	if u.String() != "https://h/in?k=v&x=1" {
		t.Errorf("destURL %s", u)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestBadPath(t *testing.T) {
	for _, p := range []string{"/cloud/../admin", "/cloud/..", "/./x", "/a\\..\\b", "", "x", "/a/\x00"} {
		if !badPath(p) {
			t.Errorf("%q accepted", p)
		}
	}
	for _, p := range []string{"/", "/cloud/a.b/c..d", "/cloud//x", "/.well-known/x"} {
		if badPath(p) {
			t.Errorf("%q refused", p)
		}
	}
}

// A destination whose certificate the route's CA did not sign is a 502
// naming TLS, and the request is not sent.
func TestSendUntrustedCertificate(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	other := newTestCA(t) // the route trusts this CA, not the server's
	s := New(Config{Egress: testEgress, Timeout: 5 * time.Second})
	u, _ := url.Parse(srv.URL)
	_, f := s.send(context.Background(), Identity{}, outbound{kind: kindHTTP, method: "POST", url: u, caPEM: other.pem})
	if f == nil || f.status != http.StatusBadGateway || f.reason != "tls" || hits.Load() != 0 {
		t.Fatalf("failure %+v, %d hits", f, hits.Load())
	}
}

// By default a destination on this host, a private network or the
// platform's own ranges is refused before any byte is sent — a group's
// route to 127.0.0.1 must not let its devices read the host's own API —
// and it is not retried.
func TestEgressRefused(t *testing.T) {
	key, _ := seal.GenerateKey()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	s := New(Config{Secrets: key, Timeout: 2 * time.Second, Retries: 3}) // the default policy
	u, _ := url.Parse(srv.URL)
	_, f := s.send(context.Background(), Identity{SIMID: "s"}, outbound{kind: kindHTTP, method: "POST", url: u, secret: sealed(t, key, "sign-secret-0123456789")})
	if f == nil || f.reason != "destination_forbidden" || f.status != http.StatusForbidden {
		t.Fatalf("failure %+v, want 403 destination_forbidden", f)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the loopback server got %d requests", n)
	}
	// An admin's explicit allowance reaches it.
	s = New(Config{Secrets: key, Timeout: 2 * time.Second, Egress: egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}})
	if _, f := s.send(context.Background(), Identity{SIMID: "s"}, outbound{kind: kindHTTP, method: "POST", url: u, secret: sealed(t, key, "sign-secret-0123456789")}); f != nil || hits.Load() != 1 {
		t.Fatalf("allowed: %+v, %d hits", f, hits.Load())
	}
}
