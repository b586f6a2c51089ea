// SPDX-License-Identifier: Apache-2.0

package response

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/gateway/monitor"
)

type recorder struct {
	did  []string
	fail error
}

func (r *recorder) Suspend(_ context.Context, sim string) error {
	r.did = append(r.did, "suspend "+sim)
	return r.fail
}

func (r *recorder) RequireRotation(_ context.Context, sim string, within time.Duration) error {
	r.did = append(r.did, fmt.Sprintf("rotate %s %s", sim, within))
	return r.fail
}

func (r *recorder) Quarantine(_ context.Context, sim, group string) error {
	r.did = append(r.did, "quarantine "+sim+" "+group)
	return r.fail
}

func (r *recorder) Send(url, secret string, a monitor.Alert) {
	r.did = append(r.did, "webhook "+url+" "+a.Kind)
}

// An action answers only the kinds the profile acts on (cloned-key by
// default); every alert is notified; a failed action still notifies.
func TestRespond(t *testing.T) {
	cloned := monitor.Alert{SIM: "sim_1", Kind: fleet.DefaultActOn[0]}
	other := monitor.Alert{SIM: "sim_1", Kind: "first-seen"}
	if slices.Contains(fleet.DefaultActOn, other.Kind) {
		t.Fatalf("test assumes %q is not acted on by default", other.Kind)
	}
	cases := []struct {
		name  string
		sec   fleet.SecurityProfile
		alert monitor.Alert
		fail  error
		want  []string
	}{
		{"alert only", fleet.SecurityProfile{Action: fleet.ActionAlert, WebhookURL: "https://hook"}, cloned, nil,
			[]string{"webhook https://hook " + cloned.Kind}},
		{"suspend by default kind", fleet.SecurityProfile{Action: fleet.ActionSuspend}, cloned, nil,
			[]string{"suspend sim_1"}},
		{"kind not acted on", fleet.SecurityProfile{Action: fleet.ActionSuspend, WebhookURL: "https://hook"}, other, nil,
			[]string{"webhook https://hook " + other.Kind}},
		{"kind listed", fleet.SecurityProfile{Action: fleet.ActionQuarantine, QuarantineGroup: "jail", ActOn: []string{other.Kind}}, other, nil,
			[]string{"quarantine sim_1 jail"}},
		{"rotate default window", fleet.SecurityProfile{Action: fleet.ActionRotate}, cloned, nil,
			[]string{"rotate sim_1 24h0m0s"}},
		{"rotate given window", fleet.SecurityProfile{Action: fleet.ActionRotate, RotateWithinHours: 2}, cloned, nil,
			[]string{"rotate sim_1 2h0m0s"}},
		{"failed action still notifies", fleet.SecurityProfile{Action: fleet.ActionSuspend, WebhookURL: "https://hook"}, cloned, errors.New("store down"),
			[]string{"suspend sim_1", "webhook https://hook " + cloned.Kind}},
		{"unknown action does nothing", fleet.SecurityProfile{Action: "explode"}, cloned, nil, nil},
	}
	for _, c := range cases {
		rec := &recorder{fail: c.fail}
		New(Config{Actions: rec, Webhooks: rec}).Respond(context.Background(), c.alert, c.sec)
		if !slices.Equal(rec.did, c.want) {
			t.Errorf("%s: did %q, want %q", c.name, rec.did, c.want)
		}
	}
}

// Without a notifier, a webhook URL sends nothing and does not fail.
func TestNoNotifier(t *testing.T) {
	rec := &recorder{}
	New(Config{Actions: rec}).Respond(context.Background(), monitor.Alert{SIM: "s", Kind: "x"}, fleet.SecurityProfile{WebhookURL: "https://hook"})
	if len(rec.did) != 0 {
		t.Errorf("did %q", rec.did)
	}
}
