// SPDX-License-Identifier: Apache-2.0

// Package tai64n encodes the 12-byte TAI64N timestamps that WireGuard
// initiations carry so a responder can refuse replayed initiations.
package tai64n

import (
	"bytes"
	"encoding/binary"
	"time"
)

// Size is the encoded length.
const Size = 12

const (
	base = uint64(0x400000000000000a) // 2^62 + 10: TAI64 label of 1970 (TAI-UTC offset as WireGuard uses it)
	// whiten rounds nanoseconds down so the timestamp does not reveal the
	// sender's clock finely (about 16.8 ms of granularity).
	whiten = 0x1000000 - 1
)

// Timestamp is an encoded TAI64N value. Later timestamps compare greater
// byte-wise.
type Timestamp [Size]byte

// From encodes t.
func From(t time.Time) Timestamp {
	var ts Timestamp
	binary.BigEndian.PutUint64(ts[:8], base+uint64(t.Unix()))
	binary.BigEndian.PutUint32(ts[8:], uint32(t.Nanosecond())&^whiten)
	return ts
}

// After reports whether ts is strictly later than o.
func (ts Timestamp) After(o Timestamp) bool { return bytes.Compare(ts[:], o[:]) > 0 }

// Time decodes ts (for logs and tests).
func (ts Timestamp) Time() time.Time {
	s := binary.BigEndian.Uint64(ts[:8]) - base
	return time.Unix(int64(s), int64(binary.BigEndian.Uint32(ts[8:])))
}
