// SPDX-License-Identifier: Apache-2.0

package sqlitestore

// Migrations exposes the schema versions to the upgrade test.
var Migrations = migrations
