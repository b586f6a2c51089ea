// SPDX-License-Identifier: Apache-2.0

package datastore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	wgdevice "golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/netstack"

	"github.com/wirefleet/wirefleet/controlplane/store/pgstore/pgtest"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/wgkey"
)

// daemon is a wirefleetd process (the real binary) on loopback ports.
type daemon struct {
	t       *testing.T
	bin     string
	dir     string
	apiPort int
	wgPort  int
	cmd     *exec.Cmd
	out     *bytes.Buffer
	token   string
}

// buildDaemon builds cmd/wirefleetd once per test.
func buildDaemon(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "wirefleetd")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/wirefleet/wirefleet/cmd/wirefleetd").CombinedOutput()
	if err != nil {
		t.Fatalf("building wirefleetd: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		return pc.LocalAddr().(*net.UDPAddr).Port
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// start runs the daemon and waits for its API.
func (d *daemon) start(extra ...string) {
	t := d.t
	t.Helper()
	d.out = &bytes.Buffer{}
	args := append([]string{"--data", d.dir, "--api-listen", fmt.Sprintf("127.0.0.1:%d", d.apiPort), "--wg-listen", fmt.Sprintf(":%d", d.wgPort),
		"--endpoint", fmt.Sprintf("127.0.0.1:%d", d.wgPort), "--log-level", "warn", "--audit-every", "0"}, extra...)
	d.cmd = exec.Command(d.bin, args...)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd := d.cmd
	t.Cleanup(func() { // by PID, whatever happened
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", d.apiPort))
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("wirefleetd did not come up: %v\n%s", err, d.out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	tok, err := os.ReadFile(filepath.Join(d.dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	d.token = strings.TrimSpace(string(tok))
}

// metrics returns the daemon's /metrics page.
func (d *daemon) metrics() string {
	d.t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", d.apiPort))
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// kill sends SIGKILL to the daemon's PID and reaps it.
func (d *daemon) kill() {
	d.cmd.Process.Signal(syscall.SIGKILL)
	d.cmd.Wait()
}

// call is an API request; out receives the JSON answer.
func (d *daemon) call(method, path string, body, out any) {
	t := d.t
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", d.apiPort, path), rd)
	req.Header.Set("Authorization", "Bearer "+d.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// tunnel is an in-process WireGuard device (golang.zx2c4.com/wireguard on
// a userspace stack) holding a SIM's key, connected to the gateway over
// loopback: an HTTP client whose connections go through the tunnel.
func tunnel(t testing.TB, addr netip.Addr, priv wgkey.Private, gwPub wgkey.Public, gwPort int) *http.Client {
	t.Helper()
	tunDev, tnet, err := netstack.CreateNetTUN([]netip.Addr{addr}, nil, 1420)
	if err != nil {
		t.Fatal(err)
	}
	dev := wgdevice.NewDevice(tunDev, conn.NewStdNetBind(), wgdevice.NewLogger(wgdevice.LogLevelError, "dev: "))
	t.Cleanup(dev.Close)
	if err := dev.IpcSet(fmt.Sprintf("private_key=%x\nlisten_port=0\npublic_key=%x\nendpoint=127.0.0.1:%d\nallowed_ip=100.127.0.0/16\npersistent_keepalive_interval=1\n", priv[:], gwPub[:], gwPort)); err != nil {
		t.Fatal(err)
	}
	if err := dev.Up(); err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: tnet.DialContext, MaxIdleConnsPerHost: 64}}
}

// TestKillDuringBurst: the real wirefleetd is killed with SIGKILL while
// devices' writes stream in through a WireGuard tunnel; after a restart,
// every write it answered 201 is in the store.
func TestKillDuringBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs wirefleetd")
	}
	bin := buildDaemon(t)
	t.Run("sqlite", func(t *testing.T) { killDuringBurst(t, bin) })
	t.Run("postgres", func(t *testing.T) {
		// A durable server: it outlives wirefleetd, as a real one would.
		pg := pgtest.StartDurable(t)
		killDuringBurst(t, bin, "--store", pg.NewDatabase(t))
	})
}

func killDuringBurst(t *testing.T, bin string, flags ...string) {
	d := &daemon{t: t, bin: bin, dir: t.TempDir(), apiPort: freePort(t, "tcp"), wgPort: freePort(t, "udp")}
	d.start(flags...)
	var g fleet.Group
	d.call("POST", "/api/v1/groups", map[string]any{"name": "burst", "settings": map[string]any{"dataStore": map[string]any{"enabled": true}}}, &g)
	priv, err := wgkey.NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	pub := priv.Public()
	var sim fleet.SIM
	d.call("POST", "/api/v1/sims", map[string]any{"groupId": g.ID, "publicKey": pub.String()}, &sim)
	var sess struct {
		GatewayPublicKey wgkey.Public `json:"gatewayPublicKey"`
	}
	// The gateway's key, as the wg-quick export would give it.
	var export string
	{
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/api/v1/sims/%s/wireguard-config", d.apiPort, sim.ID), nil)
		req.Header.Set("Authorization", "Bearer "+d.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		export = string(b)
	}
	for _, line := range strings.Split(export, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == "PublicKey" {
			if err := sess.GatewayPublicKey.UnmarshalText([]byte(strings.TrimSpace(v))); err != nil {
				t.Fatal(err)
			}
		}
	}
	client := tunnel(t, sim.Address, priv, sess.GatewayPublicKey, d.wgPort)

	// Tunnel up: the first write, retried.
	post := func(body string) (int, error) {
		resp, err := client.Post("http://100.127.111.111/", "application/json", strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	var first error
	for try := 0; ; try++ {
		code, err := post(`{"warmup":true}`)
		if err == nil && code == 201 {
			break
		}
		if try == 30 {
			t.Fatalf("no write through the tunnel: %d %v %v\n%s", code, err, first, d.out)
		}
		first = err
		time.Sleep(300 * time.Millisecond)
	}

	// The write is counted in /metrics.
	if m := d.metrics(); !strings.Contains(m, `wirefleet_datastore_records_total{transport="http"} 1`) {
		t.Fatalf("metrics after one write:\n%s", grepLines(m, "wirefleet_datastore"))
	}

	// The burst: writers post until the daemon is gone.
	const writers = 32
	var mu sync.Mutex
	acked := map[string]bool{"warmup": true} // "w/n" of acknowledged writes
	var nAcked, nFailed atomic.Int64
	const killAt = 400
	killed := make(chan struct{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				// The kill is sent the moment the 400th answer arrives, so
				// other writes are in flight: read, being committed, or
				// answered on their way back.
				code, err := post(fmt.Sprintf(`{"w":%d,"n":%d,"temp":21.5}`, w, n))
				if err == nil && code == 201 {
					mu.Lock()
					acked[fmt.Sprintf("%d/%d", w, n)] = true
					mu.Unlock()
					if nAcked.Add(1) == killAt {
						d.cmd.Process.Signal(syscall.SIGKILL)
						close(killed)
					}
				} else {
					nFailed.Add(1)
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	select {
	case <-killed:
	case <-time.After(120 * time.Second):
		t.Fatalf("only %d writes acknowledged in 2 minutes", nAcked.Load())
	}
	d.cmd.Wait()
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("acknowledged %d writes (%d at the kill), %d failed or unanswered", len(acked), killAt, nFailed.Load())

	d.start(flags...)
	stored := map[string]bool{}
	cursor := ""
	for {
		var p struct {
			Items []struct{ Payload json.RawMessage }
			Next  string
		}
		d.call("GET", "/api/v1/sims/"+sim.ID+"/data?limit=1000&cursor="+cursor, nil, &p)
		for _, it := range p.Items {
			var v struct {
				W, N   *int
				Warmup bool
			}
			if err := json.Unmarshal(it.Payload, &v); err != nil {
				t.Fatal(err)
			}
			key := "warmup"
			if !v.Warmup {
				key = fmt.Sprintf("%d/%d", *v.W, *v.N)
			}
			if stored[key] {
				t.Fatalf("record stored twice: %s", key)
			}
			stored[key] = true
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	missing := 0
	for body := range acked {
		if !stored[body] {
			missing++
			if missing < 5 {
				t.Errorf("acknowledged but lost: %s", body)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged writes lost", missing, len(acked))
	}
	t.Logf("after the restart: %d records, every acknowledged one among them (%d stored without an answer reaching the device)", len(stored), len(stored)-len(acked))
}
