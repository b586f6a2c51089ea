package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// dataRecord mirrors the API's DataRecord.
type dataRecord struct {
	ID            int64           `json:"id"`
	SIMID         string          `json:"simId"`
	GroupID       string          `json:"groupId"`
	Time          time.Time       `json:"time"`
	Received      time.Time       `json:"received"`
	Category      string          `json:"category"`
	ContentType   string          `json:"contentType"`
	Size          int             `json:"size"`
	Payload       json.RawMessage `json:"payload,omitempty"`
	PayloadBase64 string          `json:"payloadBase64,omitempty"`
}

// preview is a one-line glimpse of a payload for tables: JSON as sent,
// text as text, anything else as base64.
func (r dataRecord) preview() string {
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

func init() {
	handlers["data list"] = func(c *command, rest []string) error {
		simID := c.fs.String("sim", "", "SIM id: its records")
		groupID := c.fs.String("group", "", "group id: the records its SIMs wrote while in it")
		from := c.fs.String("from", "", "RFC 3339 time: records at or after it")
		to := c.fs.String("to", "", "RFC 3339 time: records before it")
		category := c.fs.String("category", "", "only this category")
		limit := c.fs.Int("limit", 0, "page size (default 100, at most 1000)")
		cursor := c.fs.String("cursor", "", "next-page cursor")
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
		var p page[dataRecord]
		if err := c.call("GET", path+query("from", *from, "to", *to, "category", *category, "limit", itoa(*limit), "cursor", *cursor), nil, &p); err != nil {
			return err
		}
		rows := [][]string{}
		for _, r := range p.Items {
			rows = append(rows, []string{strconv.FormatInt(r.ID, 10), r.Time.UTC().Format(time.RFC3339Nano), r.SIMID, r.Category, r.ContentType, strconv.Itoa(r.Size), r.preview()})
		}
		return c.show(p, []string{"ID", "TIME", "SIM", "CATEGORY", "TYPE", "SIZE", "PAYLOAD"}, rows, nextHint(p.Next))
	}
}
