// SPDX-License-Identifier: Apache-2.0

package arcapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/arcapi"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/wgkey"
)

func attestedServer(t *testing.T, o arcapi.Config) (*controlplane.Service, string) {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := controlplane.New(st, controlplane.Config{Endpoint: "127.0.0.1:51820", Logger: o.Logger})
	srv := httptest.NewServer(arcapi.New(svc, o))
	t.Cleanup(srv.Close)
	return svc, srv.URL
}

func attest(t *testing.T, base string, xff string) (int, session) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/provisioning/soracom/arc/bootstrap", strings.NewReader("{}"))
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s session
	if resp.StatusCode == 200 {
		json.NewDecoder(resp.Body).Decode(&s)
	}
	return resp.StatusCode, s
}

func TestAttestedBootstrap(t *testing.T) {
	ctx := context.Background()
	// The test client comes from 127.0.0.1: trust loopback.
	svc, base := attestedServer(t, arcapi.Config{TrustedNetworks: []arcapi.TrustedNetwork{{Prefix: netip.MustParsePrefix("127.0.0.0/8"), Group: "apn"}}})
	// The group is resolved at bootstrap time: missing, the call fails.
	if code, _ := attest(t, base, ""); code != 409 {
		t.Fatalf("group missing: %d", code)
	}
	g, err := svc.CreateGroup(ctx, controlplane.System, "apn", fleet.GroupSettings{})
	if err != nil {
		t.Fatal(err)
	}
	code, s1 := attest(t, base, "203.0.113.9") // forwarding header ignored: no trusted proxy
	if code != 200 {
		t.Fatalf("first attested bootstrap: %d", code)
	}
	p1, err := wgkey.ParsePrivate(s1.ArcClientPeerPrivateKey)
	if err != nil || p1.Public().String() != s1.ArcClientPeerPublicKey || s1.ArcServerEndpoint != "127.0.0.1:51820" {
		t.Fatalf("session %+v", s1)
	}
	code, s2 := attest(t, base, "")
	if code != 200 || s2.ArcClientPeerIPAddress != s1.ArcClientPeerIPAddress || s2.ArcClientPeerPublicKey == s1.ArcClientPeerPublicKey {
		t.Fatalf("second call must keep the SIM and change the key: %d %+v", code, s2)
	}
	old, _ := wgkey.ParsePublic(s1.ArcClientPeerPublicKey)
	if _, err := svc.View().SIMByPublicKey(ctx, old); err == nil {
		t.Fatal("old key still resolves after re-bootstrap")
	}
	sim, err := svc.View().SIMByAddress(ctx, netip.MustParseAddr(s2.ArcClientPeerIPAddress))
	if err != nil || sim.Tags["attested.source"] != "127.0.0.1" || sim.GroupID != g.ID {
		t.Fatalf("bound SIM %+v %v", sim, err)
	}
	if _, err := svc.SetSIMStatus(ctx, controlplane.System, sim.ID, fleet.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	if code, _ := attest(t, base, ""); code != 409 {
		t.Fatalf("suspended SIM re-bootstrap: %d, want 409", code)
	}
}

func TestAttestedBootstrapRefusals(t *testing.T) {
	// Loopback is not trusted: 403, even with a forged forwarding header.
	_, base := attestedServer(t, arcapi.Config{TrustedNetworks: []arcapi.TrustedNetwork{{Prefix: netip.MustParsePrefix("203.0.113.0/24")}}})
	if code, _ := attest(t, base, "203.0.113.9"); code != 403 {
		t.Fatalf("untrusted source with forged header: %d", code)
	}
	// Behind a trusted proxy (loopback), the forwarded address counts.
	_, base = attestedServer(t, arcapi.Config{
		TrustedNetworks: []arcapi.TrustedNetwork{{Prefix: netip.MustParsePrefix("203.0.113.0/24")}},
		TrustedProxies:  []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	})
	if code, s := attest(t, base, "198.51.100.1, 203.0.113.9"); code != 200 || s.ArcClientPeerPrivateKey == "" {
		t.Fatalf("via trusted proxy: %d", code)
	}
	// The client may prepend anything; only the hop the proxy added counts.
	if code, _ := attest(t, base, "203.0.113.9, 198.51.100.1"); code != 403 {
		t.Fatalf("spoofed leftmost entry: %d", code)
	}
	if code, _ := attest(t, base, ""); code != 403 {
		t.Fatalf("proxy without header (proxy's own address untrusted network): %d", code)
	}
}

// TestOptionsCopied: the handler keeps its own copy of the trusted
// networks; the caller changing its slice afterwards changes nothing.
func TestOptionsCopied(t *testing.T) {
	nets := []arcapi.TrustedNetwork{{Prefix: netip.MustParsePrefix("127.0.0.0/8")}}
	_, base := attestedServer(t, arcapi.Config{TrustedNetworks: nets})
	nets[0].Prefix = netip.MustParsePrefix("192.0.2.0/24")
	if code, _ := attest(t, base, ""); code != 200 {
		t.Fatalf("trusted network changed behind the handler's back: %d", code)
	}
}
