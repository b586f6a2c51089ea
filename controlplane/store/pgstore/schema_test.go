// SPDX-License-Identifier: Apache-2.0

package pgstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/wirefleet/wirefleet/controlplane/store/pgstore"
	"github.com/wirefleet/wirefleet/controlplane/store/pgstore/pgtest"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
)

// Both backends, migrated from empty, end with the same tables, the same
// columns (name, type family, nullability) and the same explicit indexes
// (name, table, columns): the schema is written once, in sqlstore, and
// this proves the two dialects' substitutions did not make them differ.
func TestSchemasMatch(t *testing.T) {
	ctx := context.Background()
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	ps, err := pgstore.Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	ps.Close()
	path := filepath.Join(t.TempDir(), "fleet.db")
	ss, err := sqlitestore.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	ss.Close()

	pg, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	lite, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()

	got := map[string][]string{"postgres": pgSchema(t, pg), "sqlite": sqliteSchema(t, lite)}
	if len(got["sqlite"]) < 50 {
		t.Fatalf("the SQLite schema looks empty: %v", got["sqlite"])
	}
	for _, line := range diff(got["postgres"], got["sqlite"]) {
		t.Error(line)
	}
}

// family names a column type the way both dialects mean it.
func family(typ string) string {
	switch t := strings.ToLower(typ); {
	case strings.Contains(t, "int"):
		return "integer"
	case t == "text":
		return "text"
	case t == "blob" || t == "bytea":
		return "bytes"
	default:
		return t
	}
}

func pgSchema(t *testing.T, db *sql.DB) []string {
	var out []string
	rows := query(t, db, `SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns WHERE table_schema = 'public'`)
	for _, r := range rows {
		out = append(out, fmt.Sprintf("column %s.%s %s null=%v", r[0], r[1], family(r[2]), r[3] == "YES"))
	}
	// Explicit indexes only: those backing a primary key or unique
	// constraint are the constraint's, named differently by each dialect.
	rows = query(t, db, `SELECT i.relname, t.relname, array_to_string(array_agg(a.attname ORDER BY k.n), ',')
		FROM pg_index x
		JOIN pg_class i ON i.oid = x.indexrelid
		JOIN pg_class t ON t.oid = x.indrelid
		JOIN pg_namespace s ON s.oid = t.relnamespace AND s.nspname = 'public'
		CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, n)
		JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
		WHERE NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
		GROUP BY i.relname, t.relname`)
	for _, r := range rows {
		out = append(out, fmt.Sprintf("index %s on %s (%s)", r[0], r[1], r[2]))
	}
	for _, r := range query(t, db, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`) {
		out = append(out, "table "+r[0])
	}
	slices.Sort(out)
	return out
}

func sqliteSchema(t *testing.T, db *sql.DB) []string {
	var out []string
	for _, r := range query(t, db, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`) {
		table := r[0]
		out = append(out, "table "+table)
		// PRAGMA table_info: cid, name, type, notnull, dflt_value, pk. A
		// primary key column is NOT NULL in PostgreSQL whatever it says.
		for _, c := range query(t, db, fmt.Sprintf(`SELECT name, type, "notnull", pk FROM pragma_table_info('%s')`, table)) {
			out = append(out, fmt.Sprintf("column %s.%s %s null=%v", table, c[0], family(c[1]), c[2] == "0" && c[3] == "0"))
		}
	}
	for _, r := range query(t, db, `SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL`) {
		var cols []string
		for _, c := range query(t, db, fmt.Sprintf(`SELECT name FROM pragma_index_info('%s') ORDER BY seqno`, r[0])) {
			cols = append(cols, c[0])
		}
		out = append(out, fmt.Sprintf("index %s on %s (%s)", r[0], r[1], strings.Join(cols, ",")))
	}
	slices.Sort(out)
	return out
}

func query(t *testing.T, db *sql.DB, q string) [][]string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = v.String
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// diff lists what only one of the sorted lists has.
func diff(pg, lite []string) []string {
	var out []string
	for _, l := range pg {
		if !slices.Contains(lite, l) {
			out = append(out, "only in PostgreSQL: "+l)
		}
	}
	for _, l := range lite {
		if !slices.Contains(pg, l) {
			out = append(out, "only in SQLite: "+l)
		}
	}
	return out
}
