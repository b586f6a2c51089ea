// SPDX-License-Identifier: Apache-2.0

package netns

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// RecordDir holds one file per live Env, named by its prefix and holding the
// owning process's PID and start time. A test process killed outright (SIGKILL,
// OOM) runs no cleanup; the next New finds its record, sees the process gone,
// and removes what that prefix left behind. Its processes are already dead:
// Start sets Pdeathsig.
const RecordDir = "/run/wirefleet-netns"

// processStart returns the start time of pid (field 22 of /proc/<pid>/stat),
// which tells a live owner from an unrelated process that reused its PID.
func processStart(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	// The command name (field 2) may contain spaces; fields after ')' are plain.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", fmt.Errorf("bad /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return "", fmt.Errorf("bad /proc/%d/stat", pid)
	}
	return f[19], nil // field 22 overall
}

func ownerRecord() string {
	pid := os.Getpid()
	start, _ := processStart(pid)
	return fmt.Sprintf("%d %s\n", pid, start)
}

// ownerAlive reports whether the process a record names still runs.
func ownerAlive(record string) bool {
	var pid int
	var start string
	if _, err := fmt.Sscan(record, &pid, &start); err != nil {
		return false
	}
	now, err := processStart(pid)
	return err == nil && now == start
}

// writeRecord records e's prefix as owned by this process.
func (e *Env) writeRecord() {
	if err := os.MkdirAll(RecordDir, 0o755); err != nil {
		e.t.Logf("netns: %v (stale sweeping off)", err)
		return
	}
	path := filepath.Join(RecordDir, e.prefix)
	if err := os.WriteFile(path, []byte(ownerRecord()), 0o644); err != nil {
		e.t.Logf("netns: %v (stale sweeping off)", err)
		return
	}
	e.addCleanup(func() { _ = os.Remove(path) })
}

// SweepStale removes namespaces, root-namespace interfaces and UAPI sockets
// of every recorded prefix whose owning process is gone, and returns the
// prefixes it swept. New calls it; only names with a dead owner's prefix are
// touched, never anything else.
func SweepStale() []string {
	entries, err := os.ReadDir(RecordDir)
	if err != nil {
		return nil
	}
	var swept []string
	for _, ent := range entries {
		prefix := ent.Name()
		path := filepath.Join(RecordDir, prefix)
		rec, err := os.ReadFile(path)
		if err != nil || ownerAlive(string(rec)) || !strings.HasPrefix(prefix, "wf") || len(prefix) != 7 {
			continue
		}
		if out, err := run(nil, "ip", "netns", "list"); err == nil {
			for _, line := range strings.Split(out, "\n") {
				if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix) {
					_, _ = run(nil, "ip", "netns", "del", f[0])
				}
			}
		}
		if ifs, err := os.ReadDir("/sys/class/net"); err == nil {
			for _, i := range ifs {
				if strings.HasPrefix(i.Name(), prefix) {
					_, _ = run(nil, "ip", "link", "del", i.Name())
				}
			}
		}
		if socks, err := filepath.Glob(filepath.Join(UAPIDir, prefix+"*.sock")); err == nil {
			for _, s := range socks {
				_ = os.Remove(s)
			}
		}
		_ = os.Remove(path)
		swept = append(swept, prefix)
	}
	return swept
}
