// SPDX-License-Identifier: Apache-2.0

package controlplane

import "github.com/wirefleet/wirefleet/controlplane/store"

// StoreOf is the service's store with its writes, for tests that arrange
// what no operation makes (another clock over the same database).
func StoreOf(s *Service) store.Store { return s.st }
