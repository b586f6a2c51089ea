// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/services/remoteaccess"
)

// TestRemoteAccessWiring: with --remote-ports wirefleetd makes its TLS
// certificate (key 0600), answers mappings with its public host, port and
// the certificate's fingerprint, opens the port on --remote-listen, refuses
// a connection to a SIM with no session, and shows it in the events and
// the metrics; the audit reports a mapping open to everyone.
func TestRemoteAccessWiring(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	env := map[string]string{"WIREFLEET_API_LISTEN": "127.0.0.1:0", "WIREFLEET_REMOTE_PORTS": fmt.Sprintf("%d-%d", port, port),
		"WIREFLEET_REMOTE_LISTEN": "127.0.0.1", "WIREFLEET_REMOTE_HOST": "remote.example"}
	base, _, stderr, stop := start(t, dir, env)
	b, _ := os.ReadFile(filepath.Join(dir, "admin.token"))
	token := strings.TrimSpace(string(b))
	call := func(method, path, body string, out any) int {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if out != nil {
			json.NewDecoder(resp.Body).Decode(out)
		}
		return resp.StatusCode
	}
	if fi, err := os.Stat(filepath.Join(dir, remoteaccess.KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("TLS key file: %v %v", fi, err)
	}
	cert, fp, err := remoteaccess.LoadCertificate(filepath.Join(dir, remoteaccess.CertFile), filepath.Join(dir, remoteaccess.KeyFile))
	if err != nil || len(cert.Certificate) == 0 {
		t.Fatal(err)
	}
	var sim struct{ ID string }
	if code := call("POST", "/api/v1/sims", `{"generateKey": true}`, &sim); code != 201 {
		t.Fatalf("create SIM: %d", code)
	}
	var m struct {
		ID             string
		Host           string
		PublicPort     int
		TLSFingerprint string
	}
	if code := call("POST", "/api/v1/mappings", fmt.Sprintf(`{"simId": %q, "port": 22, "tls": true, "allowedSources": ["0.0.0.0/0"]}`, sim.ID), &m); code != 201 {
		t.Fatalf("create mapping: %d\n%s", code, stderr)
	}
	if m.Host != "remote.example" || m.PublicPort != port || m.TLSFingerprint != fp {
		t.Fatalf("mapping %+v, want host remote.example, port %d, fingerprint %s", m, port, fp)
	}
	// The port opens (the gateway follows the store's changes).
	var c net.Conn
	deadline := time.Now().Add(10 * time.Second)
	for c == nil {
		c, _ = net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if time.Now().After(deadline) {
			t.Fatalf("public port never opened\n%s", stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _ := c.Read(make([]byte, 8)); n != 0 {
		t.Fatal("a connection to an offline SIM got data")
	}
	c.Close()
	var ev struct {
		Items []struct {
			Action  string
			Details map[string]any
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		call("GET", "/api/v1/events?objectId="+m.ID+"&action=mapping.deny", "", &ev)
		if len(ev.Items) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no mapping.deny event")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ev.Items[0].Details["reason"] != remoteaccess.DenyOffline {
		t.Fatalf("deny event %+v", ev.Items[0])
	}
	_, metrics := get(t, base+"/metrics", "")
	for _, want := range []string{`wirefleet_remote_denied_total{reason="sim-offline"} 1`, "wirefleet_remote_listeners 1"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	var report struct {
		Findings []struct{ Check, Object string }
	}
	call("GET", "/api/v1/audit", "", &report)
	found := false
	for _, f := range report.Findings {
		found = found || (f.Check == "mapping-open-to-all" && f.Object == m.ID)
	}
	if !found {
		t.Errorf("audit did not report the open mapping: %+v", report.Findings)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Shut down: the port is closed.
	if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
		c.Close()
		t.Fatal("public port still open after shutdown")
	}
}
