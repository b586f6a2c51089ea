// SPDX-License-Identifier: Apache-2.0

// Package softhsmtest gives tests a real SoftHSM2 token: its own token
// directory and SOFTHSM2_CONF, a token initialised with softhsm2-util, and a
// pkcs11store.Config to open it.
//
// Tests skip when SoftHSM2 is not installed, and fail instead when the
// environment says CI=true, so CI cannot pass by skipping.
package softhsmtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/wirefleet/wirefleet/keystore/pkcs11store"
)

// PIN and SOPIN are the PINs of every test token.
const (
	PIN   = "wf-user-1234"
	SOPIN = "wf-so-5678"
)

// modulePaths are where distributions put the SoftHSM2 module.
var modulePaths = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib64/pkcs11/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
}

// Module returns the path of the SoftHSM2 PKCS#11 module, or "" when it is
// not installed (or softhsm2-util is missing).
func Module() string {
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		return ""
	}
	for _, p := range modulePaths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// Require skips t when SoftHSM2 is missing, or fails it under CI=true.
func Require(t testing.TB) string {
	t.Helper()
	m := Module()
	if m == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("SoftHSM2 is not installed (apt-get install softhsm2); CI must run the PKCS#11 tests")
		}
		t.Skip("SoftHSM2 not installed (apt-get install softhsm2)")
	}
	return m
}

// The token directory is per process: SoftHSM reads SOFTHSM2_CONF once, at
// C_Initialize, and the module stays initialised for the whole process.
var root struct {
	once sync.Once
	dir  string
	err  error
}

func setup() (string, error) {
	root.once.Do(func() {
		dir, err := os.MkdirTemp("", "wirefleet-softhsm-")
		if err != nil {
			root.err = err
			return
		}
		tokens := filepath.Join(dir, "tokens")
		conf := filepath.Join(dir, "softhsm2.conf")
		if err := os.Mkdir(tokens, 0o700); err != nil {
			root.err = err
			return
		}
		body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			root.err = err
			return
		}
		root.dir = dir
		root.err = os.Setenv("SOFTHSM2_CONF", conf)
	})
	return root.dir, root.err
}

// Main runs the tests of a package that uses NewToken and removes the
// token directory afterwards. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if root.dir != "" {
		os.RemoveAll(root.dir)
	}
	os.Exit(code)
}

// labels counts the uses of each label in this process, so a test run
// again (go test -count=N) gets a fresh token rather than a second token
// with the same label.
var labels struct {
	sync.Mutex
	n map[string]int
}

// NewToken initialises a fresh token with PIN and SOPIN and returns the
// Config that opens it. The token's label is label, or label.rN when label
// is already taken in this process (use Config.Token); keep label short,
// PKCS#11 labels have 32 bytes.
func NewToken(t testing.TB, label string) pkcs11store.Config {
	t.Helper()
	labels.Lock()
	if labels.n == nil {
		labels.n = map[string]int{}
	}
	labels.n[label]++
	if n := labels.n[label]; n > 1 {
		label = fmt.Sprintf("%s.r%d", label, n)
	}
	labels.Unlock()
	return InitToken(t, label)
}

// InitToken initialises a token labelled exactly label, even if one with
// that label exists (to test how stores deal with duplicates).
func InitToken(t testing.TB, label string) pkcs11store.Config {
	t.Helper()
	mod := Require(t)
	if _, err := setup(); err != nil {
		t.Fatalf("softhsmtest: %v", err)
	}
	out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", SOPIN, "--pin", PIN).CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return pkcs11store.Config{Module: mod, Token: label, PIN: PIN}
}
