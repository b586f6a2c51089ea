// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/engine"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/keystore/pkcs11store"
	"github.com/wirefleet/wirefleet/keystore/pkcs11store/softhsmtest"
)

// A slow key store (the token's configurable delay stands in for a secure
// element on a slow bus) does not stall the agent: Up returns without
// waiting for the handshake, status answers while a handshake waits on it,
// and while a rekey handshake waits, traffic on the established session
// through the real gateway keeps flowing.
func TestSlowKeyStoreDoesNotStallAgent(t *testing.T) {
	const delay = 1500 * time.Millisecond
	tokCfg := softhsmtest.NewToken(t, "slow-agent")
	dir := t.TempDir()
	pinFile := filepath.Join(dir, "pin")
	os.WriteFile(pinFile, []byte(softhsmtest.PIN), 0o600)
	ref := "pkcs11:token=" + url.PathEscape(tokCfg.Token) + ";object=wg?module-path=" + tokCfg.Module + "&pin-source=" + pinFile
	p := newPlatform(t)
	_, secret, _ := p.svc.CreateAuthKey(context.Background(), controlplane.System, controlplane.AuthKeySpec{MaxUses: 1})
	cfg, err := Bootstrap(context.Background(), BootstrapOptions{Server: p.api, AuthKey: secret, ConfigPath: filepath.Join(dir, "agent.json"), KeyRef: ref})
	if err != nil {
		t.Fatal(err)
	}
	slowCfg := tokCfg
	slowCfg.DHDelay = delay
	tok, err := pkcs11store.OpenToken(slowCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	key, err := tok.Open("wg")
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	tn, err := Up(context.Background(), cfg, UpOptions{Userspace: true, Logger: quiet, KeyStore: keystore.InitiatorOnly{Store: key}})
	if err != nil {
		t.Fatal(err)
	}
	defer tn.Close()
	// Up pays for one DH: the engine caches the static-static DH with the
	// gateway when the peer is added. It does not wait for the handshake,
	// which needs a second one (initiator-se, when the response arrives).
	if d := time.Since(start); d >= 2*delay {
		t.Fatalf("Up took %v: it waited for the handshake on the %v token", d, delay)
	}
	// The first handshake is waiting on the token: status still answers.
	statusStart := time.Now()
	if st := tn.Status(); st.Connected {
		t.Fatal("connected before the token answered")
	}
	if d := time.Since(statusStart); d > delay/10 {
		t.Fatalf("status took %v while a handshake waited on the token", d)
	}
	ping := pinger(t, tn)
	for deadline := time.Now().Add(20 * time.Second); !ping(1); {
		if time.Now().After(deadline) {
			t.Fatal("no answer through the gateway with a slow token")
		}
	}
	if d := time.Since(start); d < delay {
		t.Fatalf("first answer after %v: the %v delay was not applied", d, delay)
	}

	// The agent's watchdog, asking for a handshake each second while none
	// had completed, queued behind the slow DH; it must not have started a
	// second handshake on the heels of the first (the gateway would have
	// dropped the session the agent had just begun to send on).
	time.Sleep(engine.RekeyTimeout) // also: a new initiation is allowed again
	if n := tn.eng.Counters().HandshakesCompleted; n != 1 {
		t.Fatalf("%d handshakes completed, want 1", n)
	}
	for seq := 100; seq < 105; seq++ {
		if !ping(seq) {
			t.Fatalf("query %d unanswered on the first session", seq)
		}
	}

	// A rekey handshake now waits on the token; the session it replaces
	// carries traffic meanwhile (each query is answered within 200 ms).
	first := tn.Status().LastHandshake
	tn.eng.Initiate(tn.gateway)
	time.Sleep(delay / 5)
	for seq := 2; seq < 7; seq++ {
		if !ping(seq) {
			t.Fatalf("query %d unanswered while a handshake waited on the token (agent %+v, gateway %+v)", seq, tn.eng.Counters(), p.gw.Engine().Counters())
		}
	}
	if st := tn.Status(); !st.LastHandshake.Equal(first) {
		t.Fatal("the rekey finished before the queries: the test did not overlap them with the slow DH")
	}
	for deadline := time.Now().Add(20 * time.Second); tn.Status().LastHandshake.Equal(first); {
		if time.Now().After(deadline) {
			t.Fatal("the rekey handshake never completed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !ping(8) {
		t.Fatal("no answer on the new session")
	}
}
