// SPDX-License-Identifier: Apache-2.0

package controlplane

import (
	"context"
	"errors"
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
	defer s.ula.mu.Unlock()
	if s.ula.v.Enabled() {
		return s.ula.v, nil
	}
	stored, err := s.st.Installation(ctx, installationULA)
	if errors.Is(err, store.ErrNotFound) {
		want := s.cfg.ULA
		if !want.Enabled() {
			if want, err = fleet.GenerateOverlay6(nil); err != nil {
				return fleet.Overlay6{}, err
			}
		}
		err = s.st.Update(ctx, func(tx store.Tx) error {
			v, err := tx.InitInstallation(ctx, installationULA, want.String())
			stored = v
			return err
		})
	}
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
	s.ula.v = o
	return o, nil
}
