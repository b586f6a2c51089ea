// SPDX-License-Identifier: Apache-2.0

package datastore

import (
	"context"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
)

// sweepChunk bounds one delete transaction, so retention never holds the
// SQLite writer long.
const sweepChunk = 1000

// Sweep deletes the records each group's retention has expired, by record
// time against the service's clock, and returns how many it deleted.
func (s *Service) Sweep(ctx context.Context) (int64, error) {
	now := s.cfg.Clock.Now()
	var total int64
	var p store.PageRequest
	for {
		groups, err := s.cfg.Store.ListGroups(ctx, p)
		if err != nil {
			return total, err
		}
		for _, g := range groups.Items {
			keep := g.Settings.DataStore.RetentionPeriod()
			if keep <= 0 {
				continue
			}
			for {
				n, err := s.cfg.Store.DeleteRecordsBefore(ctx, g.ID, now.Add(-keep), sweepChunk)
				total += n
				s.m.expired.Add(float64(n))
				if err != nil {
					return total, err
				}
				if n < sweepChunk {
					break
				}
			}
		}
		if groups.Next == "" {
			return total, nil
		}
		p.Cursor = groups.Next
	}
}

func (s *Service) sweepEvery(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if s.cfg.RetentionHeld != nil && !s.cfg.RetentionHeld() {
			continue // another node sweeps
		}
		ctx, cancel := context.WithTimeout(context.Background(), every)
		n, err := s.Sweep(ctx)
		cancel()
		if err != nil {
			s.log.Warn("retention sweep failed", "err", err, "deleted", n)
		} else if n > 0 {
			s.log.Info("retention: expired records deleted", "deleted", n)
		}
	}
}
