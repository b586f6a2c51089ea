// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"encoding/hex"
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
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/arcapi/arcwire"
	"github.com/wirefleet/wirefleet/internal/netns"
	"github.com/wirefleet/wirefleet/internal/softusim"
)

// TestKryptonClients runs SORACOM's own clients, unmodified, against
// wirefleetd with a software USIM behind a modem on a pseudo-terminal:
// krypton-cli reads the IMSI (AT+CIMI), answers the platform's challenge
// through AT+CSIM and bootstraps Arc; its later calls (subscriber
// metadata, user data) are signed with the cached key; then `soratun
// bootstrap sim` writes a config with krypton-cli and `soratun up` brings
// the tunnel up from a device namespace. Neither client is packaged: the
// test skips without krypton-cli on PATH (docs/control-plane.md says how
// to build it), and the tunnel part without soratun.
func TestKryptonClients(t *testing.T) {
	kcli, err := exec.LookPath("krypton-cli")
	if err != nil {
		t.Skip("krypton-cli is not on PATH (build it from soracom/krypton-client-go: docs/control-plane.md, \"Bootstrap by SIM card\")")
	}
	env := netns.New(t)
	dev := env.NewNS("dev")
	up := env.Uplink(dev, netip.MustParsePrefix("10.251.7.0/30"))
	pc, err := net.ListenPacket("udp4", up.RootAddr().String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	dir := t.TempDir()
	base, _, stderr, _ := startArgs(t, dir, map[string]string{"WIREFLEET_API_LISTEN": "127.0.0.1:0"},
		"--endpoint", fmt.Sprintf("%s:%d", up.RootAddr(), port), "--wg-listen", fmt.Sprintf(":%d", port))
	tok, _ := os.ReadFile(filepath.Join(dir, "admin.token"))
	call := func(method, path, ctype, body string, out any) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		req.Header.Set("Content-Type", ctype)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		if out != nil {
			json.Unmarshal(b, out)
		}
	}
	var grp struct{ ID string }
	call("POST", "/api/v1/groups", "application/json", `{"name":"cards","settings":{"userData":"hello from the group"}}`, &grp)
	const (
		iccid = "8981100000000000017"
		imsi  = "001010123456789"
		ki    = "465b5ce8b199b49faa5f0a2ee238a6bc"
		opc   = "cd63cb71954a9f4e48a5994e37a02baf"
	)
	call("POST", "/api/v1/sim-cards/import?groupId="+grp.ID, "text/csv", "ICCID,IMSI,Ki,OPc\n"+iccid+","+imsi+","+ki+","+opc+"\n", nil)

	k, _ := hex.DecodeString(ki)
	o, _ := hex.DecodeString(opc)
	card, err := softusim.New(softusim.Config{ICCID: iccid, IMSI: imsi, Ki: k, OPc: o})
	if err != nil {
		t.Fatal(err)
	}
	modem, err := softusim.NewModem(card, "490154203237518")
	if err != nil {
		t.Fatal(err)
	}
	defer modem.Close()
	home := t.TempDir() // krypton-cli's key cache lives there
	clientEnv := append(os.Environ(), "HOME="+home, "SORACOM_PROFILE_DIR="+home)
	endpoints := []string{"-keys-api-endpoint-url", base + "/v1/keys", "-provisioning-api-endpoint-url", base + "/"}
	krypton := func(op string) []byte {
		t.Helper()
		cmd := exec.Command(kcli, append([]string{"-operation", op, "-interface", "comm", "-port-name", modem.Path}, endpoints...)...)
		cmd.Env = clientEnv
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("krypton-cli -operation %s: %v\n%s%s\nwirefleetd:\n%s\nmodem saw: %q", op, err, out.String(), errb.String(), stderr, modem.Commands())
		}
		return out.Bytes()
	}

	var sess arcwire.Session
	if out := krypton("bootstrapArc"); json.Unmarshal(out, &sess) != nil || sess.ClientPrivateKey == "" || sess.ServerEndpoint == "" || sess.ClientIPAddress == "" {
		t.Fatalf("bootstrapArc printed %s", out)
	}
	if card.Authentications != 1 || !sawPrefix(modem.Commands(), "AT+CIMI") || !sawPrefix(modem.Commands(), "AT+CSIM=") {
		t.Fatalf("card authentications %d, modem saw %q", card.Authentications, modem.Commands())
	}
	var sub struct {
		IMSI, ICCID, SIMID, IPAddress, GroupID string
	}
	if out := krypton("getSubscriberMetadata"); json.Unmarshal(out, &sub) != nil || sub.IMSI != imsi || sub.ICCID != iccid || sub.IPAddress != sess.ClientIPAddress || sub.GroupID != grp.ID || sub.SIMID == "" {
		t.Fatalf("getSubscriberMetadata printed %s", out)
	}
	if out := strings.TrimSpace(string(krypton("getUserData"))); out != "hello from the group" {
		t.Fatalf("getUserData printed %q", out)
	}
	if code, m := get(t, base+"/metrics", ""); code != 200 || !strings.Contains(m, `wirefleet_sim_card_auth_total{outcome="ok",step="signature"} 3`) || !strings.Contains(m, `wirefleet_sim_card_auth_total{outcome="ok",step="verify"} 1`) {
		t.Fatalf("metrics after one AKA and three signed calls: %d\n%s", code, grepLines(m, "wirefleet_sim_card"))
	}
	if card.Authentications != 1 {
		t.Fatalf("the later calls ran AKA again (%d authentications): the key's CK should sign them", card.Authentications)
	}

	t.Run("soratun", func(t *testing.T) {
		sbin, err := exec.LookPath("soratun")
		if err != nil {
			t.Skip("soratun is not on PATH (build it from soracom/soratun)")
		}
		conf := filepath.Join(home, "arc.json")
		cmd := exec.Command(sbin, "bootstrap", "sim", "--config", conf, "--krypton-cli-path", kcli, "--interface", "comm", "--port-name", modem.Path,
			"--keys-api-endpoint-url", base+"/v1/keys", "--provisioning-api-endpoint-url", base+"/")
		cmd.Env = clientEnv
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("soratun bootstrap sim: %v\n%s", err, out)
		}
		raw, err := os.ReadFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		var c map[string]any
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatalf("arc.json: %v\n%s", err, raw)
		}
		c["interface"] = env.Name("st") // soratun's TUN, inside the device's namespace
		raw, _ = json.Marshal(c)
		os.WriteFile(conf, raw, 0o600)
		if _, err := dev.Exec("ping", "-c", "1", "-W", "1", "100.127.0.1"); err == nil {
			t.Fatal("100.127.0.1 answers the device's namespace without a tunnel: the ping below would prove nothing")
		}
		proc := env.Start(dev, clientEnv, sbin, "up", "--config", conf)
		deadline := time.Now().Add(20 * time.Second)
		for {
			out, err := dev.Exec("ping", "-c", "1", "-W", "1", "100.127.0.1")
			if err == nil {
				break
			}
			if time.Now().After(deadline) || proc.Exited() {
				t.Fatalf("no ping through soratun's tunnel: %v\n%s\nsoratun:\n%s", err, out, proc.Output())
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}

func sawPrefix(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(strings.ToUpper(l), prefix) {
			return true
		}
	}
	return false
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
