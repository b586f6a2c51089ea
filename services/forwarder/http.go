// SPDX-License-Identifier: Apache-2.0

package forwarder

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
)

// HeaderError names the reason of a failure the forwarder itself answers
// (the body is JSON {"code", "message"}).
const HeaderError = "X-Wirefleet-Error"

// outbound is one request to a destination.
type outbound struct {
	kind   string
	method string
	url    *url.URL
	header http.Header // what the device sent and may pass on, or nil
	ctype  string      // Content-Type when header is nil
	body   []byte
	secret string // sealed signature secret
	beam   fleet.BeamSignature
	cred   fleet.Credential
	caPEM  string
}

// send delivers o with the device's identity, signatures and the route's
// credential, retrying only when the destination could not be reached (so
// nothing is delivered twice). The caller closes the answer's body.
func (s *Service) send(ctx context.Context, id Identity, o outbound) (*http.Response, *failure) {
	secret, err := s.open(o.secret)
	if err != nil {
		return nil, s.secretFailure(o.kind, "secret", err)
	}
	var beamSecret, credValue string
	if len(o.beam.Fields) > 0 {
		if beamSecret, err = s.open(o.beam.Secret); err != nil {
			return nil, s.secretFailure(o.kind, "beamSignature.secret", err)
		}
	}
	if o.cred.Type != "" {
		if credValue, err = s.open(o.cred.Value); err != nil {
			return nil, s.secretFailure(o.kind, "credential", err)
		}
	}
	client, err := s.client(o.caPEM)
	if err != nil {
		return nil, &failure{"tls", http.StatusBadGateway, err.Error()}
	}
	for attempt := 0; ; attempt++ {
		ms := s.cfg.Clock.Now().UnixMilli()
		actx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		req, err := http.NewRequestWithContext(actx, o.method, o.url.String(), bytes.NewReader(o.body))
		if err != nil {
			cancel()
			return nil, &failure{"destination_error", http.StatusBadGateway, "bad destination URL"}
		}
		if o.header != nil {
			req.Header = o.header.Clone()
		} else if o.ctype != "" {
			req.Header.Set("Content-Type", o.ctype)
		}
		req.Header.Set(HeaderSIMID, id.SIMID)
		req.Header.Set(HeaderIMSI, id.IMSI)
		req.Header.Set(HeaderGroup, id.Group)
		req.Header.Set(HeaderTimestamp, strconv.FormatInt(ms, 10))
		if secret != "" {
			req.Header.Set(HeaderSignature, "v1="+Sign(secret, CanonicalString(id, ms, o.method, o.url.RequestURI(), o.body)))
		}
		if len(o.beam.Fields) > 0 {
			sig, hs := BeamSignature(beamSecret, o.beam.Fields, id, ms)
			for _, h := range hs {
				req.Header.Set(h[0], h[1])
			}
			req.Header.Set(BeamHeaderSignature, sig)
			req.Header.Set(BeamHeaderSignatureVersion, BeamSignatureVersion)
		}
		switch o.cred.Type {
		case fleet.CredentialBearer:
			req.Header.Set("Authorization", "Bearer "+credValue)
		case fleet.CredentialBasic:
			req.SetBasicAuth(o.cred.Username, credValue)
		case fleet.CredentialHeader:
			req.Header.Set(o.cred.Header, credValue)
		}
		resp, err := client.Do(req)
		if err == nil {
			// The answer's body is read under the attempt's deadline.
			resp.Body = cancelOnClose{resp.Body, cancel}
			return resp, nil
		}
		cancel()
		if attempt < s.cfg.Retries && dialError(err) && ctx.Err() == nil && backoff(ctx, attempt) {
			continue
		}
		return nil, classify(err, s.cfg.Timeout)
	}
}

func (s *Service) secretFailure(kind, which string, err error) *failure {
	// The error names no secret; only which one could not be opened.
	s.log.Error("a stored forwarder secret cannot be opened (was the seal key replaced?)", "kind", kind, "which", which, "err", err)
	return &failure{"secret", http.StatusBadGateway, "the route's stored secret cannot be used"}
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// matchHTTP returns the route with the longest prefix matching path (on
// segment boundaries: "/t" matches "/t" and "/t/x", not "/tx") and the
// rest of the path after it.
func matchHTTP(routes []fleet.HTTPForward, path string) (*fleet.HTTPForward, string) {
	return fleet.MatchHTTPRoute(routes, path)
}

// badPath reports whether a (decoded) request path could climb out of
// a route's base path at the destination.
func badPath(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\\\x00") {
		return true
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// destURL is the route's URL with the rest of the device's path appended
// and the device's query added.
func destURL(route string, rest, rawQuery string) (*url.URL, error) {
	u, err := url.Parse(route)
	if err != nil {
		return nil, err
	}
	if rest != "" && rest != "/" {
		u.Path = strings.TrimSuffix(u.Path, "/") + rest
		u.RawPath = ""
	} else if rest == "/" && !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	if rawQuery != "" {
		if u.RawQuery != "" {
			u.RawQuery += "&" + rawQuery
		} else {
			u.RawQuery = rawQuery
		}
	}
	return u, nil
}

// hopHeaders are never passed on, either way.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// deviceHeaders is what of the device's headers reaches the destination:
// not its credentials, identity or signature headers (only the forwarder
// says who the device is), hop-by-hop or forwarding ones.
func deviceHeaders(in http.Header, credHeader string) http.Header {
	out := make(http.Header, len(in))
	drop := map[string]bool{}
	for _, v := range in.Values("Connection") {
		for _, f := range strings.Split(v, ",") {
			drop[http.CanonicalHeaderKey(strings.TrimSpace(f))] = true
		}
	}
	for k, vs := range in {
		ck := http.CanonicalHeaderKey(k)
		switch {
		case drop[ck], fleet.ReservedHeader(ck), credHeader != "" && strings.EqualFold(ck, credHeader),
			ck == "Forwarded", strings.HasPrefix(ck, "X-Forwarded-"), ck == "X-Real-Ip", ck == "Expect":
			continue
		}
		out[ck] = vs
	}
	for _, h := range hopHeaders {
		out.Del(h)
	}
	return out
}

// fail answers the device with a failure and counts it.
func (s *Service) httpFail(w http.ResponseWriter, f *failure, id Identity, start time.Time) {
	s.m.fail(kindHTTP, f.reason)
	s.log.Warn("forward failed", "kind", kindHTTP, "sim", id.SIMID, "group", id.Group, "reason", f.reason, "status", f.status, "msg", f.msg, "ms", time.Since(start).Milliseconds())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(HeaderError, f.reason)
	w.WriteHeader(f.status)
	json.NewEncoder(w).Encode(map[string]string{"code": f.reason, "message": f.msg})
}

func (s *Service) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s.m.request(kindHTTP)
	caller, id, ok := s.caller(r.Context(), r.RemoteAddr)
	if !ok {
		s.httpFail(w, &failure{"unknown_sim", http.StatusForbidden, "no active SIM sends from this address"}, id, start)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
	default:
		s.httpFail(w, &failure{"bad_request", http.StatusMethodNotAllowed, "method " + r.Method + " is not forwarded"}, id, start)
		return
	}
	if badPath(r.URL.Path) {
		// "/cloud/../admin" would leave the route's base path at the
		// destination, with the route's credential.
		s.httpFail(w, &failure{"bad_request", http.StatusBadRequest, "the path must start with '/' and hold no '.' or '..' segment or backslash"}, id, start)
		return
	}
	route, rest := matchHTTP(caller.Group.Forwarders.HTTP, r.URL.Path)
	if route == nil {
		s.httpFail(w, &failure{"no_route", http.StatusNotFound, "no forwarder route for " + r.URL.Path + " in this SIM's group"}, id, start)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxHTTPBody))
	if err != nil {
		s.httpFail(w, &failure{"too_large", http.StatusRequestEntityTooLarge, "request bodies are limited to " + strconv.Itoa(MaxHTTPBody) + " bytes"}, id, start)
		return
	}
	u, err := destURL(route.URL, rest, r.URL.RawQuery)
	if err != nil {
		s.httpFail(w, &failure{"destination_error", http.StatusBadGateway, "bad destination URL"}, id, start)
		return
	}
	resp, f := s.send(r.Context(), id, outbound{kind: kindHTTP, method: r.Method, url: u, header: deviceHeaders(r.Header, route.Credential.Header), body: body,
		secret: route.Secret, beam: route.BeamSignature, cred: route.Credential, caPEM: route.CAPEM})
	if f != nil {
		s.httpFail(w, f, id, start)
		return
	}
	defer resp.Body.Close()
	h := w.Header()
	for k, vs := range resp.Header {
		h[k] = vs
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
	h.Del("Content-Length") // re-set by net/http, the body may be cut at MaxHTTPAnswer
	if resp.ContentLength >= 0 && resp.ContentLength <= MaxHTTPAnswer {
		h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	w.WriteHeader(resp.StatusCode)
	n, err := io.Copy(w, io.LimitReader(resp.Body, MaxHTTPAnswer))
	s.m.since(kindHTTP, start)
	if err != nil {
		s.m.fail(kindHTTP, "destination_error")
	}
	s.log.Debug("forwarded", "kind", kindHTTP, "sim", id.SIMID, "group", id.Group, "route", route.PathPrefix, "dest", u.Host, "status", resp.StatusCode, "bytes", n, "ms", time.Since(start).Milliseconds())
}
