// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/agent"
	"github.com/wirefleet/wirefleet/engine"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/keystore/agentstore"
	"github.com/wirefleet/wirefleet/keystore/pkcs11store/softhsmtest"
	"golang.zx2c4.com/wireguard/conn"
)

// maxBinary is the size budget of a stripped agent binary for every
// target the issue names.
const maxBinary = 12_000_000

// TestCrossCompile builds the stripped agent for the device targets and
// holds each to the size budget.
func TestCrossCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiling four targets is slow")
	}
	targets := []struct{ arch, arm string }{{"amd64", ""}, {"arm64", ""}, {"arm", "7"}, {"mipsle", ""}}
	for _, tg := range targets {
		out := filepath.Join(t.TempDir(), "agent-"+tg.arch)
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, ".")
		cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+tg.arch, "CGO_ENABLED=0")
		if tg.arm != "" {
			cmd.Env = append(cmd.Env, "GOARM="+tg.arm)
		}
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", tg.arch, err, b)
		}
		fi, err := os.Stat(out)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("linux/%s%s: %d bytes stripped", tg.arch, map[bool]string{true: "v" + tg.arm}[tg.arm != ""], fi.Size())
		if fi.Size() >= maxBinary {
			t.Errorf("linux/%s: %d bytes, budget %d", tg.arch, fi.Size(), maxBinary)
		}
	}
}

// TestIdleRSS runs the real binary in userspace mode, connected to a
// gateway, and measures its resident memory once idle.
func TestIdleRSS(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "wirefleet-agent")
	if b, err := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}
	// The gateway: our engine, knowing the device's key.
	keyPath := filepath.Join(dir, "agent.key")
	devKS, err := keystore.CreateFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	gwKS, _ := keystore.GenerateMemory()
	gw, err := engine.New(engine.Config{KeyStore: gwKS, Bind: conn.NewStdNetBind(), Handler: engine.HandlerFunc(func([]engine.InboundPacket) {})})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Up(); err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	devAddr := netip.MustParsePrefix("10.128.0.3/32")
	gw.AddPeer(engine.PeerConfig{PublicKey: devKS.PublicKey(), AllowedIPs: []netip.Prefix{devAddr}})
	cfg := &agent.Config{
		SIMID: "sim-rss", IMSI: "999990000000003", Address: devAddr,
		GatewayEndpoint: fmt.Sprintf("127.0.0.1:%d", gw.Port()), GatewayPublicKey: gw.PublicKey(),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("100.127.0.0/16")}, KeyRef: "file:" + keyPath,
	}
	cfgPath := filepath.Join(dir, "agent.json")
	if err := cfg.Save(cfgPath); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "up", "--userspace", "--config", cfgPath, "--socks", "127.0.0.1:0", "--http-proxy", "127.0.0.1:0")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := agent.ReadStatus(cfgPath + ".status")
		if err == nil && st.Connected {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent did not connect: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // idle
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	var rssKB int
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			rssKB, _ = strconv.Atoi(strings.Fields(v)[0])
		}
	}
	t.Logf("idle RSS %d KiB", rssKB)
	if rssKB == 0 || rssKB >= 20*1024 {
		t.Fatalf("idle RSS %d KiB, budget 20 MiB", rssKB)
	}
	// SIGTERM: clean shutdown removes the status file.
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("agent exit after SIGTERM: %v", err)
	}
	if _, err := os.Stat(cfgPath + ".status"); !os.IsNotExist(err) {
		t.Fatal("status file left after shutdown")
	}
}

func TestMain(m *testing.M) { softhsmtest.Main(m) }

// keyd serves a SoftHSM token's keys over the key-agent socket: a client
// generates a key in a slot, its DH agrees with software, and responder-es
// is refused (initiator-only by default).
func TestKeyd(t *testing.T) {
	tok := softhsmtest.NewToken(t, "keyd")
	dir := t.TempDir()
	bin := filepath.Join(dir, "wirefleet-agent")
	if b, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}
	pin := filepath.Join(dir, "pin")
	os.WriteFile(pin, []byte(softhsmtest.PIN), 0o600)
	sock := filepath.Join(dir, "keyd.sock")
	cmd := exec.Command(bin, "keyd", "--socket", sock, "--module", tok.Module, "--token", tok.Token, "--pin-file", pin)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("keyd did not create its socket")
		}
		time.Sleep(50 * time.Millisecond)
	}
	c, err := agentstore.Generate(sock, "wg")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer, _ := keystore.GenerateMemory()
	got, err := c.DH(context.Background(), keystore.DHRequest{Purpose: keystore.StaticStatic, Peer: peer.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := peer.DH(context.Background(), keystore.DHRequest{Purpose: keystore.StaticStatic, Peer: c.PublicKey()})
	if got != want {
		t.Fatal("keyd's DH does not agree with software")
	}
	if _, err := c.DH(context.Background(), keystore.DHRequest{Purpose: keystore.ResponderES, Peer: peer.PublicKey()}); err == nil {
		t.Fatal("keyd answered responder-es by default")
	}
}
