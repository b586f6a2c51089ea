// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/softusim"
	"github.com/wirefleet/wirefleet/usim"
)

// The platform's cards (as a SIM vendor's CSV lists them).
const (
	cardICCID = "8981100000000000017"
	cardIMSI  = "001010123456789"
	cardKi    = "465b5ce8b199b49faa5f0a2ee238a6bc"
	cardOPc   = "cd63cb71954a9f4e48a5994e37a02baf"
)

func softCard(t *testing.T, ki string, seq uint64) *softusim.Card {
	t.Helper()
	k, _ := hex.DecodeString(ki)
	opc, _ := hex.DecodeString(cardOPc)
	c, err := softusim.New(softusim.Config{ICCID: cardICCID, IMSI: cardIMSI, Ki: k, OPc: opc, SEQ: seq})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCardBootstrap: the agent bootstraps with a SIM card as its only
// credential, through a modem's AT+CSIM and through PC/SC (a real pcscd),
// then connects and is the card's virtual SIM; a card whose SQN is ahead
// is resynchronised on the way; a card with another Ki is refused and
// nothing is created.
func TestCardBootstrap(t *testing.T) {
	p := newPlatform(t)
	ctx := context.Background()
	admin := controlplane.Actor{Kind: "token", ID: "tok_admin", Role: fleet.RoleAdmin}
	csv := "ICCID,IMSI,Ki,OPc\n" + cardICCID + "," + cardIMSI + "," + cardKi + "," + cardOPc + "\n"
	if _, err := p.svc.ImportSIMCards(ctx, admin, strings.NewReader(csv), ""); err != nil {
		t.Fatal(err)
	}
	var simID string
	bootstrap := func(t *testing.T, card *usim.Card) *Config {
		t.Helper()
		path := filepath.Join(t.TempDir(), "agent.json")
		cfg, err := BootstrapCard(ctx, BootstrapOptions{Server: p.api, ConfigPath: path}, card)
		if err != nil {
			t.Fatal(err)
		}
		if simID == "" {
			simID = cfg.SIMID
		} else if cfg.SIMID != simID {
			t.Fatalf("the card's second bootstrap made SIM %s, the first %s", cfg.SIMID, simID)
		}
		c, err := p.svc.GetSIMCard(ctx, admin, cardICCID)
		if err != nil || c.SIMID != cfg.SIMID {
			t.Fatalf("the card links %q (%v), the agent has %s", c.SIMID, err, cfg.SIMID)
		}
		connect(t, cfg)
		return cfg
	}

	t.Run("AT+CSIM", func(t *testing.T) {
		sc := softCard(t, cardKi, 0)
		m, err := softusim.NewModem(sc, "490154203237518")
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		card, err := OpenCard("at:" + m.Path)
		if err != nil {
			t.Fatal(err)
		}
		defer card.Close()
		bootstrap(t, card)
		if !contains(m.Commands(), "AT+CSIM=") {
			t.Fatalf("the modem saw no AT+CSIM: %q", m.Commands())
		}
	})

	t.Run("PC/SC, card ahead", func(t *testing.T) {
		softusim.RequirePCSCD(t)
		sc := softCard(t, cardKi, 5000) // used elsewhere since: its SQN is ahead of the platform's
		d, err := softusim.StartPCSCD(sc, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		t.Setenv("PCSCLITE_CSOCK_NAME", d.Socket)
		card, err := OpenCard("pcsc:" + d.Reader)
		if err != nil {
			t.Fatal(err)
		}
		defer card.Close()
		bootstrap(t, card)
		if sc.SyncFailures != 1 {
			t.Fatalf("the card asked to resynchronise %d times, want once", sc.SyncFailures)
		}
	})

	t.Run("another Ki", func(t *testing.T) {
		other := []byte(cardKi)
		other[0] = 'f'
		sc := softCard(t, string(other), 0)
		m, err := softusim.NewModem(sc, "490154203237518")
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		card, err := OpenCard("at:" + m.Path)
		if err != nil {
			t.Fatal(err)
		}
		defer card.Close()
		before, _ := p.svc.ListSIMs(ctx, admin, store.SIMFilter{})
		_, err = BootstrapCard(ctx, BootstrapOptions{Server: p.api, ConfigPath: filepath.Join(t.TempDir(), "agent.json")}, card)
		if err == nil || !strings.Contains(err.Error(), "does not hold this card's keys") {
			t.Fatalf("a card with another Ki: %v", err)
		}
		after, _ := p.svc.ListSIMs(ctx, admin, store.SIMFilter{})
		if len(after.Items) != len(before.Items) || sc.MACFailures != 1 {
			t.Fatalf("SIMs %d → %d, MAC failures %d", len(before.Items), len(after.Items), sc.MACFailures)
		}
	})
}

func contains(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(strings.ToUpper(l), prefix) {
			return true
		}
	}
	return false
}

// connect brings the tunnel up (userspace) and asks the platform's
// metadata who is calling: the bootstrapped SIM.
func connect(t *testing.T, cfg *Config) {
	t.Helper()
	tn, err := Up(context.Background(), cfg, UpOptions{Userspace: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer tn.Close()
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: tn.Net().DialContext}}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get("http://100.127.100.127/v1/subscriber")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(string(body), cfg.SIMID) {
				return
			}
			err = nil
			if time.Now().After(deadline) {
				t.Fatalf("metadata through the tunnel: %d %s", resp.StatusCode, body)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("metadata through the tunnel: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
