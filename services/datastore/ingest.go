// SPDX-License-Identifier: Apache-2.0

package datastore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/jsonpointer"
)

// Content types given to records.
const (
	ContentJSON   = "application/json"
	ContentBinary = "application/octet-stream"
)

// Reasons a message is refused, as metric labels and in answers.
const (
	ReasonUnknownCaller = "unknown_caller" // no SIM behind the source address
	ReasonDisabled      = "disabled"       // the SIM's group has the data store off
	ReasonTooLarge      = "too_large"
	ReasonRateLimited   = "rate_limited"  // the SIM sends more messages than its rate
	ReasonBadJSON       = "bad_json"      // JSON content that does not parse, or a pointer it does not satisfy
	ReasonBadTimestamp  = "bad_timestamp" // the timestamp pointer names something that is not a time
	ReasonStore         = "store_error"   // the database failed: nothing acknowledged
	ReasonMethod        = "bad_method"
)

// Reject is why a message was not stored: a status (HTTP semantics, also
// the first word of TCP and UDP answers), a reason code and a message.
type Reject struct {
	Status  int
	Reason  string
	Message string
}

func (r *Reject) Error() string { return r.Message }

func reject(status int, reason, format string, args ...any) *Reject {
	return &Reject{Status: status, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// isJSONType reports whether a media type is JSON (application/json or
// a +json suffix).
func isJSONType(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// sniff gives a message without a declared type one: JSON when it is a
// JSON object or array, binary otherwise.
func sniff(body []byte) string {
	t := bytes.TrimSpace(body)
	if len(t) > 0 && (t[0] == '{' || t[0] == '[') && json.Valid(t) {
		return ContentJSON
	}
	return ContentBinary
}

// Records turns one message of a device into records, following its
// group's settings: the batch pointer splits a JSON array into one record
// per element, the timestamp pointer dates each record (now when it names
// nothing). contentType "" means undeclared (TCP, UDP): it is sniffed.
// The size limit is checked by the caller, which reads the message.
func Records(set fleet.DataStoreSettings, sim fleet.SIM, contentType string, body []byte, now time.Time) ([]fleet.Record, error) {
	if contentType == "" {
		contentType = sniff(body)
	}
	rec := fleet.Record{SIMID: sim.ID, GroupID: sim.GroupID, Time: now, Received: now, Category: set.RecordCategory(), ContentType: contentType}
	if !isJSONType(contentType) {
		rec.Payload = body
		return []fleet.Record{rec}, nil
	}
	if !json.Valid(body) {
		return nil, reject(http.StatusBadRequest, ReasonBadJSON, "the payload is declared JSON but does not parse")
	}
	docs := [][]byte{body}
	if set.BatchPointer != "" {
		p, err := jsonpointer.Parse(set.BatchPointer)
		if err != nil {
			return nil, reject(http.StatusBadRequest, ReasonBadJSON, "the group's batch pointer is bad: %v", err)
		}
		v, err := p.Resolve(body)
		if err != nil {
			return nil, reject(http.StatusBadRequest, ReasonBadJSON, "batch pointer %s: %v", set.BatchPointer, err)
		}
		var elems []json.RawMessage
		if bytes.HasPrefix(v, []byte("[")) {
			err = json.Unmarshal(v, &elems)
		}
		if err != nil || !bytes.HasPrefix(v, []byte("[")) {
			return nil, reject(http.StatusBadRequest, ReasonBadJSON, "batch pointer %s does not name an array", set.BatchPointer)
		}
		docs = docs[:0]
		for _, e := range elems {
			docs = append(docs, e)
		}
	}
	var ts jsonpointer.Pointer
	if set.TimestampPointer != "" {
		var err error
		if ts, err = jsonpointer.Parse(set.TimestampPointer); err != nil {
			return nil, reject(http.StatusBadRequest, ReasonBadJSON, "the group's timestamp pointer is bad: %v", err)
		}
	}
	recs := make([]fleet.Record, 0, len(docs))
	for i, d := range docs {
		r := rec
		r.Payload = d
		if set.BatchPointer != "" {
			r.ContentType = ContentJSON // an element of a JSON array
		}
		if ts != nil {
			t, err := timestamp(ts, d)
			if err != nil {
				where := ""
				if set.BatchPointer != "" {
					where = fmt.Sprintf(" (batch element %d)", i)
				}
				return nil, reject(http.StatusBadRequest, ReasonBadTimestamp, "timestamp pointer %s%s: %v", set.TimestampPointer, where, err)
			}
			if t.After(now.Add(MaxFutureSkew)) {
				// A record from the future would never expire (retention
				// goes by record time) and would always list first.
				return nil, reject(http.StatusBadRequest, ReasonBadTimestamp, "timestamp pointer %s: %s is more than %v ahead of the server's clock", set.TimestampPointer, t.Format(time.RFC3339), MaxFutureSkew)
			}
			if !t.IsZero() {
				r.Time = t
			}
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// MaxFutureSkew is how far ahead of the server's clock a payload's
// timestamp may be (device clocks drift; records from the future would
// defeat retention).
const MaxFutureSkew = 10 * time.Minute

// Times the data store accepts from payloads.
var (
	minTime = time.Unix(0, 0)
	maxTime = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC) // int64 nanoseconds end in 2262
)

// timestamp reads the time at p in doc: a number of Unix milliseconds or
// an RFC 3339 string. Nothing there (or null) gives the zero time.
func timestamp(p jsonpointer.Pointer, doc []byte) (time.Time, error) {
	v, err := p.Resolve(doc)
	if errors.Is(err, jsonpointer.ErrNotFound) || bytes.Equal(v, []byte("null")) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	var t time.Time
	switch {
	case len(v) > 0 && v[0] == '"':
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return time.Time{}, err
		}
		if t, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time", s)
		}
	default:
		var ms float64
		if err := json.Unmarshal(v, &ms); err != nil {
			return time.Time{}, fmt.Errorf("%.40s is neither Unix milliseconds nor an RFC 3339 string", v)
		}
		if ms < 0 || ms >= float64(maxTime.UnixMilli()) {
			return time.Time{}, fmt.Errorf("%.40s milliseconds is out of range", v)
		}
		t = time.UnixMilli(int64(ms)).Add(time.Duration((ms - float64(int64(ms))) * 1e6))
	}
	if t.Before(minTime) || !t.Before(maxTime) {
		return time.Time{}, fmt.Errorf("%s is out of range (1970 to 2261)", t.UTC().Format(time.RFC3339))
	}
	return t.UTC(), nil
}
