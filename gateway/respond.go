// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/gateway/monitor"
	"github.com/wirefleet/wirefleet/internal/seal"
)

// monitorActor is who the audit trail names for the monitor's actions.
var monitorActor = controlplane.Actor{Kind: "monitor", ID: "gateway", Role: fleet.RoleOperator}

// respond carries out the SIM's group security profile for an alert:
// quarantine or suspend the SIM, and notify the group's webhook. It runs
// on its own goroutine (never the data path); webhooks go to a bounded
// queue served by one sender.
func (g *Gateway) respond(a monitor.Alert) {
	groupID := g.simGroup(a.SIM)
	if groupID == "" {
		return
	}
	g.policies.ensure(g.ctx, g.st, groupID)
	pol := g.policies.get(groupID)
	if pol == nil {
		return
	}
	sec := pol.settings.Security
	actOn := sec.ActOn
	if len(actOn) == 0 {
		actOn = fleet.DefaultActOn
	}
	if (sec.Action == fleet.ActionQuarantine || sec.Action == fleet.ActionSuspend || sec.Action == fleet.ActionRotate) && slices.Contains(actOn, a.Kind) {
		func() {
			ctx, cancel := context.WithTimeout(g.ctx, 10*time.Second)
			defer cancel()
			var err error
			switch sec.Action {
			case fleet.ActionSuspend:
				_, err = g.svc.SetSIMStatus(ctx, monitorActor, a.SIM, fleet.StatusSuspended)
			case fleet.ActionRotate:
				within := time.Duration(sec.RotateWithinHours) * time.Hour
				if within == 0 {
					within = 24 * time.Hour
				}
				_, err = g.svc.RequireKeyRotation(ctx, monitorActor, a.SIM, within)
			case fleet.ActionQuarantine:
				var q fleet.Group
				if q, err = g.st.GroupByName(ctx, sec.QuarantineGroup); err == nil {
					_, err = g.svc.SetSIMGroup(ctx, monitorActor, a.SIM, q.ID)
				}
			}
			if err != nil {
				g.log.Error("security action failed", "sim", a.SIM, "action", sec.Action, "err", err)
				return
			}
			g.log.Warn("security action taken", "sim", a.SIM, "action", sec.Action, "alert", a.Kind)
		}()
	}
	if sec.WebhookURL != "" {
		secret := sec.WebhookSecret
		if seal.IsSealed(secret) {
			var err error
			if g.cfg.Secrets == nil {
				err = errors.New("no key to open stored secrets")
			} else {
				secret, err = g.cfg.Secrets.Open(secret)
			}
			if err != nil {
				// Never an unsigned alert: a receiver must be able to trust them.
				g.log.Error("webhook secret cannot be opened; alert not delivered", "sim", a.SIM, "kind", a.Kind, "err", err)
				return
			}
		}
		select {
		case g.hooks <- webhook{url: sec.WebhookURL, secret: secret, alert: a}:
		default:
			g.log.Warn("webhook queue full; alert not delivered", "sim", a.SIM, "kind", a.Kind)
		}
	}
}

// simGroup returns the group of a SIM the gateway holds.
func (g *Gateway) simGroup(simID string) string {
	g.regMu.Lock()
	defer g.regMu.Unlock()
	for _, st := range g.reg[simID] {
		return st.SIM().GroupID
	}
	return ""
}

type webhook struct {
	url, secret string
	alert       monitor.Alert
}

// WebhookSignatureHeader carries "sha256=<hex>" of HMAC-SHA256(secret,
// timestamp + "." + body); WebhookTimestampHeader the Unix seconds signed,
// so a receiver can refuse old replays.
const (
	WebhookSignatureHeader = "X-Wirefleet-Signature"
	WebhookTimestampHeader = "X-Wirefleet-Timestamp"
)

// SignWebhook returns the signature header value for body sent at ts.
func SignWebhook(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "%d.", ts)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// deliverWebhooks posts queued alerts, retrying with backoff (1 s, 2 s,
// 4 s) before giving up and logging.
func (g *Gateway) deliverWebhooks() {
	defer g.wg.Done()
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		var h webhook
		select {
		case <-g.ctx.Done():
			return
		case h = <-g.hooks:
		}
		body, _ := json.Marshal(h.alert)
		backoff := time.Second
		for attempt := 1; ; attempt++ {
			ts := time.Now().Unix()
			req, err := http.NewRequestWithContext(g.ctx, http.MethodPost, h.url, bytes.NewReader(body))
			if err != nil {
				g.log.Error("webhook request", "err", err)
				break
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(WebhookTimestampHeader, strconv.FormatInt(ts, 10))
			req.Header.Set(WebhookSignatureHeader, SignWebhook(h.secret, ts, body))
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode < 300 {
					break
				}
				err = fmt.Errorf("HTTP %d", resp.StatusCode)
			}
			if attempt == 4 {
				g.log.Error("webhook not delivered", "sim", h.alert.SIM, "kind", h.alert.Kind, "err", err)
				break
			}
			select {
			case <-g.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff *= 2
		}
	}
}
