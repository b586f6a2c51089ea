// SPDX-License-Identifier: Apache-2.0

package forwarder

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
)

// ForwardRecord posts a record the platform made about a group or one of
// its SIMs (an inspection interval's statistics) along the group's HTTP
// route for path, as a device's POST to that path would go: the route's
// destination, credential and signatures, with the SIM's identity — or,
// when sim is nil, the group's name alone. An answer other than 2xx, or no
// route for path, is an error.
func (s *Service) ForwardRecord(ctx context.Context, groupName string, routes []fleet.HTTPForward, sim *fleet.SIM, path, contentType string, body []byte) error {
	start := time.Now()
	s.m.request(kindRecord)
	id := Identity{Group: groupName}
	if sim != nil {
		id = Identity{SIMID: sim.ID, IMSI: sim.IMSI, Group: groupName, IMEI: sim.Tags["imei"], MSISDN: sim.Tags["msisdn"]}
	}
	fail := func(f *failure) error {
		s.m.fail(kindRecord, f.reason)
		s.log.Warn("forward failed", "kind", kindRecord, "sim", id.SIMID, "group", id.Group, "reason", f.reason, "msg", f.msg)
		return &Error{Status: f.status, Reason: f.reason, Message: f.msg}
	}
	if badPath(path) {
		return fail(&failure{"bad_request", http.StatusBadRequest, "the path must start with '/' and hold no '.' or '..' segment or backslash"})
	}
	route, rest := matchHTTP(routes, path)
	if route == nil {
		return fail(&failure{"no_route", http.StatusNotFound, "no forwarder route for " + path + " in the group"})
	}
	u, err := destURL(route.URL, rest, "")
	if err != nil {
		return fail(&failure{"destination_error", http.StatusBadGateway, "bad destination URL"})
	}
	resp, f := s.send(ctx, id, outbound{kind: kindRecord, method: http.MethodPost, url: u, ctype: contentType, body: body,
		secret: route.Secret, beam: route.BeamSignature, cred: route.Credential, caPEM: route.CAPEM})
	if f != nil {
		return fail(f)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, MaxMessage))
	if resp.StatusCode/100 != 2 {
		return fail(&failure{"destination_status", http.StatusBadGateway, fmt.Sprintf("the destination answered %d", resp.StatusCode)})
	}
	s.m.since(kindRecord, start)
	return nil
}
