// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"time"
)

// floodEventInterval is the least time between two recorded floods: one
// attack is one event, however long it lasts.
const floodEventInterval = 10 * time.Minute

// watchFlood records a "gateway.flood" audit event (and a warning) when
// the engine comes under load — handshake messages arriving faster than
// they can be served, so it demands cookies — with the rejections by
// reason seen so far: an operator learns of a flood from the trail, not
// only from a metric.
func (g *Gateway) watchFlood() {
	defer g.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var was bool
	var last time.Time
	for {
		select {
		case <-g.ctx.Done():
			return
		case now := <-t.C:
			under := g.eng.UnderLoad()
			if under && !was && now.Sub(last) >= floodEventInterval {
				last = now
				c := g.eng.Counters()
				g.log.Warn("handshake flood: demanding cookies from initiators", "rejected", c.HandshakesRejected)
				details := map[string]any{"rejected": c.HandshakesRejected, "completed": c.HandshakesCompleted}
				ctx, cancel := context.WithTimeout(g.ctx, 5*time.Second)
				if err := g.svc.RecordGatewayEvent(ctx, g.gatewayID(), "gateway.flood", details); err != nil && g.ctx.Err() == nil {
					g.log.Warn("recording flood event", "err", err)
				}
				cancel()
			}
			was = under
		}
	}
}
