// SPDX-License-Identifier: Apache-2.0

package forwarder

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/wirefleet/wirefleet/fleet"
)

// What the unified endpoint (package unified) asks of the forwarder: the
// same routes, entered through one address that also feeds the data store.

// HTTPHandler serves HTTP as the forwarder's port 8888 does; the request's
// RemoteAddr must be the device's tunnel address.
func (s *Service) HTTPHandler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// HasHTTPRoute reports whether routes hold one for path.
func HasHTTPRoute(routes []fleet.HTTPForward, path string) bool {
	r, _ := matchHTTP(routes, path)
	return r != nil
}

// HasMessageRoute reports whether a group forwards messages arriving over
// transport ("udp" or "tcp"): UDP routes, and TCP routes to an HTTP(S)
// destination (a tls:// route is a byte stream, not messages).
func HasMessageRoute(f fleet.Forwarders, transport string) bool {
	switch transport {
	case "udp":
		return f.UDP.URL != ""
	case "tcp":
		return strings.HasPrefix(f.TCP.URL, "http://") || strings.HasPrefix(f.TCP.URL, "https://")
	}
	return false
}

// Error is why the forwarder did not deliver a message: an HTTP-style
// status, a reason code and a message.
type Error struct {
	Status  int
	Reason  string
	Message string
}

func (e *Error) Error() string { return e.Reason + ": " + e.Message }

// Message forwards one message of the device at from — a UDP datagram or a
// TCP message — along its group's UDP or TCP route, exactly as a datagram
// or message sent to 100.127.127.100:23080 would go, and returns the
// destination's answer.
func (s *Service) Message(ctx context.Context, transport string, from netip.AddrPort, msg []byte) ([]byte, error) {
	kind := kindUDP
	if transport == "tcp" {
		kind = kindTCPHTTP
	}
	s.m.request(kind)
	fail := func(f *failure, id Identity) ([]byte, error) {
		s.m.fail(kind, f.reason)
		s.log.Warn("forward failed", "kind", kind, "sim", id.SIMID, "group", id.Group, "reason", f.reason, "msg", f.msg)
		return nil, &Error{Status: f.status, Reason: f.reason, Message: f.msg}
	}
	caller, id, ok := s.caller(ctx, from.String())
	if !ok {
		return fail(&failure{"unknown_sim", http.StatusForbidden, "no active SIM sends from this address"}, id)
	}
	if len(msg) > MaxMessage {
		return fail(&failure{"too_large", http.StatusRequestEntityTooLarge, "messages are limited to 64 KiB"}, id)
	}
	if !HasMessageRoute(caller.Group.Forwarders, transport) {
		return fail(&failure{"no_route", http.StatusNotFound, "no " + transport + " forwarder route to an HTTP(S) destination in this SIM's group"}, id)
	}
	var (
		raw, secret, caPEM, ctype string
		cred                      fleet.Credential
		body                      = msg
	)
	if transport == "udp" {
		r := caller.Group.Forwarders.UDP
		raw, secret, cred, caPEM, ctype = r.URL, r.Secret, r.Credential, r.CAPEM, "application/json"
		body, _ = json.Marshal(UDPMessage{SIMID: id.SIMID, IMSI: id.IMSI, Group: id.Group, Timestamp: s.cfg.Clock.Now().UnixMilli(), Port: from.Port(), Payload: msg})
	} else {
		r := caller.Group.Forwarders.TCP
		raw, secret, cred, caPEM, ctype = r.URL, r.Secret, r.Credential, r.CAPEM, "application/octet-stream"
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fail(&failure{"destination_error", http.StatusBadGateway, "bad destination URL"}, id)
	}
	answer, f := s.post(kind, id, u, ctype, body, secret, cred, caPEM)
	if f != nil {
		return fail(f, id)
	}
	return answer, nil
}
