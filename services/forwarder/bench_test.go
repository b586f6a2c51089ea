// SPDX-License-Identifier: Apache-2.0

package forwarder

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/gateway"
	"github.com/wirefleet/wirefleet/internal/seal"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/services/platform"
	"github.com/wirefleet/wirefleet/wgkey"
	"golang.zx2c4.com/wireguard/conn"
	wgdevice "golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/netstack"
)

// BenchmarkHTTPForwarder measures HTTP forwarder requests per second from
// many devices: each device is golang.zx2c4.com/wireguard on a gVisor
// stack in this process (a real WireGuard tunnel over 127.0.0.1 UDP to the
// gateway), with 4 keep-alive HTTP clients POSTing 256-byte bodies to
// 100.127.127.100:8888; the forwarder signs each request (HMAC and Beam),
// injects a bearer credential and forwards it to an HTTPS destination on
// loopback (the test's CA). "metadata" is the same load on the gateway's
// metadata service (no forwarding): the cost of the tunnel and the stack.
// Run with -benchtime 10000x (b.N requests spread over the devices).
func BenchmarkHTTPForwarder(b *testing.B) {
	for _, devices := range []int{16, 64} {
		for _, target := range []string{"forward", "metadata"} {
			b.Run(fmt.Sprintf("devices=%d/%s", devices, target), func(b *testing.B) {
				benchForwarder(b, devices, 4, target)
			})
		}
	}
}

func benchForwarder(b *testing.B, nDev, perDev int, target string) {
	ctx := context.Background()
	ca := newTestCA(b)
	dest := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	dest.TLS = tlsServerConfig(ca)
	dest.StartTLS()
	b.Cleanup(dest.Close)

	st, err := sqlitestore.Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	ks, _ := keystore.GenerateMemory()
	key, _ := seal.GenerateKey()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := controlplane.New(st, controlplane.Config{GatewayPublicKey: func() wgkey.Public { return ks.PublicKey() }, Logger: log, Secrets: key})
	g, err := svc.CreateGroup(ctx, controlplane.System, "bench", fleet.GroupSettings{Forwarders: fleet.Forwarders{HTTP: []fleet.HTTPForward{{
		PathPrefix: "/", URL: dest.URL + "/in", Secret: "bench-signing-secret-01", CAPEM: ca.pem,
		BeamSignature: fleet.BeamSignature{Fields: []string{"imsi"}, Secret: "bench-beam-psk"},
		Credential:    fleet.Credential{Type: fleet.CredentialBearer, Value: "bench-token"}}}}})
	if err != nil {
		b.Fatal(err)
	}
	fwd := New(Config{Egress: testEgress, Secrets: key, Logger: log, Timeout: 30 * time.Second})
	gw, err := gateway.New(gateway.Config{ControlPlane: svc, KeyStore: ks, Logger: log, Services: []platform.Service{fwd}})
	if err != nil {
		b.Fatal(err)
	}
	if err := gw.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { gw.Close() })
	gwPub := ks.PublicKey()

	url := "http://100.127.127.100:8888/bench"
	if target == "metadata" {
		url = "http://" + gateway.MetadataAddr.String() + "/v1/subscriber"
	}
	var clients []*http.Client
	for i := 0; i < nDev; i++ {
		priv, _ := wgkey.NewPrivate()
		sim, _, err := svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{GroupID: g.ID, PublicKey: priv.Public()})
		if err != nil {
			b.Fatal(err)
		}
		tdev, tnet, err := netstack.CreateNetTUN([]netip.Addr{sim.Address}, nil, 1420)
		if err != nil {
			b.Fatal(err)
		}
		dev := wgdevice.NewDevice(tdev, conn.NewStdNetBind(), wgdevice.NewLogger(wgdevice.LogLevelError, "dev: "))
		b.Cleanup(dev.Close)
		uapi := fmt.Sprintf("private_key=%x\nlisten_port=0\npublic_key=%x\nendpoint=127.0.0.1:%d\nallowed_ip=100.127.0.0/16\n", priv[:], gwPub[:], gw.Port())
		if err := dev.IpcSet(uapi); err != nil {
			b.Fatal(err)
		}
		if err := dev.Up(); err != nil {
			b.Fatal(err)
		}
		c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return tnet.DialContext(ctx, network, addr)
			},
			MaxIdleConnsPerHost: perDev,
		}}
		b.Cleanup(c.CloseIdleConnections)
		clients = append(clients, c)
	}
	body := make([]byte, 256)
	do := func(c *http.Client) error {
		resp, err := c.Post(url, "application/octet-stream", bytesReader(body))
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	if target == "metadata" {
		do = func(c *http.Client) error {
			resp, err := c.Get(url)
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		}
	}
	// Every device connects (handshake) and warms its connections.
	var wg sync.WaitGroup
	errs := make(chan error, nDev*perDev)
	for _, c := range clients {
		for j := 0; j < perDev; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				for try := 0; try < 50; try++ {
					if err = do(c); err == nil {
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
				errs <- err
			}()
		}
	}
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatalf("warm-up: %v", err)
	default:
	}

	var next, failed atomic.Int64
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	for _, c := range clients {
		for j := 0; j < perDev; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(b.N) {
					if err := do(c); err != nil {
						failed.Add(1)
					}
				}
			}()
		}
	}
	wg.Wait()
	el := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d of %d requests failed", failed.Load(), b.N)
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "req/s")
	// CPU per request (the whole process: devices, gateway, forwarder,
	// destination) depends far less than req/s on what else the machine runs.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/req")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
