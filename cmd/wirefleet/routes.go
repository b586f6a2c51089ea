// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/wirefleet/wirefleet/fleet"
)

var routeHeader = []string{"SIM", "PREFIX", "MAPPED", "STATUS", "SOURCE"}

func routeRow(r fleet.Route) []string {
	mapped := "-"
	if r.Mapped.IsValid() {
		mapped = r.Mapped.String()
	}
	return []string{r.SIMID, r.Prefix.String(), mapped, string(r.Status), r.Source}
}

// addRouteCommands adds the routes-behind-SIMs commands to the table.
func addRouteCommands(handlers map[string]handler) {
	handlers["routes list"] = func(c *command, rest []string) error {
		sim := c.fs.String("sim", "", "only this SIM's routes (approved and advertised)")
		status := c.fs.String("status", "", "only approved or advertised routes")
		page := addPageFlags(c, "")
		if err := c.args(rest, 0, 0, "none"); err != nil {
			return err
		}
		if *sim != "" {
			return showPage(c, "/api/v1/sims/"+url.PathEscape(*sim)+"/routes", routeHeader, routeRow)
		}
		return showPage(c, "/api/v1/routes"+page.query("status", *status), routeHeader, routeRow)
	}
	// add and approve share their flags: the mapping.
	withMapping := func(path string) handler {
		return func(c *command, rest []string) error {
			doMap := c.fs.Bool("map", false, "reach the LAN by a prefix of its size the platform allocates from its LAN pool (for LANs other SIMs have too)")
			mapped := c.fs.String("mapped", "", "reach the LAN by this prefix of its size, inside the LAN pool")
			if err := c.args(rest, 2, 2, "SIM_ID PREFIX"); err != nil {
				return err
			}
			var r fleet.Route
			body := map[string]any{"prefix": c.pos[1], "map": *doMap, "mappedPrefix": *mapped}
			if err := c.call("POST", "/api/v1/sims/"+url.PathEscape(c.pos[0])+path, body, &r); err != nil {
				return err
			}
			return c.show(r, routeHeader, [][]string{routeRow(r)})
		}
	}
	handlers["routes add"] = withMapping("/routes")
	handlers["routes approve"] = withMapping("/routes/approve")
	handlers["routes delete"] = func(c *command, rest []string) error {
		if err := c.args(rest, 2, 2, "SIM_ID PREFIX"); err != nil {
			return err
		}
		return c.call("DELETE", "/api/v1/sims/"+url.PathEscape(c.pos[0])+"/routes"+query("prefix", c.pos[1]), nil, nil)
	}
	handlers["routes hosts"] = func(c *command, rest []string) error {
		if len(rest) < 2 {
			return usageErr("routes hosts: SIM_ID PREFIX [NAME=ADDRESS]...")
		}
		if err := c.args(rest, 2, 2+fleet.MaxHostsPerRoute, "SIM_ID PREFIX [NAME=ADDRESS]..."); err != nil {
			return err
		}
		hosts := map[string]string{}
		for _, kv := range c.pos[2:] {
			name, addr, ok := strings.Cut(kv, "=")
			if !ok {
				return usageErr("routes hosts: %q: want NAME=ADDRESS", kv)
			}
			hosts[name] = addr
		}
		var r fleet.Route
		if err := c.call("PUT", "/api/v1/sims/"+url.PathEscape(c.pos[0])+"/routes/hosts", map[string]any{"prefix": c.pos[1], "hosts": hosts}, &r); err != nil {
			return err
		}
		names := make([]string, 0, len(r.Hosts))
		for n, a := range r.Hosts {
			names = append(names, n+"="+a.String())
		}
		sortStrings(names)
		return c.show(r, routeHeader, [][]string{routeRow(r)}, "hosts: "+strings.Join(names, " "))
	}
	handlers["routes import"] = func(c *command, rest []string) error {
		doMap := c.fs.Bool("map", false, "map every LAN into the LAN pool")
		if err := c.args(rest, 1, 1, "FILE.json"); err != nil {
			return err
		}
		raw, err := os.ReadFile(c.pos[0])
		if err != nil {
			return err
		}
		var bySIM map[string]string
		if err := json.Unmarshal(raw, &bySIM); err != nil {
			return usageErr("routes import: want {\"<simId>\": \"<CIDR>\", …}: %v", err)
		}
		path := "/api/v1/routes"
		if *doMap {
			path += "?map=true"
		}
		var p struct {
			Items []fleet.Route `json:"items"`
		}
		if err := c.call("PUT", path, bySIM, &p); err != nil {
			return err
		}
		rows := make([][]string, 0, len(p.Items))
		for _, r := range p.Items {
			rows = append(rows, routeRow(r))
		}
		return c.show(p, routeHeader, rows)
	}
}

var gatePeerHeader = []string{"ID", "NAME", "GROUP", "OUTER", "INNER", "VNI"}

func gatePeerRow(g fleet.GatePeer) []string {
	return []string{g.ID, g.Name, g.GroupID, g.OuterAddress.String(), g.InnerAddress.String(), strconv.FormatUint(uint64(g.VNI), 10)}
}

// addGatePeerCommands adds the VXLAN Gate peer commands to the table.
func addGatePeerCommands(handlers map[string]handler) {
	handlers["gate-peers list"] = func(c *command, rest []string) error {
		page := addPageFlags(c, "")
		if err := c.args(rest, 0, 0, "none"); err != nil {
			return err
		}
		return showPage(c, "/api/v1/gate-peers"+page.query(), gatePeerHeader, gatePeerRow)
	}
	handlers["gate-peers add"] = func(c *command, rest []string) error {
		outer := c.fs.String("outer", "", "the host's own IPv4 address (required)")
		vni := c.fs.Uint("vni", 0, "VXLAN network identifier, 1-16777215 (required)")
		group := c.fs.String("group", "", "group whose device-to-device policy applies")
		inner := c.fs.String("inner", "", "its address on the device subnet (inside the SIM pool); default: allocated")
		name := c.fs.String("name", "", "name")
		if err := c.args(rest, 0, 0, "none"); err != nil {
			return err
		}
		if *outer == "" || *vni == 0 {
			return usageErr("gate-peers add: --outer and --vni are required")
		}
		var g struct {
			fleet.GatePeer
			Setup []string `json:"setup"`
		}
		if err := c.call("POST", "/api/v1/gate-peers", map[string]any{"outerAddress": *outer, "innerAddress": *inner, "vni": *vni, "groupId": *group, "name": *name}, &g); err != nil {
			return err
		}
		extra := []string{"on the Gate peer host (eth0: its own interface):"}
		for _, cmd := range g.Setup {
			extra = append(extra, "  "+cmd)
		}
		return c.show(g, gatePeerHeader, [][]string{gatePeerRow(g.GatePeer)}, extra...)
	}
	handlers["gate-peers get"] = func(c *command, rest []string) error {
		if err := c.args(rest, 1, 1, "ID"); err != nil {
			return err
		}
		return showOne(c, "/api/v1/gate-peers/"+url.PathEscape(c.pos[0]), gatePeerHeader, gatePeerRow)
	}
	handlers["gate-peers delete"] = func(c *command, rest []string) error {
		if err := c.args(rest, 1, 1, "ID"); err != nil {
			return err
		}
		return c.call("DELETE", "/api/v1/gate-peers/"+url.PathEscape(c.pos[0]), nil, nil)
	}
}
