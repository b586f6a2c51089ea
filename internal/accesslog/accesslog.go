// SPDX-License-Identifier: Apache-2.0

// Package accesslog holds what the HTTP servers' access logs and request
// metrics need of an answer they did not write themselves: its status.
package accesslog

import "net/http"

// Recorder passes an answer through and keeps its status code (200 until
// WriteHeader says otherwise). Unwrap lets http.ResponseController reach
// the connection underneath (flushes for live views, deadlines).
type Recorder struct {
	http.ResponseWriter
	Code int
}

// NewRecorder wraps w.
func NewRecorder(w http.ResponseWriter) *Recorder {
	return &Recorder{ResponseWriter: w, Code: http.StatusOK}
}

// WriteHeader records code and sends it.
func (r *Recorder) WriteHeader(code int) {
	r.Code = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap returns the wrapped writer.
func (r *Recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
