// SPDX-License-Identifier: Apache-2.0

// Package pgtest starts a throw-away PostgreSQL server for tests, from the
// Debian binaries (/usr/lib/postgresql/*/bin), reachable only through a
// Unix socket in a temporary directory. It skips when PostgreSQL is not
// installed, except under CI=true, where that is a failure.
package pgtest

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// T is what the helpers need of their caller: testing.TB has it, and so
// can a benchmark command (wirefleet-bench) that starts a server outside
// `go test`.
type T interface {
	Helper()
	Cleanup(func())
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Name() string
}

var _ T = testing.TB(nil)

// Server is a running PostgreSQL server.
type Server struct {
	dir    string
	sock   string
	cmd    *exec.Cmd
	n      atomic.Int64
	exited chan struct{}
}

// Stop shuts the server down now (a database outage, for tests of what
// clients do meanwhile) and waits for it to exit. Cleanup does nothing
// more.
func (s *Server) Stop() {
	s.cmd.Process.Signal(syscall.SIGINT) // fast shutdown: connections are cut
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

func binDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d
		}
	}
	return ""
}

func unavailable(t T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("PostgreSQL needed under CI: "+format, args...)
	}
	t.Skipf("skipping, PostgreSQL not available: "+format, args...)
}

// Start initialises and starts a server; it is stopped (by PID) and its
// files removed when t ends.
func Start(t T) *Server {
	t.Helper()
	return start(t, []string{"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"})
}

func start(t T, settings []string) *Server {
	t.Helper()
	bin := binDir()
	if bin == "" {
		unavailable(t, "no /usr/lib/postgresql/*/bin/postgres (apt-get install postgresql)")
	}
	var cred *syscall.Credential
	dir, err := os.MkdirTemp("", "wirefleet-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root: run it as the postgres user.
		u, err := user.Lookup("postgres")
		if err != nil {
			unavailable(t, "running as root and no postgres user")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	s := &Server{dir: dir, sock: dir}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "wirefleet", "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	// No TCP at all (listen_addresses empty): the socket in dir is the
	// only way in.
	s.cmd = exec.Command(filepath.Join(bin, "postgres"), append([]string{"-D", data, "-k", dir, "-c", "listen_addresses=", "-c", "max_connections=300"}, settings...)...)
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	s.run(t, data)
	return s
}

// run starts s.cmd, logging to the server's directory, stops it when t
// ends, and waits until it answers.
func (s *Server) run(t T, data string) {
	t.Helper()
	dir := s.dir
	cred := s.cmd.SysProcAttr.Credential
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		logf.Chown(int(cred.Uid), int(cred.Gid))
	}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("postgres: %v", err)
	}
	exited := make(chan struct{})
	s.exited = exited
	go func() { s.cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		// SIGINT is PostgreSQL's fast shutdown; kill if it lingers.
		s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		db, err := sql.Open("pgx", s.DSN("postgres"))
		if err == nil {
			err = db.Ping()
			db.Close()
		}
		if err == nil {
			return
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			t.Fatalf("postgres exited:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			t.Fatalf("postgres not ready after 30s: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// DSN is the connection string of database db.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("host=%s user=wirefleet dbname=%s sslmode=disable", s.sock, db)
}

// NewDatabase creates an empty database and returns its DSN.
func (s *Server) NewDatabase(t T) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%s", s.n.Add(1), strings.ToLower(strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, t.Name())))
	if len(name) > 60 {
		name = name[:60]
	}
	db, err := sql.Open("pgx", s.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(context.Background(), `CREATE DATABASE "`+name+`"`); err != nil {
		t.Fatal(err)
	}
	return s.DSN(name)
}
