// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
)

// A minimal SOCKS5 server (RFC 1928): no authentication (it listens on
// loopback for the device's own programs), CONNECT only. Written here
// because no maintained server library is reachable from this project's
// module proxy; the request parser is fuzzed.

const (
	socksVersion    = 5
	socksNoAuth     = 0
	socksNoMethod   = 0xff
	socksConnect    = 1
	socksAtypIPv4   = 1
	socksAtypDomain = 3
	socksAtypIPv6   = 4

	socksOK                 = 0
	socksGeneralFailure     = 1
	socksHostUnreachable    = 4
	socksCommandUnsupported = 7
	socksAtypUnsupported    = 8
)

var errSocks = errors.New("socks5: malformed request")

// socksHandshake reads the method negotiation and the request from r,
// answers the negotiation on w, and returns the requested destination as
// host:port. On a bad request it answers with the matching error reply.
func socksHandshake(r io.Reader, w io.Writer) (string, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return "", err
	}
	if hdr[0] != socksVersion || hdr[1] == 0 {
		return "", fmt.Errorf("%w: version %d, %d methods", errSocks, hdr[0], hdr[1])
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(r, methods); err != nil {
		return "", err
	}
	ok := false
	for _, m := range methods {
		ok = ok || m == socksNoAuth
	}
	if !ok {
		w.Write([]byte{socksVersion, socksNoMethod})
		return "", fmt.Errorf("%w: client offers no method without authentication", errSocks)
	}
	if _, err := w.Write([]byte{socksVersion, socksNoAuth}); err != nil {
		return "", err
	}
	var req [4]byte
	if _, err := io.ReadFull(r, req[:]); err != nil {
		return "", err
	}
	if req[0] != socksVersion {
		return "", fmt.Errorf("%w: request version %d", errSocks, req[0])
	}
	if req[1] != socksConnect {
		socksReply(w, socksCommandUnsupported)
		return "", fmt.Errorf("%w: command %d unsupported (CONNECT only)", errSocks, req[1])
	}
	var host string
	switch req[3] {
	case socksAtypIPv4:
		var a [4]byte
		if _, err := io.ReadFull(r, a[:]); err != nil {
			return "", err
		}
		host = net.IP(a[:]).String()
	case socksAtypIPv6:
		var a [16]byte
		if _, err := io.ReadFull(r, a[:]); err != nil {
			return "", err
		}
		host = net.IP(a[:]).String()
	case socksAtypDomain:
		var n [1]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return "", err
		}
		if n[0] == 0 {
			socksReply(w, socksGeneralFailure)
			return "", fmt.Errorf("%w: empty domain", errSocks)
		}
		d := make([]byte, n[0])
		if _, err := io.ReadFull(r, d); err != nil {
			return "", err
		}
		host = string(d)
	default:
		socksReply(w, socksAtypUnsupported)
		return "", fmt.Errorf("%w: address type %d", errSocks, req[3])
	}
	var port [2]byte
	if _, err := io.ReadFull(r, port[:]); err != nil {
		return "", err
	}
	return net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(port[:])))), nil
}

// socksReply sends a reply with the given code and an empty IPv4 bound
// address.
func socksReply(w io.Writer, code byte) error {
	_, err := w.Write([]byte{socksVersion, code, 0, socksAtypIPv4, 0, 0, 0, 0, 0, 0})
	return err
}
