// SPDX-License-Identifier: Apache-2.0

package console

import (
	"net/http"
	"strconv"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
)

// Settings: the platform as this node runs it. Fleet policy lives in
// groups; what is left is wirefleetd's own configuration, set by its flags
// (or WIREFLEET_* variables) and shown here read-only, since a change
// needs a restart the console cannot do.

// Setting is one of wirefleetd's flags as the node runs with it.
type Setting struct {
	Name    string
	Value   string // with any secret already removed (a DSN's password)
	Default string
	Usage   string
}

// Changed says whether the node runs with other than the default.
func (s Setting) Changed() bool { return s.Value != s.Default }

type platformRow struct{ Name, Value, About string }

type settingsData struct {
	Platform []platformRow
	Flags    []Setting
}

func (h *Handler) settings(w http.ResponseWriter, r *http.Request) {
	cfg := h.svc.Config()
	six := "off"
	if o, err := h.svc.Overlay6(r.Context()); err == nil && o.Enabled() {
		six = o.Prefix().String()
	}
	remote := "off (wirefleetd --remote-ports)"
	if cfg.Remote.Enabled() {
		remote = cfg.Remote.Host + ", ports " + strconv.Itoa(cfg.Remote.PortMin) + "–" + strconv.Itoa(cfg.Remote.PortMax)
	}
	cards := "yes"
	if cfg.Secrets == nil {
		cards = "no: no settings key"
	}
	d := settingsData{Platform: []platformRow{
		{"Gateway endpoint", cfg.Endpoint, "what devices' WireGuard configurations name (--endpoint)"},
		{"Gateway public key", cfg.GatewayPublicKey().String(), "the peer key of every device's configuration"},
		{"SIM address pool", cfg.Pool.String(), "devices' overlay IPv4 addresses (--pool)"},
		{"Fleet IPv6 prefix", six, "devices' IPv6 addresses (--ula-prefix, or drawn once)"},
		{"Platform range", cfg.PlatformRange.String(), "platform services, in every device's AllowedIPs"},
		{"LAN pool", cfg.LANPool.String(), "mapped prefixes of overlapping LANs behind devices (--lan-pool)"},
		{"Remote access", remote, "port mappings into devices"},
		{"SIM card import", cards, "cards' keys are sealed with the settings key"},
	}}
	if controlplane.Require(sessionOf(r).actor, fleet.RoleAdmin) == nil {
		// The node's flags name its listeners, trusted networks and files:
		// for admins only, like tokens.
		d.Flags = h.flags
	}
	h.render(w, r, http.StatusOK, "settings", page{Title: "Settings", Nav: "settings", Data: d})
}
