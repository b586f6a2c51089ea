// SPDX-License-Identifier: Apache-2.0

// Package jsonbody reads an HTTP request body that must be exactly one
// JSON object, strictly, for both APIs (REST and Arc): unknown fields,
// wrong types, a JSON null, trailing data and oversized bodies are
// refused with a fleet error naming the field at fault.
package jsonbody

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/wirefleet/wirefleet/fleet"
)

// Decode reads exactly one JSON object from body into dst. max is the
// body limit the caller's http.MaxBytesReader enforces, for the message.
func Decode(body io.Reader, dst any, max int64) error {
	// One JSON value first, then: nothing after it, an object (a JSON
	// null would decode as an empty request), and strictly into dst.
	dec := json.NewDecoder(body)
	var raw json.RawMessage
	err := dec.Decode(&raw)
	if err == nil {
		if _, err2 := dec.Token(); err2 != io.EOF {
			return fleet.Errorf(fleet.CodeBadJSON, "", "trailing data after the JSON object")
		}
		if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
			return fleet.Errorf(fleet.CodeBadJSON, "", "body must be a JSON object")
		}
		strict := json.NewDecoder(bytes.NewReader(raw))
		strict.DisallowUnknownFields()
		if err = strict.Decode(dst); err == nil {
			return nil
		}
	}
	var (
		maxErr  *http.MaxBytesError
		synErr  *json.SyntaxError
		typeErr *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &maxErr):
		return fleet.Errorf(fleet.CodeTooLarge, "", "body larger than %d bytes", max)
	case errors.Is(err, io.EOF):
		return fleet.Errorf(fleet.CodeBadJSON, "", "empty body; send a JSON object")
	case errors.As(err, &synErr), errors.Is(err, io.ErrUnexpectedEOF):
		return fleet.Errorf(fleet.CodeBadJSON, "", "malformed JSON: %v", err)
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return fleet.Errorf(fleet.CodeBadJSON, "", "body must be a JSON object")
		}
		return fleet.Errorf(fleet.CodeInvalid, field, "wrong type: got JSON %s, want %s", typeErr.Value, typeErr.Type)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		field, _ := strconv.Unquote(name)
		return fleet.Errorf(fleet.CodeUnknownField, field, "unknown field")
	}
	return fleet.Errorf(fleet.CodeBadJSON, "", "%v", err)
}
