// SPDX-License-Identifier: Apache-2.0

package fleet

import "fmt"

// Error codes. They are part of the API: clients match on them, so they
// never change meaning.
const (
	CodeInvalid          = "invalid"       // a field's value is not acceptable
	CodeRequired         = "required"      // a required field is missing
	CodeBadJSON          = "bad_json"      // the body is not the expected JSON
	CodeUnknownField     = "unknown_field" // the body has a field we do not know
	CodeTooLarge         = "body_too_large"
	CodeNotFound         = "not_found"
	CodeConflict         = "conflict"     // unique value already taken
	CodeBadState         = "bad_state"    // action not allowed in the object's state
	CodeUnauthorized     = "unauthorized" // no or unknown credential
	CodeForbidden        = "forbidden"    // credential lacks the role
	CodeExhausted        = "exhausted"    // a pool or a key's uses ran out
	CodeMethodNotAllowed = "method_not_allowed"
	CodeRateLimited      = "rate_limited" // too many requests from one source; retry later
	// CodeKeyProof: the request needs a proof that the caller holds the
	// SIM's private key (package keyproof), and had none or a wrong one.
	CodeKeyProof = "key_proof_required"
	CodeInternal = "internal"
	// CodeUnavailable: the fleet database cannot be reached; retry
	// after the answer's Retry-After.
	CodeUnavailable = "store_unavailable"
)

// Error is a failure the caller can act on: a stable code, the field at
// fault (JSON path, "" when not about one field) and a human message.
type Error struct {
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// Error implements error.
func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", e.Code, e.Field, e.Message)
	}
	return e.Code + ": " + e.Message
}

// Errorf returns an *Error.
func Errorf(code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}
