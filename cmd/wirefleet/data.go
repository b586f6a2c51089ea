// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wirefleet/wirefleet/controlplane/api/apiv1"
)

// preview is a one-line glimpse of a payload for tables: JSON as sent,
// text as text, anything else as base64.
func preview(r apiv1.DataRecord) string {
	s := string(r.Payload)
	var compact bytes.Buffer
	if json.Compact(&compact, r.Payload) == nil {
		s = compact.String()
	}
	if r.Payload == nil {
		b, err := base64.StdEncoding.DecodeString(r.PayloadBase64)
		if err == nil && utf8.Valid(b) && !strings.ContainsFunc(string(b), func(c rune) bool { return c < ' ' && c != '\n' && c != '\t' }) {
			s = string(b)
		} else {
			s = "base64:" + r.PayloadBase64
		}
	}
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

// addDataCommands adds the data-store commands to the table.
func addDataCommands(handlers map[string]handler) {
	handlers["data settings"] = dataSettings
	handlers["data list"] = func(c *command, rest []string) error {
		simID := c.fs.String("sim", "", "SIM id: its records")
		groupID := c.fs.String("group", "", "group id: the records its SIMs wrote while in it")
		from := c.fs.String("from", "", "RFC 3339 time: records at or after it")
		to := c.fs.String("to", "", "RFC 3339 time: records before it")
		category := c.fs.String("category", "", "only this category")
		page := addPageFlags(c, "page size (default 100, at most 1000)")
		if err := c.args(rest, 0, 0, "none"); err != nil {
			return err
		}
		if (*simID == "") == (*groupID == "") {
			return usageErr("data list: give --sim ID or --group ID")
		}
		path := "/api/v1/sims/" + *simID + "/data"
		if *groupID != "" {
			path = "/api/v1/groups/" + *groupID + "/data"
		}
		return showPage(c, path+page.query("from", *from, "to", *to, "category", *category),
			[]string{"ID", "TIME", "SIM", "CATEGORY", "TYPE", "SIZE", "PAYLOAD"}, func(r apiv1.DataRecord) []string {
				return []string{strconv.FormatInt(r.ID, 10), r.Time.UTC().Format(time.RFC3339Nano), r.SIMID, r.Category, r.ContentType, strconv.Itoa(r.Size), preview(r)}
			})
	}
}

// dataSettings shows or changes a group's data-store settings: the group is
// read, its settings.dataStore changed by the flags given, and the whole
// settings written back (other settings as read; write-only secrets are
// kept by the API).
func dataSettings(c *command, rest []string) error {
	enable := c.fs.Bool("enable", false, "let the group's devices write")
	disable := c.fs.Bool("disable", false, "refuse the group's writes")
	maxPayload := c.fs.Int("max-payload", 0, "bytes per message (at most 1 MiB)")
	c.fs.String("timestamp-pointer", "", "JSON pointer to the record time (Unix ms or RFC 3339); \"\" for the server's time")
	c.fs.String("batch-pointer", "", "JSON pointer to an array of records (\"#\": the whole body); \"\" for none")
	c.fs.String("category", "", "category of the group's records")
	c.fs.String("retention", "", "how long records are kept (720h, 30d); \"\" for ever")
	if err := c.args(rest, 1, 1, "GROUP_ID"); err != nil {
		return err
	}
	if *enable && *disable {
		return usageErr("data settings: --enable or --disable, not both")
	}
	var g group
	if err := c.call("GET", "/api/v1/groups/"+c.pos[0], nil, &g); err != nil {
		return err
	}
	var settings map[string]any
	if err := json.Unmarshal(g.Settings, &settings); err != nil {
		return fmt.Errorf("decoding settings: %w", err)
	}
	ds, _ := settings["dataStore"].(map[string]any)
	if ds == nil {
		ds = map[string]any{}
	}
	changed := false
	c.fs.Visit(func(f *flag.Flag) {
		key := map[string]string{"enable": "enabled", "disable": "enabled", "max-payload": "maxPayload", "timestamp-pointer": "timestampPointer",
			"batch-pointer": "batchPointer", "category": "category", "retention": "retention"}[f.Name]
		if key == "" {
			return // a global flag
		}
		changed = true
		switch f.Name {
		case "enable":
			ds[key] = *enable
		case "disable":
			ds[key] = !*disable
		case "max-payload":
			ds[key] = *maxPayload
		default: // the string flags, read through the flag set
			ds[key] = f.Value.String()
		}
	})
	if changed {
		settings["dataStore"] = ds
		if err := c.call("PATCH", "/api/v1/groups/"+c.pos[0], map[string]any{"settings": settings}, &g); err != nil {
			return err
		}
		json.Unmarshal(g.Settings, &settings)
		ds, _ = settings["dataStore"].(map[string]any)
		if ds == nil {
			ds = map[string]any{}
		}
	}
	str := func(k, dflt string) string {
		if v, ok := ds[k]; ok && fmt.Sprint(v) != "" {
			return fmt.Sprint(v)
		}
		return dflt
	}
	return c.show(ds, []string{"GROUP", "ENABLED", "MAX PAYLOAD", "TIMESTAMP POINTER", "BATCH POINTER", "CATEGORY", "RETENTION"},
		[][]string{{g.ID, str("enabled", "false"), str("maxPayload", "65536"), str("timestampPointer", "-"), str("batchPointer", "-"), str("category", "default"), str("retention", "forever")}})
}
