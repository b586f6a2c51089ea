// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"net/http"
	"runtime"

	"github.com/wirefleet/wirefleet/internal/buildinfo"
)

// Version is the agent's version (buildinfo.Version).
func Version() string { return buildinfo.Version() }

// Product is the agent's name and version, "wirefleet-agent/v1.4.0": what
// CheckIn reports as the SIM's agent (fleet.SIM.Agent), so operators see
// which devices run which version.
func Product() string { return "wirefleet-agent/" + Version() }

// UserAgent is what the agent's requests say it is.
func UserAgent() string {
	return Product() + " (" + runtime.GOOS + "; " + runtime.GOARCH + ")"
}

// userAgentTransport sets UserAgent on every request it carries.
type userAgentTransport struct{ base http.RoundTripper }

func (t userAgentTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", UserAgent())
	return t.base.RoundTrip(r)
}
