// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"time"

	"github.com/wirefleet/wirefleet/fleet"
)

// rotationCheck is how often held sessions are checked against required
// rotation deadlines: a deadline is hours away, a few seconds late is fine,
// and the check is one comparison per held SIM that has a deadline (the
// others are not looked at: 100,000 idle sessions cost nothing here).
const rotationCheck = 2 * time.Second

// rotationOverdue reports whether sim's current key is past its deadline.
func rotationOverdue(sim fleet.SIM, now time.Time) bool {
	return !sim.RotateBy.IsZero() && !now.Before(sim.RotateBy)
}

// enforceRotations ends sessions of current keys whose required rotation
// is overdue. The resolver refuses them from then on; a next key the
// device announced in time still connects and completes the rotation.
func (g *Gateway) enforceRotations() {
	defer g.wg.Done()
	t := time.NewTicker(rotationCheck)
	defer t.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case now := <-t.C:
			for _, st := range g.rotatingStates() {
				sim := st.SIM()
				if sim == nil || st.key != sim.PublicKey || !rotationOverdue(*sim, now) {
					continue
				}
				if st.revoked.Swap(true) {
					continue
				}
				g.unregister(st)
				if p := g.eng.Peer(st.key); p != nil && stateOf(p) == st {
					g.eng.RemovePeer(st.key)
				}
				g.log.Warn("session ended: required key rotation overdue", "sim", st.id, "deadline", sim.RotateBy)
				g.events.record(st.id, "device.rotation_overdue", map[string]any{"deadline": sim.RotateBy.UTC().Format(time.RFC3339)})
			}
		}
	}
}
