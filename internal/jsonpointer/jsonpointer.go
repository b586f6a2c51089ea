// SPDX-License-Identifier: Apache-2.0

// Package jsonpointer parses JSON Pointers (RFC 6901) and resolves them in
// raw JSON without decoding more than the path walked, so the value found
// keeps its bytes exactly as sent (the data store stores batch elements
// as the device wrote them).
package jsonpointer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Pointer is a parsed JSON Pointer: the reference tokens, unescaped. The
// zero Pointer refers to the whole document.
type Pointer []string

// MaxTokens bounds a pointer's depth.
const MaxTokens = 32

// Parse parses s in the JSON string form ("/a/b", "" for the whole
// document) or the URI fragment form ("#/a/b", "#" for the whole
// document; percent-encoded).
func Parse(s string) (Pointer, error) {
	if frag, ok := strings.CutPrefix(s, "#"); ok {
		dec, err := url.PathUnescape(frag)
		if err != nil {
			return nil, fmt.Errorf("bad percent-encoding in %q", s)
		}
		s = dec
	}
	if s == "" {
		return Pointer{}, nil
	}
	if s[0] != '/' {
		return nil, fmt.Errorf("%q must start with '/' (or '#')", s)
	}
	parts := strings.Split(s[1:], "/")
	if len(parts) > MaxTokens {
		return nil, fmt.Errorf("%q is deeper than %d tokens", s, MaxTokens)
	}
	p := make(Pointer, len(parts))
	for i, t := range parts {
		// "~1" before "~0": "~01" is "~1", not "/".
		for j := 0; j < len(t); j++ {
			if t[j] == '~' && (j+1 == len(t) || (t[j+1] != '0' && t[j+1] != '1')) {
				return nil, fmt.Errorf("%q: '~' must be followed by 0 or 1", s)
			}
		}
		p[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	}
	return p, nil
}

// String returns the pointer in its JSON string form.
func (p Pointer) String() string {
	var b strings.Builder
	for _, t := range p {
		b.WriteByte('/')
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1"))
	}
	return b.String()
}

// ErrNotFound is returned when the pointer names nothing in the document.
var ErrNotFound = errors.New("nothing at the pointer")

// Resolve returns the raw JSON value doc holds at p. doc must be valid
// JSON (it is not fully validated here: use json.Valid first).
func (p Pointer) Resolve(doc []byte) (json.RawMessage, error) {
	cur := json.RawMessage(bytes.TrimSpace(doc))
	for _, tok := range p {
		switch firstByte(cur) {
		case '{':
			var m map[string]json.RawMessage
			if err := json.Unmarshal(cur, &m); err != nil {
				return nil, err
			}
			v, ok := m[tok]
			if !ok {
				return nil, ErrNotFound
			}
			cur = v
		case '[':
			// RFC 6901: decimal digits without leading zeros; "-" (past
			// the end) names nothing to read.
			if tok == "" || (len(tok) > 1 && tok[0] == '0') || strings.TrimLeft(tok, "0123456789") != "" {
				return nil, ErrNotFound
			}
			i, err := strconv.Atoi(tok)
			if err != nil {
				return nil, ErrNotFound
			}
			var a []json.RawMessage
			if err := json.Unmarshal(cur, &a); err != nil {
				return nil, err
			}
			if i >= len(a) {
				return nil, ErrNotFound
			}
			cur = a[i]
		default:
			return nil, ErrNotFound
		}
	}
	return cur, nil
}

func firstByte(b []byte) byte {
	if len(b) == 0 {
		return 0
	}
	return b[0]
}
