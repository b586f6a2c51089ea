// SPDX-License-Identifier: Apache-2.0

package main

import (
	"github.com/wirefleet/wirefleet/controlplane/api/apiv1"
)

// pageFlags are a list command's --limit and --cursor.
type pageFlags struct {
	limit  *int
	cursor *string
}

// addPageFlags declares --limit and --cursor on c (before c.args parses).
func addPageFlags(c *command, limitHelp string) pageFlags {
	if limitHelp == "" {
		limitHelp = "page size"
	}
	return pageFlags{limit: c.fs.Int("limit", 0, limitHelp), cursor: c.fs.String("cursor", "", "next-page cursor")}
}

// query is the query string of the filters (name, value pairs; empty
// values left out) and the page flags.
func (p pageFlags) query(filters ...string) string {
	return query(append(filters, "limit", itoa(*p.limit), "cursor", *p.cursor)...)
}

// showPage reads one page of T at path and shows it, a row per item, with
// the next-page hint.
func showPage[T any](c *command, path string, header []string, row func(T) []string) error {
	var p apiv1.Page[T]
	if err := c.call("GET", path, nil, &p); err != nil {
		return err
	}
	rows := make([][]string, 0, len(p.Items))
	for _, it := range p.Items {
		rows = append(rows, row(it))
	}
	return c.show(p, header, rows, nextHint(p.Next))
}

// showOne reads one T at path and shows it as one row.
func showOne[T any](c *command, path string, header []string, row func(T) []string) error {
	var v T
	if err := c.call("GET", path, nil, &v); err != nil {
		return err
	}
	return c.show(v, header, [][]string{row(v)})
}
