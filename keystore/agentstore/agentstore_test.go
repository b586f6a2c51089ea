// SPDX-License-Identifier: Apache-2.0

package agentstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

// The test binary doubles as a client run under another UID (see
// TestDeniedUIDOtherProcess).
const childEnv = "AGENTSTORE_TEST_CHILD_DIAL"

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		c, err := Dial(path, "wg")
		switch {
		case err == nil:
			c.Close()
			os.Exit(0)
		case errors.Is(err, ErrDenied):
			os.Exit(3)
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// startAgent serves backend on a fresh socket and returns its path.
func startAgent(t *testing.T, backend Backend, policy Policy) string {
	t.Helper()
	if policy.Logger == nil {
		policy.Logger = quiet
	}
	path := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(backend, policy)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return path
}

func dh(t *testing.T, s keystore.Store, p keystore.Purpose, peer wgkey.Public) [32]byte {
	t.Helper()
	r, err := s.DH(context.Background(), keystore.DHRequest{Purpose: p, Peer: peer})
	if err != nil {
		t.Fatalf("%v: %v", p, err)
	}
	return r
}

// A key generated through the agent is used through it: public key and DH
// agree with a software peer for every purpose, and the socket is 0600.
func TestRoundTrip(t *testing.T) {
	path := startAgent(t, &MemoryBackend{}, Policy{})
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	g, err := Generate(path, "wg")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	c, err := Dial(path, "wg")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.PublicKey() != g.PublicKey() || c.PublicKey() == (wgkey.Public{}) {
		t.Fatal("Dial and Generate disagree on the public key")
	}
	for _, p := range []keystore.Purpose{keystore.StaticStatic, keystore.ResponderES, keystore.InitiatorSE} {
		peer, _ := keystore.GenerateMemory()
		if dh(t, c, p, peer.PublicKey()) != dh(t, peer, p, c.PublicKey()) {
			t.Fatalf("%v: agent DH disagrees", p)
		}
	}
	if _, err := c.DH(context.Background(), keystore.DHRequest{Purpose: keystore.StaticStatic, Peer: wgkey.Public{}}); !errors.Is(err, keystore.ErrLowOrder) {
		t.Fatalf("low-order peer: %v, want ErrLowOrder", err)
	}
	// The connection survives an error response.
	peer, _ := keystore.GenerateMemory()
	dh(t, c, keystore.StaticStatic, peer.PublicKey())
}

// Slots: an empty slot is not found, a used one cannot be generated over,
// a deleted one is gone for clients already connected.
func TestSlots(t *testing.T) {
	path := startAgent(t, &MemoryBackend{}, Policy{})
	if _, err := Dial(path, "nothing"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Dial of an empty slot: %v", err)
	}
	a, err := Generate(path, "a")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := Generate(path, "a"); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Generate over a key: %v", err)
	}
	b, err := Generate(path, "b")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := Delete(path, "a"); err != nil {
		t.Fatal(err)
	}
	if err := Delete(path, "a"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("second Delete: %v", err)
	}
	peer, _ := keystore.GenerateMemory()
	if _, err := a.DH(context.Background(), keystore.DHRequest{Purpose: keystore.StaticStatic, Peer: peer.PublicKey()}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("DH with a deleted slot: %v", err)
	}
	dh(t, b, keystore.StaticStatic, peer.PublicKey())
	if _, err := Dial(path, "bad slot"); err == nil {
		t.Fatal("a slot name with a space was accepted")
	}
}

// An initiator-only agent refuses responder-es and serves the rest.
func TestInitiatorOnlyRefusesResponderES(t *testing.T) {
	path := startAgent(t, &MemoryBackend{}, Policy{InitiatorOnly: true})
	c, err := Generate(path, "wg")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer, _ := keystore.GenerateMemory()
	if _, err := c.DH(context.Background(), keystore.DHRequest{Purpose: keystore.ResponderES, Peer: peer.PublicKey()}); !errors.Is(err, keystore.ErrRefused) {
		t.Fatalf("responder-es: %v, want ErrRefused", err)
	}
	for _, p := range []keystore.Purpose{keystore.StaticStatic, keystore.InitiatorSE} {
		dh(t, c, p, peer.PublicKey())
	}
}

// The UID check itself.
func TestPolicyAllows(t *testing.T) {
	me := uint32(os.Getuid())
	def := Policy{}
	if !def.allows(me) || def.allows(me+1) || def.allows(0) && me != 0 {
		t.Fatal("default policy must allow exactly the agent's own UID")
	}
	list := Policy{AllowedUIDs: []uint32{1000, 1001}}
	if !list.allows(1001) || list.allows(me) && me != 1000 && me != 1001 || list.allows(1002) {
		t.Fatal("an explicit list must allow exactly its UIDs")
	}
}

// Through a real socket: a policy that does not list our UID denies us,
// whatever the socket's file mode allows.
func TestDeniedUIDSameProcess(t *testing.T) {
	backend := &MemoryBackend{}
	backend.Generate("wg")
	path := startAgent(t, backend, Policy{AllowedUIDs: []uint32{uint32(os.Getuid()) + 1}})
	os.Chmod(path, 0o666)
	_, err := Dial(path, "wg")
	if !errors.Is(err, ErrDenied) {
		t.Fatalf("Dial with a UID the policy lacks: %v, want ErrDenied", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprint(os.Getuid())) {
		t.Fatalf("denial %q does not name the UID", err)
	}
}

// A client process running under another UID (nobody) is denied by the
// default policy even though the socket's mode lets it connect; allowing
// that UID lets the same process in, so the denial is the UID check's.
func TestDeniedUIDOtherProcess(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a child under another UID")
	}
	const nobody = 65534
	// A directory and binary the other UID can reach.
	dir, err := os.MkdirTemp("", "wf-agent-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "agentstore.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(policy Policy) int {
		backend := &MemoryBackend{}
		backend.Generate("wg")
		policy.Logger = quiet
		sock := filepath.Join(dir, fmt.Sprintf("agent-%d.sock", len(policy.AllowedUIDs)))
		ln, err := Listen(sock)
		if err != nil {
			t.Fatal(err)
		}
		os.Chmod(sock, 0o666)
		srv := NewServer(backend, policy)
		go srv.Serve(ln)
		defer srv.Close()
		cmd := exec.Command(bin, "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+sock)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ee.ExitCode() == 1 {
				t.Logf("child: %s", out)
			}
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return 0
	}
	if code := run(Policy{}); code != 3 {
		t.Fatalf("child under UID %d: exit %d, want 3 (denied)", nobody, code)
	}
	if code := run(Policy{AllowedUIDs: []uint32{0, nobody}}); code != 0 {
		t.Fatalf("child under allowed UID %d: exit %d, want 0", nobody, code)
	}
}

// Malformed requests get a bad-request line and the connection (and the
// agent) go on; an overlong line closes only its connection.
func TestMalformedRequests(t *testing.T) {
	backend := &MemoryBackend{}
	backend.Generate("wg")
	path := startAgent(t, backend, Policy{})
	nc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(nc)
	ask := func(line string) string {
		t.Helper()
		if _, err := io.WriteString(nc, line); err != nil {
			t.Fatal(err)
		}
		resp, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %q: %v", line, err)
		}
		return resp
	}
	peer, _ := keystore.GenerateMemory()
	pk := peer.PublicKey().String()
	for _, line := range []string{
		"\n",
		"hello\n",
		"version extra\n",
		"public-key\n",
		"public-key  wg\n",
		"public-key wg \n",
		"public-key ../../etc\n",
		"public-key w\x00g\n",
		"public-key wg\r\n",
		"dh wg static-static\n",
		"dh wg sideways " + pk + "\n",
		"dh wg static-static notbase64!\n",
		"dh wg static-static " + pk[:40] + "\n",
		"dh wg static-static " + strings.TrimSuffix(pk, "=") + "A\n",
		"DH wg static-static " + pk + "\n",
		"generate " + strings.Repeat("s", 65) + "\n",
		"dh wg static-static " + pk + " extra\n",
		"\xff\xfe\n",
	} {
		if resp := ask(line); !strings.HasPrefix(resp, "err bad-request ") {
			t.Errorf("%q: response %q, want err bad-request", line, resp)
		}
	}
	if resp := ask("version\n"); resp != "ok "+Version+"\n" {
		t.Fatalf("version after garbage: %q", resp)
	}
	if resp := ask("dh wg static-static " + pk + "\n"); !strings.HasPrefix(resp, "ok ") {
		t.Fatalf("valid dh after garbage: %q", resp)
	}
	// An overlong line: one error, then the agent hangs up.
	if resp := ask(strings.Repeat("x", 2*MaxLine) + "\n"); !strings.HasPrefix(resp, "err bad-request ") {
		t.Fatalf("overlong line: %q", resp)
	}
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("connection still open after an overlong line")
	}
	// A client that hangs up mid-line harms nothing.
	half, _ := net.Dial("unix", path)
	io.WriteString(half, "dh wg stat")
	half.Close()
	c, err := Dial(path, "wg")
	if err != nil {
		t.Fatalf("agent unusable after malformed input: %v", err)
	}
	c.Close()
}

// slowBackend makes DHs with slot "slow" take a while.
type slowBackend struct {
	MemoryBackend
	delay time.Duration
}

type slowStore struct {
	keystore.Store
	delay time.Duration
}

func (s slowStore) DH(ctx context.Context, req keystore.DHRequest) ([32]byte, error) {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return [32]byte{}, ctx.Err()
	}
	return s.Store.DH(ctx, req)
}

func (b *slowBackend) Open(slot string) (keystore.Store, error) {
	k, err := b.MemoryBackend.Open(slot)
	if err != nil || slot != "slow" {
		return k, err
	}
	return slowStore{k, b.delay}, nil
}

// A slow DH occupies its own connection only: DHs of the same client and of
// other slots go on meanwhile, and a caller's deadline is honoured.
func TestSlowStoreDoesNotStall(t *testing.T) {
	backend := &slowBackend{delay: time.Second}
	backend.Generate("slow")
	backend.Generate("fast")
	path := startAgent(t, backend, Policy{})
	slow, err := Dial(path, "slow")
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fast, err := Dial(path, "fast")
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	peer, _ := keystore.GenerateMemory()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		slow.DH(context.Background(), keystore.DHRequest{Purpose: keystore.StaticStatic, Peer: peer.PublicKey()})
	}()
	time.Sleep(50 * time.Millisecond) // the slow DH is in the agent now
	start := time.Now()
	for i := 0; i < 10; i++ {
		dh(t, fast, keystore.InitiatorSE, peer.PublicKey())
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("fast DHs took %v behind a slow one", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := slow.DH(ctx, keystore.DHRequest{Purpose: keystore.StaticStatic, Peer: peer.PublicKey()}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("DH past its deadline: %v", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("cancelled DH returned after %v", d)
	}
	wg.Wait()
}

// Concurrent DHs through one client are all right (run with -race).
func TestConcurrentClient(t *testing.T) {
	path := startAgent(t, &MemoryBackend{}, Policy{})
	c, err := Generate(path, "wg")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				peer, _ := keystore.GenerateMemory()
				got, err := c.DH(context.Background(), keystore.DHRequest{Purpose: keystore.InitiatorSE, Peer: peer.PublicKey()})
				want, _ := peer.DH(context.Background(), keystore.DHRequest{Peer: c.PublicKey()})
				if err != nil || got != want {
					errs <- fmt.Errorf("wrong DH: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// A client outlives an agent restart: its idle connection is dead, and the
// next DH goes over a new one instead of failing a handshake.
func TestAgentRestart(t *testing.T) {
	backend := &MemoryBackend{}
	backend.Generate("wg")
	path := filepath.Join(t.TempDir(), "agent.sock")
	serve := func() *Server {
		ln, err := Listen(path)
		if err != nil {
			t.Fatal(err)
		}
		srv := NewServer(backend, Policy{Logger: quiet})
		go srv.Serve(ln)
		return srv
	}
	srv := serve()
	c, err := Dial(path, "wg")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer, _ := keystore.GenerateMemory()
	want := dh(t, peer, keystore.StaticStatic, c.PublicKey())
	if dh(t, c, keystore.StaticStatic, peer.PublicKey()) != want {
		t.Fatal("DH disagrees")
	}
	srv.Close()
	os.Remove(path)
	srv = serve()
	defer srv.Close()
	if dh(t, c, keystore.StaticStatic, peer.PublicKey()) != want {
		t.Fatal("DH after the restart disagrees")
	}
}
