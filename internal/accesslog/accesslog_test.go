// SPDX-License-Identifier: Apache-2.0

package accesslog

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// The recorder keeps the status an answer was written with, 200 when
// none was set, and still reaches the connection for a flush.
func TestRecorder(t *testing.T) {
	w := httptest.NewRecorder()
	r := NewRecorder(w)
	r.Write([]byte("x"))
	if r.Code != http.StatusOK {
		t.Fatalf("code %d without WriteHeader, want 200", r.Code)
	}
	w2 := httptest.NewRecorder()
	r2 := NewRecorder(w2)
	r2.WriteHeader(http.StatusTeapot)
	if r2.Code != http.StatusTeapot || w2.Code != http.StatusTeapot {
		t.Fatalf("recorded %d, sent %d, want 418 both", r2.Code, w2.Code)
	}
	if err := http.NewResponseController(r2).Flush(); err != nil {
		t.Fatalf("flush through the recorder: %v", err)
	}
}
