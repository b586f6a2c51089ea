// SPDX-License-Identifier: Apache-2.0

package attest

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"
)

// MaxListKeys bounds one key list: manufacturing batches are imported in
// files of at most this many keys.
const MaxListKeys = 100_000

// ParseKeyList reads a manufacturing key list, one of:
//
//   - JSON: an array of key strings, or of objects with a "publicKey"
//     string (other members, such as a serial number, are ignored: they
//     are the factory's, not ours);
//   - PEM: one "PUBLIC KEY" block per key, nothing else but blanks
//     between them;
//   - lines: one key per line in any form ParsePublicKey reads; blank
//     lines and lines starting with '#' are skipped.
//
// A key that does not parse, or appears twice, fails the whole list with
// an error naming where it is: an import is all or nothing.
func ParseKeyList(data []byte) ([]PublicKey, error) {
	trimmed := bytes.TrimSpace(data)
	var (
		keys []PublicKey
		err  error
	)
	switch {
	case len(trimmed) == 0:
		return nil, fmt.Errorf("attest: empty key list")
	case trimmed[0] == '[' || trimmed[0] == '{':
		keys, err = parseJSONList(trimmed)
	case bytes.HasPrefix(trimmed, []byte("-----BEGIN")):
		keys, err = parsePEMList(trimmed)
	default:
		keys, err = parseLines(data)
	}
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("attest: the list holds no key")
	}
	return keys, nil
}

// collector appends keys, refusing duplicates and overlong lists.
type collector struct {
	keys []PublicKey
	seen map[PublicKey]string
}

func (c *collector) add(where string, k PublicKey) error {
	if prev, dup := c.seen[k]; dup {
		return fmt.Errorf("attest: %s: the same key as %s", where, prev)
	}
	if len(c.keys) >= MaxListKeys {
		return fmt.Errorf("attest: more than %d keys in one list; split it", MaxListKeys)
	}
	if c.seen == nil {
		c.seen = map[PublicKey]string{}
	}
	c.seen[k] = where
	c.keys = append(c.keys, k)
	return nil
}

func parseJSONList(b []byte) ([]PublicKey, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(b, &items); err != nil {
		return nil, fmt.Errorf("attest: JSON key list: want an array of keys or of {\"publicKey\": …} objects: %v", err)
	}
	var c collector
	for i, raw := range items {
		where := fmt.Sprintf("item %d", i)
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			var obj struct {
				PublicKey *string `json:"publicKey"`
			}
			if err := json.Unmarshal(raw, &obj); err != nil || obj.PublicKey == nil {
				return nil, fmt.Errorf("attest: %s: want a key string or an object with a \"publicKey\" string", where)
			}
			s = *obj.PublicKey
		}
		k, err := ParsePublicKey(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if err := c.add(where, k); err != nil {
			return nil, err
		}
	}
	return c.keys, nil
}

func parsePEMList(b []byte) ([]PublicKey, error) {
	var c collector
	for n := 1; len(bytes.TrimSpace(b)) > 0; n++ {
		where := fmt.Sprintf("PEM block %d", n)
		block, rest := pem.Decode(b)
		if block == nil {
			return nil, fmt.Errorf("attest: %s: malformed PEM or text between blocks", where)
		}
		// pem.Decode skips text before a block: nothing but blanks may be there.
		if before, _, _ := bytes.Cut(b, []byte("-----BEGIN")); len(bytes.TrimSpace(before)) > 0 {
			return nil, fmt.Errorf("attest: %s: text before the block", where)
		}
		if block.Type != "PUBLIC KEY" || len(block.Headers) > 0 {
			return nil, fmt.Errorf("attest: %s: a %q block, want a plain PUBLIC KEY", where, block.Type)
		}
		k, err := fromBytes(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if err := c.add(where, k); err != nil {
			return nil, err
		}
		b = rest
	}
	return c.keys, nil
}

func parseLines(b []byte) ([]PublicKey, error) {
	var c collector
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		where := fmt.Sprintf("line %d", n+1)
		k, err := ParsePublicKey(line)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if err := c.add(where, k); err != nil {
			return nil, err
		}
	}
	return c.keys, nil
}
