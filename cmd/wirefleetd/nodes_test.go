// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/api/apiv1"
	"github.com/wirefleet/wirefleet/controlplane/jobs"
	"github.com/wirefleet/wirefleet/controlplane/store/pgstore/pgtest"
	"github.com/wirefleet/wirefleet/internal/seal"
)

// TestNodesShareOneIdentity: nodes on one PostgreSQL register in the node
// registry (GET /api/v1/nodes), a node stopped shows down at once, and a
// node whose WireGuard key or settings key is not the installation's
// refuses to start, saying which.
func TestNodesShareOneIdentity(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	env := map[string]string{"WIREFLEET_API_LISTEN": "127.0.0.1:0", "WIREFLEET_POSTGRES": dsn}
	dirA, dirB := t.TempDir(), t.TempDir()
	baseA, _, _, stopA := startArgs(t, dirA, env, "--endpoint", "127.0.0.1:51820", "--wg-listen", ":0", "--node-name", "node-a")
	tokenB, err := os.ReadFile(filepath.Join(dirA, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tokenB))
	copyFile := func(name, to string) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dirA, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	copyFile("gateway.key", dirB)
	copyFile(seal.KeyFile, dirB)
	baseB, _, _, _ := startArgs(t, dirB, env, "--endpoint", "127.0.0.1:51821", "--wg-listen", ":0", "--node-name", "node-b")
	via := baseA
	nodes := func() map[string]apiv1.Node {
		t.Helper()
		code, body := get(t, via+"/api/v1/nodes", token)
		var p apiv1.Page[apiv1.Node]
		if code != 200 || json.Unmarshal([]byte(body), &p) != nil {
			t.Fatalf("GET /api/v1/nodes: %d %s", code, body)
		}
		out := map[string]apiv1.Node{}
		for _, n := range p.Items {
			out[n.Name] = n
		}
		return out
	}
	ns := nodes()
	if !ns["node-a"].Up || !ns["node-b"].Up || ns["node-b"].Endpoint != "127.0.0.1:51821" || ns["node-a"].Version == "" {
		t.Fatalf("two nodes up: %+v", ns)
	}
	// The cluster-wide jobs run on one node: node-a, up first, took them.
	if a, b := ns["node-a"], ns["node-b"]; !slices.Equal(a.Jobs, []string{JobAudit, JobRetention}) || len(b.Jobs) != 0 {
		t.Fatalf("the jobs: node-a runs %q, node-b %q; want node-a all", a.Jobs, b.Jobs)
	}
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	via = baseB
	if n := nodes()["node-a"]; n.Up || n.Degraded != "stopped" || len(n.Jobs) != 0 {
		t.Fatalf("node-a after it stopped: %+v", n)
	}
	// node-a released its leases: node-b takes the jobs at its next try
	// (every third of jobs.DefaultTTL), not when they would lapse.
	deadline := time.Now().Add(jobs.DefaultTTL/3 + 5*time.Second)
	for !slices.Equal(nodes()["node-b"].Jobs, []string{JobAudit, JobRetention}) {
		if time.Now().After(deadline) {
			t.Fatalf("node-b runs %q after node-a stopped, want every job", nodes()["node-b"].Jobs)
		}
		time.Sleep(200 * time.Millisecond)
	}

	refused := func(dir, want string) {
		t.Helper()
		err := run(context.Background(), []string{"--data", dir, "--endpoint", "127.0.0.1:51822", "--wg-listen", ":0", "--node-name", "node-c"},
			func(k string) string { return env[k] }, io.Discard, io.Discard, func(net.Addr) { t.Error("a node with other keys started serving") })
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("a node with other keys: %v, want %q", err, want)
		}
	}
	refused(t.TempDir(), "WireGuard identity")
	dirD := t.TempDir()
	copyFile("gateway.key", dirD)
	refused(dirD, "settings key")
	if _, ok := nodes()["node-c"]; ok {
		t.Fatal("a refused node registered")
	}
}
