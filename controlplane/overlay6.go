// SPDX-License-Identifier: Apache-2.0

package controlplane

import (
	"context"
	"fmt"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// installationULA names the installation's ULA prefix in the store.
const installationULA = "ula_prefix"

// Overlay6 returns the fleet's IPv6 plan: the prefix stored for the
// installation, drawn (or taken from Config.ULA) by the first node that
// asks, the same on every node sharing the database afterwards. A
// configured prefix that differs from the stored one is an error, never a
// silent renumbering of every SIM. Read once, then held.
func (s *Service) Overlay6(ctx context.Context) (fleet.Overlay6, error) {
	s.ula.mu.Lock()
	held := s.ula.v
	s.ula.mu.Unlock()
	if held.Enabled() {
		return held, nil
	}
	var o fleet.Overlay6
	// Two first callers at once both ask the store; the first writer's
	// value is what both read back.
	err := s.st.Update(ctx, func(tx store.Tx) (err error) {
		o, err = s.overlay6In(ctx, tx)
		return err
	})
	if err != nil {
		return fleet.Overlay6{}, err
	}
	s.ula.mu.Lock()
	s.ula.v = o // committed: only now is it the installation's
	s.ula.mu.Unlock()
	return o, nil
}

// overlay6In is Overlay6 inside a transaction already open (a write that
// needs the plan must not open a second one: SQLite has one writer). What
// it reads or draws is not held: the transaction may still roll back.
func (s *Service) overlay6In(ctx context.Context, tx store.Tx) (fleet.Overlay6, error) {
	s.ula.mu.Lock()
	held := s.ula.v
	s.ula.mu.Unlock()
	if held.Enabled() {
		return held, nil
	}
	want := s.cfg.ULA
	if !want.Enabled() {
		var err error
		if want, err = fleet.GenerateOverlay6(nil); err != nil {
			return fleet.Overlay6{}, err
		}
	}
	stored, err := tx.InitInstallation(ctx, installationULA, want.String())
	if err != nil {
		return fleet.Overlay6{}, fmt.Errorf("controlplane: reading the fleet's ULA prefix: %w", err)
	}
	o, err := fleet.ParseOverlay6("ulaPrefix", stored)
	if err != nil {
		return fleet.Overlay6{}, fmt.Errorf("controlplane: the stored ULA prefix: %w", err)
	}
	if s.cfg.ULA.Enabled() && s.cfg.ULA != o {
		return fleet.Overlay6{}, fmt.Errorf("controlplane: this installation's ULA prefix is %s, not the configured %s: changing it would renumber every SIM's IPv6 address; leave the setting out or give %s", o, s.cfg.ULA, o)
	}
	return o, nil
}
