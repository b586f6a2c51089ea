// SPDX-License-Identifier: Apache-2.0

package api

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api/apiv1"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// captureCreateRequest asks for a packet capture session.
type captureCreateRequest struct {
	SIMID    string `json:"simId"`
	GroupID  string `json:"groupId"`
	Duration int64  `json:"duration"` // seconds
	Prefix   string `json:"prefix"`
	Protocol string `json:"protocol"`
	Port     int    `json:"port"`
	MaxBytes int64  `json:"maxBytes"`
}

// captureURLValid is how long a download link works.
const captureURLValid = 10 * time.Minute

func init() {
	c := props{"id": str(""), "simId": str(""), "groupId": str(""), "prefix": str("CIDR"), "protocol": enum("", "tcp", "udp", "icmp"), "port": integer(),
		"maxBytes": integer(), "status": enum("REQUESTED", "CAPTURING", "POST_PROCESSING", "DONE", "FAILED", "STOPPED"), "reason": str(""),
		"packets": integer(), "bytes": integer(), "created": dateTime(), "started": dateTime(), "ended": dateTime(),
		"expires": dateTime(), "createdBy": str("actor"), "duration": integer()}
	schemas["Capture"] = obj(c)
	schemas["CapturePage"] = page("Capture")
	schemas["CaptureCreateRequest"] = obj(props{"simId": str("the SIM, or"), "groupId": str("the group"), "duration": integer(), "prefix": str("CIDR: only packets to or from it"),
		"protocol": enum("", "tcp", "udp", "icmp"), "port": integer(), "maxBytes": integer()}, "duration")
	schemas["CaptureURL"] = obj(props{"url": str("path with expiry and signature, no token needed"), "expires": dateTime()})
}

// captureRoutes are the packet capture routes.
func (h *Handler) captureRoutes() []route {
	return []route{
		{method: "GET", path: "/api/v1/captures", summary: "List packet capture sessions.", role: fleet.RoleViewer, response: "CapturePage", query: []string{"limit", "cursor"}, handle: h.listCaptures},
		{method: "POST", path: "/api/v1/captures", summary: "Start a packet capture session on a SIM or a group (30 s to 24 h).", role: fleet.RoleOperator, request: "CaptureCreateRequest", response: "Capture", handle: h.createCapture},
		{method: "GET", path: "/api/v1/captures/{id}", summary: "Get a capture session.", role: fleet.RoleViewer, response: "Capture", handle: h.getCapture},
		{method: "POST", path: "/api/v1/captures/{id}/stop", summary: "Stop a capturing session (400 unless CAPTURING); its file is kept.", role: fleet.RoleOperator, response: "Capture", handle: h.stopCapture},
		{method: "DELETE", path: "/api/v1/captures/{id}", summary: "Delete a capture session and its file.", role: fleet.RoleOperator, handle: removeByID(h.svc.DeleteCapture)},
		{method: "GET", path: "/api/v1/captures/{id}/file", summary: "Download a session's pcapng file.", role: fleet.RoleViewer, handle: h.captureFile},
		{method: "POST", path: "/api/v1/captures/{id}/url", summary: "A download link for the session's file, valid 10 minutes, that needs no token.", role: fleet.RoleViewer, response: "CaptureURL", handle: h.captureURL},
		{method: "GET", path: "/api/v1/captures/{id}/download", summary: "Download a session's file by a signed link (expires, signature).", query: []string{"expires", "signature"}, handle: h.captureDownload},
	}
}

func (h *Handler) listCaptures(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	p, err := pageReq(r)
	if err != nil {
		return nil, err
	}
	page, err := h.svc.ListCaptures(ctx, a, p)
	if err != nil {
		return nil, err
	}
	out := store.Page[apiv1.Capture]{Items: make([]apiv1.Capture, len(page.Items)), Next: page.Next}
	for i, c := range page.Items {
		out.Items[i] = apiv1.CaptureOf(c)
	}
	return out, nil
}

func (h *Handler) createCapture(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	var req captureCreateRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	sp := controlplane.CaptureSpec{SIMID: req.SIMID, GroupID: req.GroupID, Duration: time.Duration(req.Duration) * time.Second, Protocol: req.Protocol, MaxBytes: req.MaxBytes}
	if req.Duration < 0 || req.Duration > int64(fleet.MaxCaptureDuration/time.Second) {
		return nil, errorf(fleet.CodeInvalid, "duration", "between 30 and 86400 seconds")
	}
	if req.Port < 0 || req.Port > 65535 {
		return nil, errorf(fleet.CodeInvalid, "port", "a TCP or UDP port")
	}
	sp.Port = uint16(req.Port)
	if req.Prefix != "" {
		p, err := netip.ParsePrefix(req.Prefix)
		if err != nil {
			return nil, errorf(fleet.CodeInvalid, "prefix", "not a CIDR prefix: %q", req.Prefix)
		}
		sp.Prefix = p
	}
	c, err := h.svc.CreateCapture(ctx, a, sp)
	if err != nil {
		return nil, err
	}
	return created{apiv1.CaptureOf(c)}, nil
}

func (h *Handler) getCapture(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	c, err := h.svc.GetCapture(ctx, a, r.PathValue("id"))
	return apiv1.CaptureOf(c), err
}

func (h *Handler) stopCapture(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	c, err := h.svc.StopCapture(ctx, a, r.PathValue("id"))
	return apiv1.CaptureOf(c), err
}

func (h *Handler) captureURL(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	u, exp, err := h.svc.CaptureURL(ctx, a, r.PathValue("id"), captureURLValid)
	if err != nil {
		return nil, err
	}
	return map[string]any{"url": u, "expires": exp}, nil
}

func (h *Handler) captureFile(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	c, err := h.svc.GetCapture(ctx, a, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return h.captureBody(c)
}

func (h *Handler) captureDownload(ctx context.Context, _ controlplane.Actor, r *http.Request) (any, error) {
	id, q := r.PathValue("id"), r.URL.Query()
	if err := h.svc.CheckCaptureURL(id, q.Get("expires"), q.Get("signature")); err != nil {
		return nil, err
	}
	c, err := h.svc.GetCapture(ctx, controlplane.System, id)
	if err != nil {
		return nil, err
	}
	return h.captureBody(c)
}

// captureBody is the session's file, once it has one.
func (h *Handler) captureBody(c fleet.Capture) (any, error) {
	if h.captureDir == "" || c.Status == fleet.CaptureRequested {
		return nil, errorf(fleet.CodeBadState, "status", "the session has no file yet")
	}
	path := filepath.Join(h.captureDir, c.ID+".pcapng")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, errorf(fleet.CodeNotFound, "id", "the session's file is not on this node (or was never written)")
	}
	return fileBody{path: path, name: c.ID + ".pcapng", contentType: "application/x-pcapng"}, nil
}
