// SPDX-License-Identifier: Apache-2.0

package forwarder

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
)

// seen is one request a destination received.
type seen struct {
	method, path, query string
	header              http.Header
	body                []byte
}

// destination is an HTTPS server on loopback with the test's own CA,
// recording what reaches it.
type destination struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []seen
}

func newDestination(t *testing.T, ca testCA, answer func(r *http.Request, body []byte) string) *destination {
	d := &destination{}
	d.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		d.mu.Lock()
		d.got = append(d.got, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), b})
		d.mu.Unlock()
		io.WriteString(w, answer(r, b))
	}))
	d.srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.cert}}
	d.srv.StartTLS()
	t.Cleanup(d.srv.Close)
	return d
}

func (d *destination) requests() []seen {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]seen(nil), d.got...)
}

// hmacHex is the receiver's side of the signature, written independently
// of the forwarder's code.
func hmacHex(secret, msg string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

const (
	httpSecret  = "route-signing-secret-0001"
	beamPSK     = "beam-pre-shared-key-0002"
	cloudToken  = "cloud-bearer-token-0003"
	tcpSecret   = "tcp-signing-secret-00004"
	udpSecret   = "udp-signing-secret-00005"
	s2Secret    = "sensors-signing-secret-06"
	s2APIKey    = "sensors-api-key-value-07"
	deviceForge = "device-forged-credential"
)

// From a device namespace (Debian wireguard-go, curl, nc): an HTTPS
// destination with its own CA receives identity headers, a valid
// signature and Beam signature, the stored credential and never one the
// device sent; TCP to TLS with a first line of identity; TCP messages to
// HTTPS; UDP to HTTPS as JSON; a destination down gives 502 with a reason;
// the 64 KiB limit closes the connection; no secret reaches the logs.
func TestForwardersEndToEnd(t *testing.T) {
	f := newFixture(t, Config{Timeout: 5 * time.Second})
	ca := newTestCA(t)

	cloud := newDestination(t, ca, func(r *http.Request, body []byte) string {
		if strings.HasPrefix(r.URL.Path, "/udp") {
			return "pong"
		}
		return "ok from cloud: " + string(body)
	})
	// A TLS server (the test's CA) that records the first line and echoes
	// the rest in upper case.
	tlsLn, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{ca.cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tlsLn.Close() })
	firstLines := make(chan string, 4)
	go func() {
		for {
			c, err := tlsLn.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				firstLines <- line
				for {
					l, err := r.ReadString('\n')
					if l != "" {
						io.WriteString(c, "ECHO "+strings.ToUpper(l))
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	down := freePort(t)

	meters := f.group("meters", fleet.GroupSettings{Forwarders: fleet.Forwarders{
		HTTP: []fleet.HTTPForward{
			{PathPrefix: "/cloud", URL: cloud.srv.URL + "/ingest", Secret: httpSecret, CAPEM: ca.pem,
				BeamSignature: fleet.BeamSignature{Fields: []string{"imsi", "imei"}, Secret: beamPSK},
				Credential:    fleet.Credential{Type: fleet.CredentialBearer, Value: cloudToken}},
			{PathPrefix: "/down", URL: fmt.Sprintf("http://127.0.0.1:%d/x", down), Secret: httpSecret},
		},
		TCP: fleet.TCPForward{URL: "tls://" + tlsLn.Addr().String(), Secret: tcpSecret, FirstLineIdentity: true, CAPEM: ca.pem},
		UDP: fleet.UDPForward{URL: cloud.srv.URL + "/udp", Secret: udpSecret, CAPEM: ca.pem},
	}})
	sensors := f.group("sensors", fleet.GroupSettings{Forwarders: fleet.Forwarders{
		TCP: fleet.TCPForward{URL: cloud.srv.URL + "/tcp", Secret: s2Secret, CAPEM: ca.pem,
			Credential: fleet.Credential{Type: fleet.CredentialHeader, Header: "X-Api-Key", Value: s2APIKey}},
	}})
	dev := f.newDevice(meters.ID, map[string]string{"imei": "860000012345678"})
	dev2 := f.newDevice(sensors.ID, nil)

	t.Run("HTTPS destination gets identity, signatures, the stored credential only", func(t *testing.T) {
		out, err := dev.ns.Exec("curl", "-sS", "--max-time", "15", "-w", "\n%{http_code}",
			"-H", "Authorization: Bearer "+deviceForge, "-H", "X-Wirefleet-Imsi: 999990000009999", "-H", "X-Soracom-Imsi: 440000000000000",
			"-H", "X-Wirefleet-Signature: v1=forged", "-H", "Cookie: session="+deviceForge, "-H", "X-Forwarded-For: 1.2.3.4",
			"-H", "Content-Type: text/plain", "-d", "temp=21", "http://100.127.127.100:8888/cloud/readings?unit=c")
		if err != nil || !strings.HasSuffix(out, "\n200") || !strings.Contains(out, "ok from cloud: temp=21") {
			t.Fatalf("curl: %v %q", err, out)
		}
		reqs := cloud.requests()
		if len(reqs) != 1 {
			t.Fatalf("destination got %d requests", len(reqs))
		}
		r := reqs[0]
		if r.method != "POST" || r.path != "/ingest/readings" || r.query != "unit=c" || string(r.body) != "temp=21" || r.header.Get("Content-Type") != "text/plain" {
			t.Fatalf("destination got %s %s?%s %q %v", r.method, r.path, r.query, r.body, r.header)
		}
		h := r.header
		if h.Get(HeaderSIMID) != dev.sim.ID || h.Get(HeaderIMSI) != dev.sim.IMSI || h.Get(HeaderGroup) != "meters" {
			t.Fatalf("identity headers %v, want SIM %s IMSI %s", h, dev.sim.ID, dev.sim.IMSI)
		}
		if got := h.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+cloudToken {
			t.Fatalf("Authorization %q, want the stored credential only", got)
		}
		for k, vs := range h {
			for _, v := range vs {
				if strings.Contains(v, deviceForge) || strings.Contains(v, "forged") || v == "999990000009999" || v == "440000000000000" || v == "1.2.3.4" {
					t.Fatalf("the destination sees a header the device forged: %s: %s", k, v)
				}
			}
		}
		ts := h.Get(HeaderTimestamp)
		canonical := strings.Join([]string{"wirefleet-signature-v1", ts, dev.sim.ID, dev.sim.IMSI, "meters", "POST", "/ingest/readings?unit=c", sha256Hex([]byte("temp=21"))}, "\n")
		if want := "v1=" + hmacHex(httpSecret, canonical); h.Get(HeaderSignature) != want {
			t.Fatalf("signature %q, want %q", h.Get(HeaderSignature), want)
		}
		beamTS := h.Get("X-Soracom-Timestamp")
		beam := sha256.Sum256([]byte(beamPSK + "x-soracom-imei=860000012345678" + "x-soracom-imsi=" + dev.sim.IMSI + "x-soracom-timestamp=" + beamTS))
		if h.Get("X-Soracom-Signature") != hex.EncodeToString(beam[:]) || h.Get("X-Soracom-Imsi") != dev.sim.IMSI || h.Get("X-Soracom-Imei") != "860000012345678" || h.Get("X-Soracom-Signature-Version") != "20151001" {
			t.Fatalf("Beam headers %v", h)
		}
	})

	t.Run("over IPv6, the same identity", func(t *testing.T) {
		o6, err := f.svc.Overlay6(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		n := len(cloud.requests())
		out, err := dev.ns.Exec("curl", "-sS", "--max-time", "15", "-w", "\n%{http_code}", "-H", "Content-Type: text/plain", "-d", "temp=6",
			"http://["+o6.Addr(Addr).String()+"]:8888/cloud/readings")
		if err != nil || !strings.HasSuffix(out, "\n200") || !strings.Contains(out, "ok from cloud: temp=6") {
			t.Fatalf("curl over IPv6: %v %q", err, out)
		}
		reqs := cloud.requests()
		if len(reqs) != n+1 {
			t.Fatalf("destination got %d requests, want %d", len(reqs), n+1)
		}
		if h := reqs[n].header; h.Get(HeaderSIMID) != dev.sim.ID || h.Get(HeaderIMSI) != dev.sim.IMSI || h.Get(HeaderGroup) != "meters" {
			t.Fatalf("identity headers over IPv6 %v, want SIM %s", h, dev.sim.ID)
		}
	})

	t.Run("destination down gives 502 with a reason", func(t *testing.T) {
		out, _ := dev.ns.Exec("curl", "-sS", "--max-time", "15", "-w", "\n%{http_code}", "http://100.127.127.100:8888/down/anything")
		if !strings.HasSuffix(out, "\n502") || !strings.Contains(out, "unreachable") || !strings.Contains(out, "refused") {
			t.Fatalf("curl: %q", out)
		}
		if n := counterValue(f.fwd.m.errors.WithLabelValues(kindHTTP, "unreachable")); n != 1 {
			t.Fatalf("unreachable errors counted: %v", n)
		}
		// A path climbing out of the route's base path never leaves.
		before := len(cloud.requests())
		out, _ = dev.ns.Exec("curl", "-sS", "--max-time", "15", "--path-as-is", "-w", "\n%{http_code}", "http://100.127.127.100:8888/cloud/../admin")
		if !strings.HasSuffix(out, "\n400") || len(cloud.requests()) != before {
			t.Fatalf("curl /cloud/../admin: %q", out)
		}
		out, _ = dev.ns.Exec("curl", "-sS", "--max-time", "15", "-w", "\n%{http_code}", "http://100.127.127.100:8888/elsewhere")
		if !strings.HasSuffix(out, "\n404") || !strings.Contains(out, "no_route") {
			t.Fatalf("curl without a route: %q", out)
		}
	})

	t.Run("TCP to TLS with a first line of identity", func(t *testing.T) {
		out, err := dev.sh("printf 'hello\\n' | nc -N -w 10 100.127.127.100 23080")
		if err != nil || strings.TrimSpace(out) != "ECHO HELLO" {
			t.Fatalf("nc: %v %q", err, out)
		}
		line := <-firstLines
		var ts int64
		var sim, imsi, group, sig string
		if _, err := fmt.Sscanf(line, "simId=%s imsi=%s group=%s timestamp=%d signature=v1=%s\n", &sim, &imsi, &group, &ts, &sig); err != nil {
			t.Fatalf("first line %q: %v", line, err)
		}
		canonical := strings.Join([]string{"wirefleet-signature-v1", fmt.Sprint(ts), dev.sim.ID, dev.sim.IMSI, "meters", "TCP", tlsLn.Addr().String(), sha256Hex(nil)}, "\n")
		if sim != dev.sim.ID || imsi != dev.sim.IMSI || group != "meters" || sig != hmacHex(tcpSecret, canonical) {
			t.Fatalf("first line %q does not verify", line)
		}
	})

	t.Run("UDP to HTTPS as JSON", func(t *testing.T) {
		out, err := dev.sh("printf 'ping' | nc -u -w 3 100.127.127.100 23080")
		if !strings.Contains(out, "pong") {
			t.Fatalf("nc -u: %v %q", err, out)
		}
		var got *seen
		for _, r := range cloud.requests() {
			if r.path == "/udp" {
				got = &r
			}
		}
		if got == nil {
			t.Fatal("the destination got no datagram")
		}
		var m UDPMessage
		if err := json.Unmarshal(got.body, &m); err != nil || string(m.Payload) != "ping" || m.SIMID != dev.sim.ID || m.IMSI != dev.sim.IMSI || m.Group != "meters" {
			t.Fatalf("posted %s: %v", got.body, err)
		}
		canonical := strings.Join([]string{"wirefleet-signature-v1", got.header.Get(HeaderTimestamp), dev.sim.ID, dev.sim.IMSI, "meters", "POST", "/udp", sha256Hex(got.body)}, "\n")
		if got.header.Get(HeaderSignature) != "v1="+hmacHex(udpSecret, canonical) {
			t.Fatal("UDP post signature does not verify")
		}
	})

	t.Run("TCP messages to HTTPS, and the 64 KiB limit", func(t *testing.T) {
		out, err := dev2.sh("printf 'reading=5' | nc -N -w 10 100.127.127.100 23080")
		if err != nil || out != "ok from cloud: reading=5" {
			t.Fatalf("nc: %v %q", err, out)
		}
		var got *seen
		for _, r := range cloud.requests() {
			if r.path == "/tcp" {
				got = &r
			}
		}
		if got == nil || string(got.body) != "reading=5" || got.header.Get("X-Api-Key") != s2APIKey || got.header.Get(HeaderIMSI) != dev2.sim.IMSI || got.header.Get(HeaderGroup) != "sensors" {
			t.Fatalf("destination got %+v", got)
		}
		before := len(cloud.requests())
		out, _ = dev2.sh("head -c 70000 /dev/zero | tr '\\0' 'a' | nc -N -w 10 100.127.127.100 23080")
		if out != "" {
			t.Fatalf("an over-limit message got an answer: %q", out)
		}
		if len(cloud.requests()) != before {
			t.Fatal("an over-limit message was forwarded")
		}
		if n := counterValue(f.fwd.m.errors.WithLabelValues(kindTCPHTTP, "too_large")); n != 1 {
			t.Fatalf("too_large counted %v times", n)
		}
	})

	t.Run("MQTT without a route is refused with a CONNACK", func(t *testing.T) {
		requireTool(t, "mosquitto_pub")
		out, err := dev.ns.Exec("mosquitto_pub", "-h", "100.127.127.100", "-p", "1883", "-t", "t", "-m", "m", "-q", "1")
		if err == nil || !strings.Contains(out, "not authorised") {
			t.Fatalf("mosquitto_pub: %v %q", err, out)
		}
		if n := counterValue(f.fwd.m.errors.WithLabelValues(kindMQTT, "no_route")); n != 1 {
			t.Fatalf("no_route counted %v times", n)
		}
	})

	t.Run("TCP destination down closes the device's connection", func(t *testing.T) {
		s := meters.Settings
		s.Forwarders.TCP = fleet.TCPForward{URL: fmt.Sprintf("tls://127.0.0.1:%d", down), Secret: tcpSecret, CAPEM: ca.pem}
		if _, err := f.svc.UpdateGroup(context.Background(), controlplane.System, meters.ID, nil, &s); err != nil {
			t.Fatal(err)
		}
		// The gateway learns the change from the store's change feed.
		deadline := time.Now().Add(15 * time.Second)
		for counterValue(f.fwd.m.errors.WithLabelValues(kindTCPTLS, "unreachable")) == 0 {
			if time.Now().After(deadline) {
				t.Fatal("no connection to the down destination was counted")
			}
			out, _ := dev.sh("printf 'hello\\n' | nc -N -w 10 100.127.127.100 23080")
			if strings.Contains(out, "ECHO") {
				time.Sleep(200 * time.Millisecond) // still the old route
				continue
			}
			if out != "" {
				t.Fatalf("nc got %q from a down destination", out)
			}
		}
	})

	t.Run("shutdown ends open connections", func(t *testing.T) {
		// A device holding a connection open (nc waits on a sleeping stdin).
		p := dev2.ns.Start(nil, "sh", "-c", "sleep 60 | nc 100.127.127.100 23080")
		defer p.Stop()
		deadline := time.Now().Add(15 * time.Second)
		for f.fwd.openConns() == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the connection did not open")
			}
			time.Sleep(50 * time.Millisecond)
		}
		closed := make(chan error, 1)
		go func() { closed <- f.closeGateway() }()
		select {
		case err := <-closed:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("closing the gateway with a relay open takes over 10 s")
		}
	})

	logs := f.logs.String()
	for _, s := range []string{httpSecret, beamPSK, cloudToken, tcpSecret, udpSecret, s2Secret, s2APIKey, deviceForge} {
		if strings.Contains(logs, s) {
			t.Errorf("secret %q in the logs", s)
		}
	}
	if n := counterValue(f.fwd.m.requests.WithLabelValues(kindHTTP)); n < 3 {
		t.Errorf("HTTP requests counted: %v", n)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	c.Write(&m)
	return m.GetCounter().GetValue()
}

// requireTool skips without the program, or fails with CI=true.
func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s missing (CI=true: failing instead of skipping)", name)
		}
		t.Skipf("%s missing", name)
	}
}

// Beyond Config.MaxConns, device connections are closed at once and
// counted as busy; a freed slot is usable again.
func TestConnectionLimit(t *testing.T) {
	f := newFixture(t, Config{MaxConns: 1})
	// A TCP route to hold a connection open on (the device never sends).
	g := f.group("lim", fleet.GroupSettings{Forwarders: fleet.Forwarders{TCP: fleet.TCPForward{URL: "http://127.0.0.1:1/x", Secret: tcpSecret}}})
	dev := f.newDevice(g.ID, nil)
	p := dev.ns.Start(nil, "sh", "-c", "sleep 60 | nc 100.127.127.100 23080")
	deadline := time.Now().Add(15 * time.Second)
	for f.fwd.openConns() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the first connection did not open")
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, err := dev.ns.Exec("curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}", "http://100.127.127.100:8888/x")
	if err == nil || counterValue(f.fwd.m.errors.WithLabelValues(kindHTTP, "busy")) != 1 {
		t.Fatalf("a connection over the limit: %v %q", err, out)
	}
	p.Stop()
	deadline = time.Now().Add(15 * time.Second)
	for {
		out, _ = dev.ns.Exec("curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}", "http://100.127.127.100:8888/x")
		if strings.HasSuffix(out, "\n404") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the freed slot is not usable: %q", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
