// SPDX-License-Identifier: Apache-2.0

package api

import (
	"context"
	"net/http"
	"net/netip"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// mappingCreateRequest opens remote access to a device port.
type mappingCreateRequest struct {
	SIMID           string   `json:"simId"`
	Port            int      `json:"port"`
	Target          string   `json:"target"`
	DurationSeconds int64    `json:"durationSeconds"`
	AllowedSources  []string `json:"allowedSources"`
	TLS             bool     `json:"tls"`
	MaxConnections  int      `json:"maxConnections"`
}

func init() {
	mapping := props{"id": str(""), "simId": str(""), "port": integer(), "target": str("LAN host the mapping reaches, if not the SIM"), "host": str("public host operators connect to"),
		"publicPort": integer(), "allowedSources": arr(str("CIDR")), "tls": boolean(), "maxConnections": integer(),
		"created": dateTime(), "expires": dateTime(), "createdBy": str("actor"),
		"tlsFingerprint": str("SHA-256 of the certificate served on the public port (TLS mappings)")}
	schemas["Mapping"] = obj(mapping)
	schemas["MappingPage"] = page("Mapping")
	schemas["MappingCreateRequest"] = obj(props{"simId": str(""), "port": integer(), "target": str("a host on one of the SIM's LANs, as the fleet reaches it (mapped address); absent: the SIM itself"), "durationSeconds": integer(),
		"allowedSources": arr(str("CIDR; 0.0.0.0/0 to allow anyone")), "tls": boolean(), "maxConnections": integer()}, "simId", "port", "allowedSources")
}

// mappingRoutes are the remote-access routes.
func (h *Handler) mappingRoutes() []route {
	return []route{
		{method: "GET", path: "/api/v1/mappings", summary: "List remote-access port mappings.", role: fleet.RoleViewer, response: "MappingPage", query: []string{"limit", "cursor", "simId"}, handle: h.listMappings},
		{method: "POST", path: "/api/v1/mappings", summary: "Open remote access to a device's TCP port for a while, from the allowed sources; the answer names the public host and port.", role: fleet.RoleOperator, request: "MappingCreateRequest", response: "Mapping", handle: h.createMapping},
		{method: "GET", path: "/api/v1/mappings/{id}", summary: "Get a port mapping.", role: fleet.RoleViewer, response: "Mapping", handle: byID(h.svc.GetMapping)},
		{method: "DELETE", path: "/api/v1/mappings/{id}", summary: "End a port mapping: its port closes and its connections end.", role: fleet.RoleOperator, handle: removeByID(h.svc.DeleteMapping)},
	}
}

// listMappings serves GET /api/v1/mappings: list remote-access port mappings.
func (h *Handler) listMappings(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	p, err := pageReq(r)
	if err != nil {
		return nil, err
	}
	return h.svc.ListMappings(ctx, a, store.MappingFilter{PageRequest: p, SIMID: r.URL.Query().Get("simId")})
}

// createMapping serves POST /api/v1/mappings: open remote access to a device's TCP port for a while, from the allowed sources; the answer names the public host and port.
func (h *Handler) createMapping(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	var req mappingCreateRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.DurationSeconds < 0 || req.DurationSeconds > int64(365*24*time.Hour/time.Second) {
		return nil, errorf(fleet.CodeInvalid, "durationSeconds", "out of range")
	}
	sources := make([]netip.Prefix, 0, len(req.AllowedSources))
	for _, v := range req.AllowedSources {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			// A bare address is its own /32 or /128.
			addr, aerr := netip.ParseAddr(v)
			if aerr != nil {
				return nil, errorf(fleet.CodeInvalid, "allowedSources", "%q is not a CIDR or an address", v)
			}
			p = netip.PrefixFrom(addr, addr.BitLen())
		}
		sources = append(sources, p)
	}
	var target netip.Addr
	if req.Target != "" {
		var err error
		if target, err = netip.ParseAddr(req.Target); err != nil {
			return nil, errorf(fleet.CodeInvalid, "target", "%q is not an IP address", req.Target)
		}
	}
	m, err := h.svc.CreateMapping(ctx, a, controlplane.MappingSpec{SIMID: req.SIMID, Port: req.Port, Target: target, Duration: time.Duration(req.DurationSeconds) * time.Second,
		AllowedSources: sources, TLS: req.TLS, MaxConnections: req.MaxConnections})
	if err != nil {
		return nil, err
	}
	return created{m}, nil
}
