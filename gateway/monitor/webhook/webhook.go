// SPDX-License-Identifier: Apache-2.0

// Package webhook delivers the monitor's alerts to a group's webhook:
// signed with HMAC-SHA256 under the group's secret (opened from its sealed
// form only here, only to sign), from a bounded queue served by one sender
// that retries with backoff. An alert whose secret cannot be opened is not
// sent: never an unsigned alert, a receiver must be able to trust them.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/wirefleet/wirefleet/gateway/monitor"
	"github.com/wirefleet/wirefleet/internal/egress"
	"github.com/wirefleet/wirefleet/internal/seal"
)

// SignatureHeader carries "sha256=<hex>" of HMAC-SHA256(secret,
// timestamp + "." + body); TimestampHeader the Unix seconds signed, so a
// receiver can refuse old replays.
const (
	SignatureHeader = "X-Wirefleet-Signature"
	TimestampHeader = "X-Wirefleet-Timestamp"
)

// QueueSize bounds the alerts waiting for delivery; more are dropped
// (and logged) rather than held.
const QueueSize = 256

// Sign returns the signature header value for body sent at ts.
func Sign(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "%d.", ts)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

type job struct {
	url, secret string
	body        []byte
	what        string // for logs: the alert's SIM and kind, or the record's
}

// Sender queues and delivers alerts.
type Sender struct {
	secrets *seal.Key // opens sealed webhook secrets; nil: none can be opened
	log     *slog.Logger
	client  *http.Client
	q       chan job
}

// New returns a Sender; Run delivers what Send queues. Deliveries, and
// every redirect they follow, reach only what policy allows (a group's
// webhook URL is written by operators below admin).
func New(secrets *seal.Key, log *slog.Logger, policy egress.Policy) *Sender {
	if log == nil {
		log = slog.Default()
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DialContext: policy.Dialer(net.Dialer{Timeout: 5 * time.Second}).DialContext}}
	return &Sender{secrets: secrets, log: log, client: client, q: make(chan job, QueueSize)}
}

// Send queues alert a for url, signed with secret (sealed or, from older
// settings, clear). It never blocks: a full queue drops the alert.
func (s *Sender) Send(url, secret string, a monitor.Alert) {
	body, _ := json.Marshal(a)
	s.SendJSON(url, secret, "alert "+a.Kind+" of "+a.SIM, body)
}

// SendJSON queues a JSON body for url, signed like alerts (what names it
// in logs). It never blocks: a full queue drops it.
func (s *Sender) SendJSON(url, secret, what string, body []byte) {
	if seal.IsSealed(secret) {
		var err error
		if s.secrets == nil {
			err = errors.New("no key to open stored secrets")
		} else {
			secret, err = s.secrets.Open(secret)
		}
		if err != nil {
			s.log.Error("webhook secret cannot be opened; not delivered", "what", what, "err", err)
			return
		}
	}
	select {
	case s.q <- job{url: url, secret: secret, body: body, what: what}:
	default:
		s.log.Warn("webhook queue full; not delivered", "what", what)
	}
}

// Run posts queued alerts until ctx ends, retrying each with backoff (1 s,
// 2 s, 4 s) before giving up and logging.
func (s *Sender) Run(ctx context.Context) {
	for {
		var h job
		select {
		case <-ctx.Done():
			return
		case h = <-s.q:
		}
		body := h.body
		backoff := time.Second
		for attempt := 1; ; attempt++ {
			ts := time.Now().Unix()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
			if err != nil {
				s.log.Error("webhook request", "err", err)
				break
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(TimestampHeader, strconv.FormatInt(ts, 10))
			req.Header.Set(SignatureHeader, Sign(h.secret, ts, body))
			resp, err := s.client.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode < 300 {
					break
				}
				err = fmt.Errorf("HTTP %d", resp.StatusCode)
			}
			if attempt == 4 {
				s.log.Error("webhook not delivered", "what", h.what, "err", err)
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff *= 2
		}
	}
}
