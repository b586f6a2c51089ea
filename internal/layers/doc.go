// SPDX-License-Identifier: Apache-2.0

// Package layers holds no code: its tests check the shape of the tree —
// which layer may import which (in the manner of Tailscale's
// tstest/deptest), that docs/architecture.md lists the packages as they
// are, and that every Go file carries its licence header.
package layers
