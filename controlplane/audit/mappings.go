// SPDX-License-Identifier: Apache-2.0

package audit

import (
	"context"
	"fmt"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
)

// DefaultMaxMappingDuration is the policy a mapping's lifetime is checked
// against when Options.MaxMappingDuration is zero (wirefleetd's default
// --remote-max-duration).
const DefaultMaxMappingDuration = 8 * time.Hour

// checkMappings reports live remote-access mappings that accept any source
// (a device port on the open Internet) or last longer than the policy
// allows (made before the policy was tightened, or written past the API).
func checkMappings(ctx context.Context, st store.Reader, o Options, now time.Time, add func(check, sev, obj, format string, args ...any)) error {
	max := o.MaxMappingDuration
	if max <= 0 {
		max = DefaultMaxMappingDuration
	}
	var cursor string
	for {
		page, err := st.ListMappings(ctx, store.MappingFilter{PageRequest: store.PageRequest{Limit: store.MaxLimit, Cursor: cursor}})
		if err != nil {
			return fmt.Errorf("audit: listing mappings: %w", err)
		}
		for _, m := range page.Items {
			if !m.Live(now) {
				continue
			}
			if m.OpenToAll() {
				add("mapping-open-to-all", High, m.ID, "port %d of SIM %s is reachable from any address on %s:%d until %s", m.Port, m.SIMID, m.Host, m.PublicPort, m.Expires.Format(time.RFC3339))
			}
			if life := m.Expires.Sub(m.Created); life > max {
				add("mapping-too-long", Medium, m.ID, "port %d of SIM %s is open for %s, longer than the policy's %s", m.Port, m.SIMID, life.Round(time.Second), max)
			}
		}
		if page.Next == "" {
			return nil
		}
		cursor = page.Next
	}
}
