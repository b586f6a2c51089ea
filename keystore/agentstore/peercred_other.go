// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package agentstore

import (
	"errors"
	"net"
)

type cred struct {
	UID uint32
	PID int32
}

// peerCred fails closed where SO_PEERCRED is not implemented here: no
// connection is served without a credential check.
func peerCred(net.Conn) (cred, error) {
	return cred{}, errors.New("peer credentials are only implemented on Linux")
}
