// SPDX-License-Identifier: Apache-2.0

package pgtest

// StartDurable is Start with PostgreSQL's durability settings left at
// their defaults (fsync, synchronous commit, full-page writes on), for
// benchmarks of durable writes: Start turns them off, since test data is
// thrown away.
func StartDurable(t T) *Server {
	t.Helper()
	return start(t, nil)
}
