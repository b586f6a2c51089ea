// SPDX-License-Identifier: Apache-2.0

package wggo

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/wirefleet/wirefleet/internal/enginebench"
)

// capped is the wireguard-go subject with a small peer cap, to test capping
// without configuring 65,536 peers.
type capped struct{ Subject }

func (capped) Name() string  { return "capped-wireguard-go" }
func (capped) MaxPeers() int { return 50 }

// ours is the wireguard-go subject under our engine's name, so the report's
// ratio logic can be tested before our engine exists.
type ours struct{ Subject }

func (ours) Name() string { return enginebench.Ours }

var testSubjects = []enginebench.Subject{Subject{}, capped{}, ours{}}

// TestMain lets this test binary serve as the memory child: enginebench.Memory
// re-executes os.Executable, which in a test is the test binary.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == enginebench.MemoryChildCommand {
		if err := enginebench.RunMemoryChild(testSubjects, os.Args[2:]); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestMemoryChild(t *testing.T) {
	hs, err := enginebench.NewHandshakeSet(Initiations{}, 200)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "set")
	if err := hs.WriteFile(file); err != nil {
		t.Fatal(err)
	}

	m, err := enginebench.Memory(Subject{}, file, 200, true)
	if err != nil {
		t.Fatal(err)
	}
	if m.Peers != 200 || m.Capped || m.Sessions != 200 || m.Active == nil {
		t.Fatalf("peers %d capped %v sessions %d active %v; want 200 false 200 set", m.Peers, m.Capped, m.Sessions, m.Active != nil)
	}
	// wireguard-go runs two goroutines per peer: the sample must see them.
	if d := m.Configured.Goroutines - m.Baseline.Goroutines; d < 400 {
		t.Fatalf("goroutines grew by %d for 200 peers, want ≥ 400", d)
	}
	if m.HeapPerPeer <= 0 || m.RSSPerActiveSession <= 0 {
		t.Fatalf("no memory attributed: heap/peer %v, RSS/session %v", m.HeapPerPeer, m.RSSPerActiveSession)
	}

	// Sessions asked for, but a capped count gets none.
	c, err := enginebench.Memory(capped{}, file, 200, true)
	if err != nil {
		t.Fatal(err)
	}
	if c.Peers != 50 || !c.Capped || c.Requested != 200 || c.Active != nil {
		t.Fatalf("capped: peers %d capped %v requested %d; want 50 true 200, no sessions", c.Peers, c.Capped, c.Requested)
	}
}
