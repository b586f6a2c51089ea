// SPDX-License-Identifier: Apache-2.0

package fleet

// Redirection routes a group's device traffic to a next hop — a VXLAN Gate
// peer's inner address — instead of its destination: the operator's host
// (an IDS, a proxy) forwards or answers. Traffic to the platform stays on
// its path unless IncludePlatform.
type Redirection struct {
	Enabled bool `json:"enabled"`
	// GatePeerID is the next hop: a Gate peer, which must exist.
	GatePeerID      string `json:"gatePeerId,omitempty"`
	IncludePlatform bool   `json:"includePlatform,omitempty"`
}

// Normalize checks what can be checked without the store: an enabled
// redirection names its next hop.
func (r *Redirection) Normalize(prefix string) error {
	if r.Enabled && r.GatePeerID == "" {
		return Errorf(CodeRequired, prefix+".gatePeerId", "the Gate peer the group's traffic is redirected to")
	}
	return ValidateLabel(prefix+".gatePeerId", r.GatePeerID, 64)
}
