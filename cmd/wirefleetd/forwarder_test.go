// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// wirefleetd seals forwarder secrets with <data>/settings-secrets.key (0600):
// neither the API nor the database files hold them in clear, and the
// forwarder's metrics are exported.
func TestForwarderSecretsSealed(t *testing.T) {
	dir := t.TempDir()
	base, _, stderr, stop := start(t, dir, map[string]string{"WIREFLEET_API_LISTEN": "127.0.0.1:0"})
	fi, err := os.Stat(filepath.Join(dir, "settings-secrets.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("settings-secrets.key: %v %v", fi, err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "admin.token"))
	token := strings.TrimSpace(string(b))
	const secret, cred = "signing-secret-in-clear-0001", "cloud-credential-in-clear-0002"
	body := `{"name":"fwd","settings":{"forwarders":{"http":[{"pathPrefix":"/t","url":"https://cloud.example.test/in","secret":"` + secret +
		`","credential":{"type":"bearer","value":"` + cred + `"}}]}}}`
	req, _ := http.NewRequest("POST", base+"/api/v1/groups", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var ans bytes.Buffer
	ans.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || !strings.Contains(ans.String(), `"secretSet": true`) || !strings.Contains(ans.String(), `"valueSet": true`) ||
		strings.Contains(ans.String(), secret) || strings.Contains(ans.String(), cred) {
		t.Fatalf("create group: %d %s", resp.StatusCode, ans.String())
	}
	code, metrics := get(t, base+"/metrics", "")
	if code != 200 || !strings.Contains(metrics, `wirefleet_forwarder_requests_total{kind="http"} 0`) {
		t.Fatalf("metrics: %d\n%s", code, metrics)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if bytes.Contains(b, []byte(secret)) || bytes.Contains(b, []byte(cred)) {
			t.Fatalf("%s holds a forwarder secret in clear", f)
		}
	}
	if strings.Contains(stderr.String(), secret) || strings.Contains(stderr.String(), cred) {
		t.Fatal("a forwarder secret is in the log")
	}
}
