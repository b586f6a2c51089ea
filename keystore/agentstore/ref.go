// SPDX-License-Identifier: Apache-2.0

package agentstore

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
)

// DefaultSlot is the slot a reference without ?slot= names.
const DefaultSlot = "wg"

// Ref names a key held by an agent, as configuration writes it:
//
//	agent:/run/wirefleet/keyd.sock
//	agent:/run/wirefleet/keyd.sock?slot=wg-next
//
// The socket path must be absolute: a relative path would mean a different
// socket depending on the working directory.
type Ref struct {
	Socket string
	Slot   string
}

// ParseRef parses an agent: reference.
func ParseRef(s string) (Ref, error) {
	rest, ok := strings.CutPrefix(s, "agent:")
	if !ok {
		return Ref{}, fmt.Errorf("agentstore: %q is not an agent: reference", s)
	}
	path, query, _ := strings.Cut(rest, "?")
	r := Ref{Socket: path, Slot: DefaultSlot}
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return Ref{}, fmt.Errorf("agentstore: agent socket %q must be a clean absolute path", path)
	}
	if query != "" {
		q, err := url.ParseQuery(query)
		if err != nil {
			return Ref{}, fmt.Errorf("agentstore: %q: %w", s, err)
		}
		for k, v := range q {
			if k != "slot" || len(v) != 1 {
				return Ref{}, fmt.Errorf("agentstore: %q: only one slot= is understood", s)
			}
			r.Slot = v[0]
		}
	}
	if err := CheckSlot(r.Slot); err != nil {
		return Ref{}, fmt.Errorf("agentstore: %q: %w", s, err)
	}
	return r, nil
}

// String formats r as ParseRef reads it.
func (r Ref) String() string {
	if r.Slot == DefaultSlot || r.Slot == "" {
		return "agent:" + r.Socket
	}
	return "agent:" + r.Socket + "?slot=" + r.Slot
}

// Dial is Dial(r.Socket, r.Slot).
func (r Ref) Dial() (*Client, error) { return Dial(r.Socket, r.Slot) }
