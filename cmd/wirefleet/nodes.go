// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/wirefleet/wirefleet/controlplane/api/apiv1"
)

// The wirefleetd nodes sharing the store (docs/control-plane.md).

var nodeHeader = []string{"NAME", "STATE", "VERSION", "SESSIONS", "ENDPOINT", "API", "STARTED", "SEEN", "JOBS", "DEGRADED"}

func nodeRow(n apiv1.Node) []string {
	state := "down"
	if n.Up {
		state = "up"
	}
	return []string{n.Name, state, n.Version, fmt.Sprint(n.Sessions), n.Endpoint, n.API, ts(n.Started), ts(n.Seen), strings.Join(n.Jobs, ","), n.Degraded}
}

func addNodeCommands(handlers map[string]handler) {
	handlers["nodes list"] = func(c *command, rest []string) error {
		if err := c.args(rest, 0, 0, "none"); err != nil {
			return err
		}
		return showPage(c, "/api/v1/nodes", nodeHeader, nodeRow)
	}
	handlers["nodes forget"] = func(c *command, rest []string) error {
		if err := c.args(rest, 1, 1, "NAME"); err != nil {
			return err
		}
		return c.call("DELETE", "/api/v1/nodes/"+url.PathEscape(c.pos[0]), nil, nil)
	}
}
