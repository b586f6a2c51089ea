// SPDX-License-Identifier: Apache-2.0

package agentstore

import (
	"errors"
	"net"

	"golang.org/x/sys/unix"
)

// cred is what the kernel recorded about the process at the other end of a
// Unix socket when it connected.
type cred struct {
	UID uint32
	PID int32
}

// peerCred reads SO_PEERCRED: the kernel's word, which the client cannot
// forge, unlike anything it writes on the socket.
func peerCred(c net.Conn) (cred, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return cred{}, errors.New("not a Unix socket")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return cred{}, err
	}
	var uc2 *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		uc2, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return cred{}, err
	}
	if serr != nil {
		return cred{}, serr
	}
	return cred{UID: uc2.Uid, PID: uc2.Pid}, nil
}
