// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
)

const nobody = 65534

// The real wirefleet-agent binary in userspace mode, run as an
// unprivileged user (nobody, when the test runs as root): metadata is
// fetched through its HTTP proxy and through a forward, and a local HTTP
// server it exposes is
// reached from a second device of its group.
func TestUserspaceAgentUnprivileged(t *testing.T) {
	// Not t.TempDir: its parent is private to root, and nobody must reach
	// the binary and its config.
	dir, err := os.MkdirTemp("", "wirefleet-agent-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "wirefleet-agent")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/wirefleet/wirefleet/cmd/wirefleet-agent").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	p := newPlatform(t)
	ctx := context.Background()
	grp, _ := p.svc.CreateGroup(ctx, controlplane.System, "fleet", fleet.GroupSettings{DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup}})
	_, secret, _ := p.svc.CreateAuthKey(ctx, controlplane.System, controlplane.AuthKeySpec{GroupID: grp.ID, MaxUses: 2})

	// Device 1: the binary, as nobody, bootstrapping itself.
	etc := filepath.Join(dir, "etc")
	os.Mkdir(etc, 0o700)
	cfgPath := filepath.Join(etc, "agent.json")
	asUser := func(cmd *exec.Cmd) {
		if os.Geteuid() == 0 {
			os.Chown(etc, nobody, nobody)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		}
	}
	boot := exec.Command(bin, "bootstrap", "--server", p.api, "--config", cfgPath)
	boot.Env = append(os.Environ(), "WIREFLEET_AUTHKEY="+secret)
	asUser(boot)
	if out, err := boot.CombinedOutput(); err != nil {
		t.Fatalf("bootstrap as an unprivileged user: %v\n%s", err, out)
	}
	local := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "served on device 1") }))
	defer local.Close()
	proxyAddr, fwdAddr := freeTCP(t), freeTCP(t)
	up := exec.Command(bin, "up", "--userspace", "--config", cfgPath, "--socks", "", "--http-proxy", proxyAddr,
		"--forward", fwdAddr+"=100.127.100.127:80",
		"--expose", "8080="+strings.TrimPrefix(local.URL, "http://"))
	up.Stderr = os.Stderr
	asUser(up)
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		up.Process.Signal(syscall.SIGTERM)
		up.Wait()
	}()
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}

	// Metadata through the agent's HTTP proxy.
	pu, _ := url.Parse("http://" + proxyAddr)
	hc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}, Timeout: 5 * time.Second}
	var body string
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := hc.Get("http://100.127.100.127/v1/subscriber"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if body = string(b); resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no metadata through the proxy; last answer %q", body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(body, cfg.SIMID) {
		t.Fatalf("metadata answer %q lacks SIM %s", body, cfg.SIMID)
	}

	// A forward: a local port that is the metadata service.
	if got := get(t, &http.Client{Timeout: 5 * time.Second}, "http://"+fwdAddr+"/v1/subscriber"); !strings.Contains(got, cfg.SIMID) {
		t.Fatalf("metadata through the forward: %q", got)
	}

	// Device 2, in this process, reaches device 1's exposed service.
	cfg2, _ := p.bootstrapAgentWith(t, secret)
	tn2, err := Up(ctx, cfg2, UpOptions{Userspace: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer tn2.Close()
	dc := &http.Client{Transport: &http.Transport{DialContext: tn2.Net().DialContext}, Timeout: 5 * time.Second}
	target := fmt.Sprintf("http://%s:8080/", cfg.Address.Addr())
	if got := get(t, dc, target); got != "served on device 1" {
		t.Fatalf("exposed service from device 2: %q", got)
	}
	if os.Geteuid() == 0 {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", up.Process.Pid))
		if !strings.Contains(string(b), fmt.Sprintf("Uid:\t%d", nobody)) {
			t.Fatal("the agent did not run as nobody")
		}
	}
}

func freeTCP(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
