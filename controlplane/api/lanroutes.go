// SPDX-License-Identifier: Apache-2.0

package api

import (
	"context"
	"net/http"
	"net/netip"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api/apiv1"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// lanRouteRequest puts a LAN prefix behind a SIM, or approves one.
type lanRouteRequest struct {
	Prefix       string            `json:"prefix"`
	MappedPrefix string            `json:"mappedPrefix"`
	Map          bool              `json:"map"`
	Hosts        map[string]string `json:"hosts"`
}

// routeHostsRequest replaces a route's named hosts.
type routeHostsRequest struct {
	Prefix string            `json:"prefix"`
	Hosts  map[string]string `json:"hosts"`
}

func parseHosts(in map[string]string) (map[string]netip.Addr, error) {
	if in == nil {
		return nil, nil
	}
	out := make(map[string]netip.Addr, len(in))
	for name, s := range in {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, errorf(fleet.CodeInvalid, "hosts", "%s: %q is not an IP address", name, s)
		}
		out[name] = a
	}
	return out, nil
}

func init() {
	schemas["Route"] = obj(props{"simId": str(""), "prefix": str("the LAN's CIDR, as the device sees it"),
		"mappedPrefix": str("the same-size CIDR the fleet reaches the LAN by; absent when unmapped"),
		"hosts":        strMap(), "status": enum(string(fleet.RouteApproved), string(fleet.RouteAdvertised)), "source": enum(fleet.RouteByOperator, fleet.RouteByDevice),
		"created": dateTime(), "updated": dateTime()})
	schemas["RoutePage"] = page("Route")
	schemas["RouteRequest"] = obj(props{"prefix": str("IPv4 CIDR of the LAN, host bits zero"),
		"mappedPrefix": str("a same-size CIDR inside the LAN pool, to reach the LAN by"),
		"map":          boolean(), "hosts": strMap()}, "prefix")
	schemas["RouteHostsRequest"] = obj(props{"prefix": str("the route's CIDR"), "hosts": strMap()}, "prefix", "hosts")
	schemas["RouteBulkRequest"] = map[string]any{"type": "object", "additionalProperties": str("CIDR behind the SIM"),
		"description": `{"<simId>": "<CIDR>"}: one LAN per SIM, written all or nothing`}
}

// lanRouteRoutes are the routes-behind-SIMs routes.
func (h *Handler) lanRouteRoutes() []route {
	return []route{
		{method: "GET", path: "/api/v1/routes", summary: "List the LAN routes behind SIMs.", role: fleet.RoleViewer, response: "RoutePage", query: []string{"limit", "cursor", "status"}, handle: h.listLANRoutes},
		{method: "PUT", path: "/api/v1/routes", summary: "Put one LAN prefix behind each SIM named (the SORACOM shape {\"<simId>\": \"<CIDR>\"}); ?map=true maps each into the LAN pool. All or nothing.", role: fleet.RoleOperator, request: "RouteBulkRequest", response: "RoutePage", query: []string{"map"}, handle: h.putLANRoutes},
		{method: "GET", path: "/api/v1/sims/{id}/routes", summary: "List a SIM's LAN routes, approved and advertised.", role: fleet.RoleViewer, response: "RoutePage", handle: h.listSIMRoutes},
		{method: "POST", path: "/api/v1/sims/{id}/routes", summary: "Put a LAN prefix behind a SIM, unmapped or mapped (chosen, or allocated with map).", role: fleet.RoleOperator, request: "RouteRequest", response: "Route", handle: h.addSIMRoute},
		{method: "POST", path: "/api/v1/sims/{id}/routes/approve", summary: "Approve a prefix the SIM's device advertised, mapped or not.", role: fleet.RoleOperator, request: "RouteRequest", response: "Route", handle: h.approveSIMRoute},
		{method: "PUT", path: "/api/v1/sims/{id}/routes/hosts", summary: "Name the hosts on one of a SIM's LANs, for the platform DNS (<host>.<sim-id>.lan.<zone>); replaces the names.", role: fleet.RoleOperator, request: "RouteHostsRequest", response: "Route", handle: h.putRouteHosts},
		{method: "DELETE", path: "/api/v1/sims/{id}/routes", summary: "Remove a SIM's route (?prefix=CIDR).", role: fleet.RoleOperator, query: []string{"prefix"}, handle: h.deleteSIMRoute},
	}
}

// parsePrefix reads an optional CIDR field; "" is the zero prefix.
func parsePrefix(field, s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, errorf(fleet.CodeInvalid, field, "%q is not a CIDR prefix", s)
	}
	return p, nil
}

// decodeRouteSpec reads a route request body into its spec.
func decodeRouteSpec(r *http.Request) (controlplane.RouteSpec, error) {
	var req lanRouteRequest
	if err := decode(r, &req); err != nil {
		return controlplane.RouteSpec{}, err
	}
	return req.spec()
}

func (req lanRouteRequest) spec() (controlplane.RouteSpec, error) {
	p, err := parsePrefix("prefix", req.Prefix)
	if err != nil {
		return controlplane.RouteSpec{}, err
	}
	m, err := parsePrefix("mappedPrefix", req.MappedPrefix)
	if err != nil {
		return controlplane.RouteSpec{}, err
	}
	hosts, err := parseHosts(req.Hosts)
	return controlplane.RouteSpec{Prefix: p, Mapped: m, Map: req.Map, Hosts: hosts}, err
}

func (h *Handler) listLANRoutes(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	p, err := pageReq(r)
	if err != nil {
		return nil, err
	}
	status := fleet.RouteStatus(r.URL.Query().Get("status"))
	if status != "" && status != fleet.RouteApproved && status != fleet.RouteAdvertised {
		return nil, errorf(fleet.CodeInvalid, "status", "approved or advertised")
	}
	return h.svc.ListRoutes(ctx, a, store.RouteFilter{PageRequest: p, Status: status})
}

func (h *Handler) putLANRoutes(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	var req map[string]string
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	mapAll := r.URL.Query().Get("map") == "true"
	specs := make(map[string]controlplane.RouteSpec, len(req))
	for sim, cidr := range req {
		p, err := parsePrefix(sim, cidr)
		if err != nil {
			return nil, err
		}
		specs[sim] = controlplane.RouteSpec{Prefix: p, Map: mapAll}
	}
	rs, err := h.svc.SetRoutes(ctx, a, specs)
	if err != nil {
		return nil, err
	}
	return apiv1.Page[fleet.Route]{Items: nonNil(rs)}, nil
}

func (h *Handler) listSIMRoutes(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	rs, err := h.svc.SIMRoutes(ctx, a, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return apiv1.Page[fleet.Route]{Items: nonNil(rs)}, nil
}

func (h *Handler) addSIMRoute(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	spec, err := decodeRouteSpec(r)
	if err != nil {
		return nil, err
	}
	rt, err := h.svc.AddSIMRoute(ctx, a, r.PathValue("id"), spec)
	if err != nil {
		return nil, err
	}
	return created{rt}, nil
}

func (h *Handler) approveSIMRoute(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	spec, err := decodeRouteSpec(r)
	if err != nil {
		return nil, err
	}
	return h.svc.ApproveSIMRoute(ctx, a, r.PathValue("id"), spec)
}

func (h *Handler) putRouteHosts(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	var req routeHostsRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	p, err := parsePrefix("prefix", req.Prefix)
	if err != nil {
		return nil, err
	}
	if !p.IsValid() {
		return nil, errorf(fleet.CodeRequired, "prefix", "the route's CIDR")
	}
	hosts, err := parseHosts(req.Hosts)
	if err != nil {
		return nil, err
	}
	return h.svc.SetRouteHosts(ctx, a, r.PathValue("id"), p, hosts)
}

func (h *Handler) deleteSIMRoute(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	p, err := parsePrefix("prefix", r.URL.Query().Get("prefix"))
	if err != nil {
		return nil, err
	}
	if !p.IsValid() {
		return nil, errorf(fleet.CodeRequired, "prefix", "give ?prefix=CIDR")
	}
	return nil, h.svc.DeleteSIMRoute(ctx, a, r.PathValue("id"), p)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// gatePeerCreated is a new Gate peer with the commands its host runs.
type gatePeerCreated struct {
	fleet.GatePeer
	Setup []string `json:"setup"`
}

// gatePeerRequest registers a VXLAN Gate peer.
type gatePeerRequest struct {
	Name         string `json:"name"`
	GroupID      string `json:"groupId"`
	OuterAddress string `json:"outerAddress"`
	InnerAddress string `json:"innerAddress"`
	VNI          uint32 `json:"vni"`
}

func init() {
	schemas["GatePeer"] = obj(props{"id": str(""), "name": str(""), "groupId": str("its device-to-device policy applies"),
		"outerAddress": str("the host's own (underlay) IPv4 address"), "innerAddress": str("its address on the device subnet, from the SIM pool"),
		"vni": integer(), "created": dateTime()})
	schemas["GatePeerPage"] = page("GatePeer")
	schemas["GatePeerCreated"] = obj(props{"id": str(""), "name": str(""), "groupId": str(""), "outerAddress": str(""), "innerAddress": str(""),
		"vni": integer(), "created": dateTime(), "setup": arr(str("a command the host runs (its underlay interface assumed eth0)"))})
	schemas["GatePeerCreateRequest"] = obj(props{"name": str(""), "groupId": str(""), "outerAddress": str("IPv4 address"),
		"innerAddress": str("its address on the device subnet, inside the SIM pool; absent: allocated"), "vni": integer()}, "outerAddress", "vni")
}

// gatePeerRoutes are the VXLAN Gate peer routes.
func (h *Handler) gatePeerRoutes() []route {
	return []route{
		{method: "GET", path: "/api/v1/gate-peers", summary: "List VXLAN Gate peers.", role: fleet.RoleViewer, response: "GatePeerPage", query: pageQuery, handle: listed(h.svc.ListGatePeers)},
		{method: "POST", path: "/api/v1/gate-peers", summary: "Join a host to the device subnet over VXLAN; the answer holds its inner address.", role: fleet.RoleOperator, request: "GatePeerCreateRequest", response: "GatePeerCreated", handle: h.createGatePeer},
		{method: "GET", path: "/api/v1/gate-peers/{id}", summary: "Get a Gate peer.", role: fleet.RoleViewer, response: "GatePeer", handle: byID(h.svc.GetGatePeer)},
		{method: "DELETE", path: "/api/v1/gate-peers/{id}", summary: "Remove a Gate peer: its traffic stops at once.", role: fleet.RoleOperator, handle: removeByID(h.svc.DeleteGatePeer)},
	}
}

func (h *Handler) createGatePeer(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	var req gatePeerRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	var outer netip.Addr
	if req.OuterAddress != "" {
		var err error
		if outer, err = netip.ParseAddr(req.OuterAddress); err != nil {
			return nil, errorf(fleet.CodeInvalid, "outerAddress", "%q is not an IP address", req.OuterAddress)
		}
	}
	var inner netip.Addr
	if req.InnerAddress != "" {
		var err error
		if inner, err = netip.ParseAddr(req.InnerAddress); err != nil {
			return nil, errorf(fleet.CodeInvalid, "innerAddress", "%q is not an IP address", req.InnerAddress)
		}
	}
	g, err := h.svc.CreateGatePeer(ctx, a, controlplane.GatePeerSpec{Name: req.Name, GroupID: req.GroupID, OuterAddress: outer, InnerAddress: inner, VNI: req.VNI})
	if err != nil {
		return nil, err
	}
	return created{gatePeerCreated{GatePeer: g, Setup: h.svc.GatePeerSetup(g, "eth0")}}, nil
}
