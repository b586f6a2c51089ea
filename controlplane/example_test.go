// SPDX-License-Identifier: Apache-2.0

package controlplane_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/wgkey"
)

// Example_gateway shows what a gateway does with the control plane: resolve
// a handshaking peer's key to its SIM, and follow the change feed to cut a
// SIM that gets suspended.
func Example_gateway() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, "fleet.db"))
	if err != nil {
		panic(err)
	}
	defer st.Close()
	svc := controlplane.New(st, controlplane.Config{Logger: discard()})

	device, _ := wgkey.NewPrivate()
	created, _, _ := svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{PublicKey: device.Public()})

	// Handshake from an unknown peer: who is it, may it connect?
	sim, err := st.SIMByPublicKey(ctx, device.Public())
	fmt.Println(sim.ID == created.ID, sim.Status, err)

	// Follow changes; on each, re-read the SIM.
	changes, cancel := st.Subscribe()
	defer cancel()
	svc.SetSIMStatus(ctx, controlplane.System, sim.ID, fleet.StatusSuspended)
	c := <-changes
	now, _ := st.SIM(ctx, c.ID)
	fmt.Println(c.Kind, now.Status)
	// Output:
	// true active <nil>
	// sim suspended
}
