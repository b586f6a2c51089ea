// SPDX-License-Identifier: Apache-2.0

package agentstore

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

// Version is what the agent answers to a "version" request.
const Version = "wirefleet-keyd/1"

// MaxLine is the longest request or response line, newline included. The
// longest valid request is about 130 bytes; a peer sending more is not
// speaking this protocol.
const MaxLine = 256

// maxSlot bounds slot names (PKCS#11 labels are usually 32 bytes or more).
const maxSlot = 64

// Op is a request kind.
type Op string

// The requests of protocol version 1.
const (
	OpVersion   Op = "version"
	OpPublicKey Op = "public-key"
	OpDH        Op = "dh"
	OpGenerate  Op = "generate"
	OpDelete    Op = "delete"
)

// Request is one parsed request line.
type Request struct {
	Op      Op
	Slot    string           // every op but version
	Purpose keystore.Purpose // dh only
	Peer    wgkey.Public     // dh only
}

// ErrBadRequest is wrapped by every ParseRequest error.
var ErrBadRequest = errors.New("bad request")

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
}

// ParseRequest parses one request line, without its newline. It accepts
// exactly what AppendRequest writes: single spaces between fields, no
// trailing blanks, canonical base64; anything else is a bad request, so two
// implementations cannot read one line differently.
func ParseRequest(line []byte) (Request, error) {
	var r Request
	if len(line) >= MaxLine {
		return r, badRequest("line longer than %d bytes", MaxLine-1)
	}
	for _, c := range line {
		if c < 0x21 && c != ' ' || c > 0x7e {
			return r, badRequest("byte %#x outside printable ASCII", c)
		}
	}
	f := strings.Split(string(line), " ")
	r.Op = Op(f[0])
	want := 0
	switch r.Op {
	case OpVersion:
		want = 1
	case OpPublicKey, OpGenerate, OpDelete:
		want = 2
	case OpDH:
		want = 4
	default:
		return r, badRequest("unknown request %q", truncate(f[0]))
	}
	if len(f) != want {
		return r, badRequest("%s takes %d fields, got %d", r.Op, want-1, len(f)-1)
	}
	if want == 1 {
		return r, nil
	}
	if err := checkSlot(f[1]); err != nil {
		return r, err
	}
	r.Slot = f[1]
	if r.Op != OpDH {
		return r, nil
	}
	p, ok := parsePurpose(f[2])
	if !ok {
		return r, badRequest("unknown purpose %q", truncate(f[2]))
	}
	r.Purpose = p
	k, err := parseKey(f[3])
	if err != nil {
		return r, badRequest("peer key: %v", err)
	}
	r.Peer = k
	return r, nil
}

// AppendRequest appends r as a request line, newline included.
func AppendRequest(b []byte, r Request) []byte {
	b = append(b, r.Op...)
	if r.Op == OpVersion {
		return append(b, '\n')
	}
	b = append(b, ' ')
	b = append(b, r.Slot...)
	if r.Op == OpDH {
		b = append(b, ' ')
		b = append(b, r.Purpose.String()...)
		b = append(b, ' ')
		b = base64.StdEncoding.AppendEncode(b, r.Peer[:])
	}
	return append(b, '\n')
}

func checkSlot(s string) error {
	if s == "" || len(s) > maxSlot {
		return badRequest("slot name must be 1 to %d bytes", maxSlot)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return badRequest("slot name %q: only letters, digits, '-', '_' and '.'", truncate(s))
		}
	}
	return nil
}

// CheckSlot reports whether s is a valid slot name.
func CheckSlot(s string) error { return checkSlot(s) }

func parsePurpose(s string) (keystore.Purpose, bool) {
	for _, p := range []keystore.Purpose{keystore.StaticStatic, keystore.ResponderES, keystore.InitiatorSE, keystore.KeyProof} {
		if s == p.String() {
			return p, true
		}
	}
	return 0, false
}

// parseKey decodes a canonical standard-base64 32-byte key.
func parseKey(s string) (wgkey.Public, error) {
	var k wgkey.Public
	if len(s) != base64.StdEncoding.EncodedLen(len(k)) {
		return k, fmt.Errorf("want %d base64 characters", base64.StdEncoding.EncodedLen(len(k)))
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != len(k) {
		return k, errors.New("not canonical base64 of 32 bytes")
	}
	copy(k[:], b)
	return k, nil
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// Error codes of protocol version 1, the second field of an "err" line.
const (
	CodeBadRequest  = "bad-request" // the request does not parse
	CodeDenied      = "denied"      // the connecting UID is not allowed
	CodeRefused     = "refused"     // policy declines this DH purpose
	CodeLowOrder    = "low-order"   // the DH result would be all zero
	CodeNotFound    = "not-found"   // no key in the slot
	CodeExists      = "exists"      // generate on a slot that holds a key
	CodeUnavailable = "unavailable" // the backend failed; details in the agent's log
)

// Error is an "err" response from the agent.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return "agentstore: agent: " + e.Code + ": " + e.Message }

// Is lets callers test agent errors against the errors a local store would
// return: keystore.ErrLowOrder, keystore.ErrRefused, fs.ErrNotExist,
// fs.ErrExist, ErrDenied, ErrBadRequest.
func (e *Error) Is(target error) bool {
	switch e.Code {
	case CodeLowOrder:
		return target == keystore.ErrLowOrder
	case CodeRefused:
		return target == keystore.ErrRefused
	case CodeNotFound:
		return target == fs.ErrNotExist
	case CodeExists:
		return target == fs.ErrExist
	case CodeDenied:
		return target == ErrDenied
	case CodeBadRequest:
		return target == ErrBadRequest
	}
	return false
}

// ErrDenied matches the error of a client whose UID the agent refuses.
var ErrDenied = errors.New("agentstore: connection denied")

// parseResponse parses a response line (without newline) into its value or
// an *Error.
func parseResponse(line []byte) (string, error) {
	if v, ok := bytes.CutPrefix(line, []byte("ok")); ok {
		if len(v) == 0 {
			return "", nil
		}
		if v[0] == ' ' {
			return string(v[1:]), nil
		}
	}
	if v, ok := bytes.CutPrefix(line, []byte("err ")); ok {
		code, msg, _ := strings.Cut(string(v), " ")
		return "", &Error{Code: code, Message: msg}
	}
	return "", fmt.Errorf("agentstore: malformed response %q", truncate(string(line)))
}

// errorLine formats an "err" response; newlines in msg are flattened so a
// message cannot forge a second response.
func errorLine(code, msg string) []byte {
	msg = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, msg)
	if len(msg) > MaxLine-len(code)-6 {
		msg = msg[:MaxLine-len(code)-6]
	}
	return []byte("err " + code + " " + msg + "\n")
}
