// SPDX-License-Identifier: Apache-2.0

package fleet

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/wirefleet/wirefleet/internal/jsonpointer"
)

// Data store limits.
const (
	// DefaultMaxPayload is a message's size limit when a group sets none.
	DefaultMaxPayload = 64 << 10
	// MaxMaxPayload is the largest limit a group may set.
	MaxMaxPayload = 1 << 20
	// DefaultCategory is the category of records when a group sets none.
	DefaultCategory = "default"
)

// DataStoreSettings is what a group's devices may store in the data store
// (100.127.111.111) and how their messages become records.
type DataStoreSettings struct {
	// Enabled lets the group's devices write; off, writes are refused (403).
	Enabled bool `json:"enabled"`
	// MaxPayload bounds one message in bytes (0: DefaultMaxPayload; at
	// most MaxMaxPayload). Larger messages are refused (413).
	MaxPayload int `json:"maxPayload,omitempty"`
	// TimestampPointer, if set, is a JSON Pointer (RFC 6901) to the
	// record's time in a JSON payload: a number of Unix milliseconds or an
	// RFC 3339 string. When it names nothing the server's time is used.
	TimestampPointer string `json:"timestampPointer,omitempty"`
	// BatchPointer, if set, points to an array in a JSON payload whose
	// elements are stored as one record each ("#" for a top-level array).
	BatchPointer string `json:"batchPointer,omitempty"`
	// Category labels the group's records (DefaultCategory when empty).
	Category string `json:"category,omitempty"`
	// Retention is how long records are kept, as a Go duration or a
	// number of days ("720h", "30d"); empty keeps them forever.
	Retention string `json:"retention,omitempty"`
}

var categoryRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,62}$`)

// ValidCategory reports whether s can be a record category: 1-63
// letters, digits, '.', '_', ':', '-', starting with a letter or digit.
func ValidCategory(s string) bool { return categoryRE.MatchString(s) }

// Normalize checks the settings; prefix is the field path of the object.
func (d *DataStoreSettings) Normalize(prefix string) error {
	if d.MaxPayload < 0 || d.MaxPayload > MaxMaxPayload {
		return Errorf(CodeInvalid, prefix+".maxPayload", "must be between 0 (default %d) and %d bytes", DefaultMaxPayload, MaxMaxPayload)
	}
	if d.TimestampPointer != "" {
		if _, err := jsonpointer.Parse(d.TimestampPointer); err != nil {
			return Errorf(CodeInvalid, prefix+".timestampPointer", "not a JSON pointer: %v", err)
		}
	}
	if d.BatchPointer != "" {
		if _, err := jsonpointer.Parse(d.BatchPointer); err != nil {
			return Errorf(CodeInvalid, prefix+".batchPointer", "not a JSON pointer: %v", err)
		}
	}
	if d.Category != "" && !ValidCategory(d.Category) {
		return Errorf(CodeInvalid, prefix+".category", "must be 1-63 characters of letters, digits, '.', '_', ':', '-', starting with a letter or digit")
	}
	if d.Retention != "" {
		r, err := ParseRetention(d.Retention)
		if err != nil {
			return Errorf(CodeInvalid, prefix+".retention", "%v", err)
		}
		if r < time.Minute {
			return Errorf(CodeInvalid, prefix+".retention", "at least one minute")
		}
	}
	return nil
}

// Limit is the effective payload limit.
func (d DataStoreSettings) Limit() int {
	if d.MaxPayload == 0 {
		return DefaultMaxPayload
	}
	return d.MaxPayload
}

// RecordCategory is the effective category.
func (d DataStoreSettings) RecordCategory() string {
	if d.Category == "" {
		return DefaultCategory
	}
	return d.Category
}

// RetentionPeriod is the effective retention; 0 keeps records forever.
func (d DataStoreSettings) RetentionPeriod() time.Duration {
	r, _ := ParseRetention(d.Retention)
	return r
}

// ParseRetention parses a retention: a Go duration ("36h") or whole days
// ("30d"); "" is 0 (forever).
func ParseRetention(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > 100*365 {
			return 0, fmt.Errorf("%q: want whole days between 1 and 36500, like \"30d\"", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q: want a duration like \"720h\" or days like \"30d\"", s)
	}
	return d, nil
}

// Record is one message a device stored in the data store.
type Record struct {
	ID      int64  `json:"id"`
	SIMID   string `json:"simId"`
	GroupID string `json:"groupId"`
	// Time is the record's timestamp: the server's at receipt, or the one
	// the payload carries when the group names it.
	Time time.Time `json:"time"`
	// Received is when the server received it.
	Received    time.Time `json:"received"`
	Category    string    `json:"category"`
	ContentType string    `json:"contentType"`
	Payload     []byte    `json:"payload"`
}
