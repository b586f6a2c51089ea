// SPDX-License-Identifier: Apache-2.0

package jsonpointer

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// The examples of RFC 6901 section 5.
const rfcDoc = `{
  "foo": ["bar", "baz"],
  "": 0,
  "a/b": 1,
  "c%d": 2,
  "e^f": 3,
  "g|h": 4,
  "i\\j": 5,
  "k\"l": 6,
  " ": 7,
  "m~n": 8
}`

func TestRFCExamples(t *testing.T) {
	cases := map[string]string{
		"/foo": `["bar","baz"]`, "/foo/0": `"bar"`, "/": `0`, "/a~1b": `1`, "/c%d": `2`, "/e^f": `3`,
		"/g|h": `4`, "/i\\j": `5`, "/k\"l": `6`, "/ ": `7`, "/m~0n": `8`,
		"#/foo": `["bar","baz"]`, "#/foo/0": `"bar"`, "#/": `0`, "#/a~1b": `1`, "#/c%25d": `2`, "#/%20": `7`, "#/m~0n": `8`,
	}
	for ptr, want := range cases {
		p, err := Parse(ptr)
		if err != nil {
			t.Fatalf("%q: %v", ptr, err)
		}
		got, err := p.Resolve([]byte(rfcDoc))
		if err != nil {
			t.Fatalf("%q: %v", ptr, err)
		}
		var c bytes.Buffer
		json.Compact(&c, got)
		if c.String() != want {
			t.Errorf("%q: got %s, want %s", ptr, c.String(), want)
		}
	}
	for _, whole := range []string{"", "#"} {
		p, err := Parse(whole)
		if err != nil || len(p) != 0 {
			t.Fatalf("%q: %v %v", whole, p, err)
		}
	}
}

func TestBadPointers(t *testing.T) {
	for _, s := range []string{"foo", "/a~", "/a~2", "#%zz", "#foo"} {
		if _, err := Parse(s); err == nil {
			t.Errorf("%q parsed", s)
		}
	}
}

func TestNotFound(t *testing.T) {
	for _, s := range []string{"/nope", "/foo/2", "/foo/01", "/foo/-", "/foo/x", "/foo/0/x", "/m~0n/0"} {
		p, _ := Parse(s)
		if _, err := p.Resolve([]byte(rfcDoc)); !errors.Is(err, ErrNotFound) {
			t.Errorf("%q: %v, want not found", s, err)
		}
	}
}

func TestStringRoundTrip(t *testing.T) {
	for _, s := range []string{"", "/a~1b/m~0n/0", "/", "//x"} {
		p, err := Parse(s)
		if err != nil || p.String() != s {
			t.Errorf("%q → %q %v", s, p.String(), err)
		}
	}
}

// FuzzResolve: any pointer on any bytes never panics; a value found in
// valid JSON is itself valid JSON.
func FuzzResolve(f *testing.F) {
	f.Add("/foo/0", []byte(rfcDoc))
	f.Add("#/a~1b", []byte(`{"a/b":[1,{"c":2}]}`))
	f.Add("/0/0/0", []byte(`[[[1]]]`))
	f.Add("/~", []byte(`{}`))
	f.Fuzz(func(t *testing.T, ptr string, doc []byte) {
		p, err := Parse(ptr)
		if err != nil {
			return
		}
		if _, err := Parse(p.String()); err != nil {
			t.Fatalf("String of a parsed pointer does not parse: %q → %q: %v", ptr, p.String(), err)
		}
		v, err := p.Resolve(doc)
		if err == nil && json.Valid(doc) && !json.Valid(v) {
			t.Fatalf("%q in %q gave invalid %q", ptr, doc, v)
		}
	})
}
