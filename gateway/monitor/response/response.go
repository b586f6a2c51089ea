// SPDX-License-Identifier: Apache-2.0

// Package response carries out a group's security profile when the
// monitor raises an alert about one of its SIMs: quarantine, suspend or
// require a key rotation for the alert kinds the profile acts on, and
// notify the group's webhook of every alert. The gateway finds the SIM's
// profile and runs Respond off the data path; the actions go through the
// control plane (Actions), so they are audited like an operator's.
package response

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/gateway/monitor"
)

// Actions are the control-plane changes a response can make to a SIM.
type Actions interface {
	// Suspend suspends the SIM: its sessions end within a second.
	Suspend(ctx context.Context, simID string) error
	// RequireRotation gives the SIM's device within to replace its key.
	RequireRotation(ctx context.Context, simID string, within time.Duration) error
	// Quarantine moves the SIM into the group named group.
	Quarantine(ctx context.Context, simID, group string) error
}

// Notifier delivers an alert to a webhook (gateway/monitor/webhook's
// Sender: queued, signed, retried).
type Notifier interface {
	Send(url, secret string, a monitor.Alert)
}

// Config configures a Responder.
type Config struct {
	// Actions changes SIMs. Required.
	Actions Actions
	// Webhooks delivers notifications; nil sends none.
	Webhooks Notifier
	// Logger receives logs; default slog.Default().
	Logger *slog.Logger
	// Timeout bounds one action (0: 10 s).
	Timeout time.Duration
}

// DefaultRotateWithin is how long a device gets to rotate its key when
// the profile's RotateWithinHours is 0.
const DefaultRotateWithin = 24 * time.Hour

// Responder answers alerts.
type Responder struct {
	cfg Config
}

// New returns a Responder.
func New(cfg Config) *Responder {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	return &Responder{cfg: cfg}
}

// Acts reports whether the profile answers an alert of kind with an
// action (not only a notification).
func Acts(sec fleet.SecurityProfile, kind string) bool {
	switch sec.Action {
	case fleet.ActionQuarantine, fleet.ActionSuspend, fleet.ActionRotate:
	default:
		return false
	}
	actOn := sec.ActOn
	if len(actOn) == 0 {
		actOn = fleet.DefaultActOn
	}
	return slices.Contains(actOn, kind)
}

// Respond applies the SIM's group profile sec to alert a: the action, if
// the profile acts on the alert's kind, then the webhook, which is sent
// even when the action failed (the operator should hear of both). It
// blocks for the action; run it off the data path.
func (r *Responder) Respond(ctx context.Context, a monitor.Alert, sec fleet.SecurityProfile) {
	if Acts(sec, a.Kind) {
		if err := r.act(ctx, a.SIM, sec); err != nil {
			r.cfg.Logger.Error("security action failed", "sim", a.SIM, "action", sec.Action, "err", err)
		} else {
			r.cfg.Logger.Warn("security action taken", "sim", a.SIM, "action", sec.Action, "alert", a.Kind)
		}
	}
	if sec.WebhookURL != "" && r.cfg.Webhooks != nil {
		r.cfg.Webhooks.Send(sec.WebhookURL, sec.WebhookSecret, a)
	}
}

func (r *Responder) act(ctx context.Context, simID string, sec fleet.SecurityProfile) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	switch sec.Action {
	case fleet.ActionSuspend:
		return r.cfg.Actions.Suspend(ctx, simID)
	case fleet.ActionRotate:
		within := time.Duration(sec.RotateWithinHours) * time.Hour
		if within == 0 {
			within = DefaultRotateWithin
		}
		return r.cfg.Actions.RequireRotation(ctx, simID, within)
	default: // fleet.ActionQuarantine; Acts admits no other
		return r.cfg.Actions.Quarantine(ctx, simID, sec.QuarantineGroup)
	}
}
