// SPDX-License-Identifier: Apache-2.0

package pgtest

import (
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// StartStandby starts a streaming-replication standby of primary (a base
// backup over primary's socket, then WAL streamed), in its own directory
// and socket, stopped and removed when t ends. With sync, primary waits
// for the standby to have each commit before acknowledging it
// (synchronous_standby_names), the setting that makes a promotion lose
// nothing acknowledged.
func StartStandby(t T, primary *Server, sync bool) *Server {
	t.Helper()
	bin := binDir()
	s := &Server{}
	dir, err := os.MkdirTemp("", "wirefleet-pg-standby-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s.dir, s.sock = dir, dir
	cred := primary.cmd.SysProcAttr.Credential
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	bb := exec.Command(filepath.Join(bin, "pg_basebackup"), "-h", primary.sock, "-U", "wirefleet", "-D", data, "-R", "-X", "stream", "--no-sync", "-c", "fast")
	bb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := bb.CombinedOutput(); err != nil {
		t.Fatalf("pg_basebackup: %v\n%s", err, out)
	}
	s.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-k", dir, "-c", "listen_addresses=", "-c", "max_connections=300",
		"-c", "cluster_name=standby", "-c", "hot_standby=on")
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	s.run(t, data)
	if sync {
		db, err := sql.Open("pgx", primary.DSN("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, q := range []string{`ALTER SYSTEM SET synchronous_standby_names = 'standby'`, `SELECT pg_reload_conf()`} {
			if _, err := db.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		// Synchronous once the standby says so.
		deadline := time.Now().Add(30 * time.Second)
		for {
			var state string
			db.QueryRow(`SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'`).Scan(&state)
			if state == "sync" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the standby is %q, not synchronous, after 30 s", state)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return s
}

// Promote makes a standby the primary and waits until it takes writes.
func (s *Server) Promote(t T) {
	t.Helper()
	db, err := sql.Open("pgx", s.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`SELECT pg_promote(true, 30)`); err != nil {
		t.Fatalf("pg_promote: %v", err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var inRecovery bool
		if err := db.QueryRow(`SELECT pg_is_in_recovery()`).Scan(&inRecovery); err == nil && !inRecovery {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the standby is still in recovery 30 s after pg_promote")
		}
	}
}

// Socket is the directory holding the server's socket (a DSN's host).
func (s *Server) Socket() string { return s.sock }

// Crash kills the server and its backends at once (SIGKILL to its process
// group: a machine lost, not a shutdown) and waits for it to exit.
func (s *Server) Crash() {
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.exited
}
