// SPDX-License-Identifier: Apache-2.0

package pkcs11store

import (
	"errors"
	"io/fs"
	"time"
)

var (
	// ErrNotFound is returned when the token or the key object does not
	// exist. It matches fs.ErrNotExist, so callers that hold several kinds
	// of store (the key agent) test one error.
	ErrNotFound error = &kindError{"not found", fs.ErrNotExist}
	// ErrExists is returned by Generate when an object already has the
	// label. It matches fs.ErrExist.
	ErrExists error = &kindError{"the label is taken", fs.ErrExist}
	// ErrWrongPIN is returned when the token refuses the user PIN.
	ErrWrongPIN = errors.New("pkcs11store: the token refused the PIN")
	// ErrClosed is returned by calls on a closed Token or its keys.
	ErrClosed = errors.New("pkcs11store: token closed")
	// ErrNoCgo is returned by OpenToken in a build without cgo, which
	// cannot load a PKCS#11 module.
	ErrNoCgo = errors.New("pkcs11store: built without cgo; PKCS#11 modules cannot be loaded")
	// ErrUnsupported is returned when the token can make no X25519 key.
	ErrUnsupported = errors.New("pkcs11store: the token supports no X25519 key type")
)

// kindError is a sentinel that also matches a standard error kind.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string        { return e.msg }
func (e *kindError) Is(target error) bool { return target == e.kind }

// Config says which token to open and how.
type Config struct {
	// Module is the path of the PKCS#11 library, e.g.
	// /usr/lib/softhsm/libsofthsm2.so.
	Module string
	// Token is the token label.
	Token string
	// PIN is the user PIN. It is passed to C_Login and never logged or
	// put in an error. The Token keeps it in memory to log in again when
	// the token drops its sessions (reset, reinsertion).
	PIN string
	// Sessions is how many PKCS#11 sessions serve concurrent DHs (default
	// 2). A session serves one call at a time: the standard does not make
	// sessions safe for concurrent use.
	Sessions int
	// DHDelay is added before each DH, to test callers against a slow store
	// (a secure element on I2C takes tens of milliseconds).
	DHDelay time.Duration
}
