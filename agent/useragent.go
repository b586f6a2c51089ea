// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
)

// Version is the agent's version: its module version when built from a
// release ("v1.4.0"), else "devel" with the revision the build saw
// ("devel-1a2b3c4d5e6f", "-dirty" for uncommitted changes).
func Version() string {
	versionOnce.Do(func() {
		version = "devel"
		bi, ok := debug.ReadBuildInfo()
		if !ok {
			return
		}
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			version = v
			return
		}
		var rev, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value[:min(12, len(s.Value))]
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if rev != "" {
			version += "-" + rev + dirty
		}
	})
	return version
}

var (
	versionOnce sync.Once
	version     string
)

// UserAgent is what the agent's requests say it is: the platform records
// the product part as the SIM's agent (fleet.SIM.Agent), so operators see
// which devices run which version.
func UserAgent() string {
	return "wirefleet-agent/" + Version() + " (" + runtime.GOOS + "; " + runtime.GOARCH + ")"
}

// userAgentTransport sets UserAgent on every request it carries.
type userAgentTransport struct{ base http.RoundTripper }

func (t userAgentTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", UserAgent())
	return t.base.RoundTrip(r)
}
