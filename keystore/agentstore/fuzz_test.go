// SPDX-License-Identifier: Apache-2.0

package agentstore

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParseRequest: no input panics; every error is a bad request; every
// accepted line is canonical (formatting it gives the input back), so no
// two readers can disagree about what a line means.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"version", "public-key wg", "generate slot-1", "delete a.b_c",
		"dh wg static-static AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"dh wg responder-es f+5+sJ/jiHlh8UzIT7Y9RYuw8jjZs9hCA5AywECdVWE=",
		"dh wg initiator-se f+5+sJ/jiHlh8UzIT7Y9RYuw8jjZs9hCA5AywECdVWF=",
		"", " ", "dh", "dh  wg", "public-key wg\r",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := ParseRequest(line)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v is not a bad request", err)
			}
			return
		}
		out := AppendRequest(nil, r)
		if !bytes.Equal(out[:len(out)-1], line) {
			t.Fatalf("%q parsed, but formats as %q", line, out)
		}
		if len(out) > MaxLine {
			t.Fatalf("accepted line of %d bytes", len(out))
		}
	})
}
