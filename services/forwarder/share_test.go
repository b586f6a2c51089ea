// SPDX-License-Identifier: Apache-2.0

package forwarder

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/fairshare"
)

// shareValue reads a share metric of the forwarder from the gateway.
func shareValue(t *testing.T, f *fixture, name, limit string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(f.gw.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labels(m)["service"] == "forwarder" && labels(m)["limit"] == limit {
				if m.Counter != nil {
					return m.Counter.GetValue()
				}
				return m.Gauge.GetValue()
			}
		}
	}
	return 0
}

func labels(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

// The attack of the hardening review: one device holds more idle
// connections (4,200) than the forwarder's whole cap (4,096), and every
// other device's connection was closed as "busy". Now the device holds
// its share (fairshare.DefaultConns), the rest is refused and counted at
// the gateway, and another device is served.
func TestOneDeviceCannotLockOthersOut(t *testing.T) {
	f := newFixture(t, Config{})
	g := f.group("share", fleet.GroupSettings{Forwarders: fleet.Forwarders{TCP: fleet.TCPForward{URL: "http://127.0.0.1:1/x", Secret: tcpSecret}}})
	hog, other := f.newDevice(g.ID, nil), f.newDevice(g.ID, nil)

	const attempts = 4200
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hog.ns.Do(func() error { // sockets made on this thread are in the device's namespace
				for i := w; i < attempts; i += 16 {
					c, err := net.DialTimeout("tcp", "100.127.127.100:23080", 10*time.Second)
					if err != nil {
						continue
					}
					mu.Lock()
					conns = append(conns, c)
					mu.Unlock()
				}
				return nil
			})
		}()
	}
	wg.Wait()
	// The other device is served (404: its group has no HTTP route).
	out, err := other.ns.Exec("curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", "http://100.127.127.100:8888/x")
	if err != nil || out != "404" {
		t.Fatalf("another device while one holds %d connections: %v %q", len(conns), err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	// Refused for holding its share, or (dialling faster than its rate)
	// for the rate: either way counted.
	refused := func() float64 {
		return shareValue(t, f, "wirefleet_service_share_refused_total", fairshare.ReasonConns) + shareValue(t, f, "wirefleet_service_share_refused_total", fairshare.ReasonRate)
	}
	for refused() < attempts-fairshare.DefaultConns {
		if time.Now().After(deadline) {
			t.Fatalf("refusals counted: %v of %d attempts over the share", refused(), attempts-fairshare.DefaultConns)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := f.fwd.openConns(); n > fairshare.DefaultConns {
		t.Fatalf("the forwarder holds %d of one device's connections, over its share of %d", n, fairshare.DefaultConns)
	}
	t.Logf("%d connections made, %v refused", len(conns), refused())
}

// A device over its request rate gets 429 for the requests beyond it
// (counted); another device's requests meanwhile pass.
func TestDeviceOverItsRate(t *testing.T) {
	share := fairshare.Limits{PerSecond: 1, Burst: 10}
	f := newFixtureShare(t, Config{}, share)
	g := f.group("rate", fleet.GroupSettings{})
	hog, other := f.newDevice(g.ID, nil), f.newDevice(g.ID, nil)
	const n = 60
	args := []string{"-s", "-w", "%{http_code}\n"} // one connection, n requests
	for i := 0; i < n; i++ {
		args = append(args, "-o", "/dev/null", "http://100.127.127.100:8888/x")
	}
	start := time.Now()
	hogOut, _ := hog.ns.Exec("curl", args...)
	elapsed := time.Since(start)
	codes := strings.Fields(hogOut)
	var limited int
	for _, c := range codes {
		if c == "429" {
			limited++
		}
	}
	// What the bucket allows: its burst, a token a second, and one for
	// the connection itself.
	allowed := share.Burst + int(elapsed.Seconds()+1)*int(share.PerSecond) + 1
	if len(codes) != n || limited < n-allowed {
		t.Fatalf("%d requests in %v: %d answers, %d limited, want at least %d", n, elapsed, len(codes), limited, n-allowed)
	}
	t.Logf("%d of %d requests limited in %v", limited, n, elapsed)
	if shareValue(t, f, "wirefleet_service_share_refused_total", fairshare.ReasonRate) < float64(limited) {
		t.Fatal("the rate refusals are not counted")
	}
	out, err := other.ns.Exec("curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", "http://100.127.127.100:8888/x")
	if err != nil || out != "404" {
		t.Fatalf("the other device while the hog is over its rate: %v %q", err, out)
	}
}
