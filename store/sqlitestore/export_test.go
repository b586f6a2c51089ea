package sqlitestore

// Migrations exposes the schema versions to the upgrade test.
var Migrations = migrations
