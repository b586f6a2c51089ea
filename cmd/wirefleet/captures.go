// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/api/apiv1"
)

var captureHeader = []string{"ID", "TARGET", "STATUS", "PACKETS", "BYTES", "STARTED", "ENDED", "REASON"}

func captureRow(c apiv1.Capture) []string {
	target := c.SIMID
	if target == "" {
		target = "group " + c.GroupID
	}
	return []string{c.ID, target, string(c.Status), strconv.FormatInt(c.Packets, 10), strconv.FormatInt(c.Bytes, 10), ts(c.Started), ts(c.Ended), c.Reason}
}

// addCaptureCommands adds the packet capture commands to the table.
func addCaptureCommands(handlers map[string]handler) {
	handlers["captures start"] = func(c *command, rest []string) error {
		sim := c.fs.String("sim", "", "the SIM to capture (or --group)")
		group := c.fs.String("group", "", "the group to capture")
		dur := c.fs.Duration("duration", 5*time.Minute, "how long (30s to 24h)")
		prefix := c.fs.String("prefix", "", "only packets to or from this CIDR")
		proto := c.fs.String("protocol", "", "only tcp, udp or icmp")
		port := c.fs.Int("port", 0, "only packets to or from this TCP/UDP port")
		maxBytes := c.fs.Int64("max-bytes", 0, "stop at this file size (default 5 GiB)")
		if err := c.args(rest, 0, 0, "none"); err != nil {
			return err
		}
		var v apiv1.Capture
		if err := c.call("POST", "/api/v1/captures", map[string]any{"simId": *sim, "groupId": *group, "duration": int64(dur.Seconds()),
			"prefix": *prefix, "protocol": *proto, "port": *port, "maxBytes": *maxBytes}, &v); err != nil {
			return err
		}
		return c.show(v, captureHeader, [][]string{captureRow(v)})
	}
	handlers["captures list"] = func(c *command, rest []string) error {
		page := addPageFlags(c, "")
		if err := c.args(rest, 0, 0, "none"); err != nil {
			return err
		}
		return showPage(c, "/api/v1/captures"+page.query(), captureHeader, captureRow)
	}
	for _, verb := range []string{"get", "stop"} {
		handlers["captures "+verb] = func(c *command, rest []string) error {
			if err := c.args(rest, 1, 1, "ID"); err != nil {
				return err
			}
			method, path := "GET", "/api/v1/captures/"+c.pos[0]
			if verb == "stop" {
				method, path = "POST", path+"/stop"
			}
			var v apiv1.Capture
			if err := c.call(method, path, nil, &v); err != nil {
				return err
			}
			return c.show(v, captureHeader, [][]string{captureRow(v)})
		}
	}
	handlers["captures delete"] = func(c *command, rest []string) error {
		if err := c.args(rest, 1, 1, "ID"); err != nil {
			return err
		}
		return c.call("DELETE", "/api/v1/captures/"+c.pos[0], nil, nil)
	}
	handlers["captures download"] = func(c *command, rest []string) error {
		out := c.fs.String("o", "", "write to this file (default ID.pcapng)")
		if err := c.args(rest, 1, 1, "ID"); err != nil {
			return err
		}
		var b []byte
		if err := c.call("GET", "/api/v1/captures/"+c.pos[0]+"/file", nil, &b); err != nil {
			return err
		}
		name := *out
		if name == "" {
			name = c.pos[0] + ".pcapng"
		}
		if err := os.WriteFile(name, b, 0o600); err != nil {
			return err
		}
		fmt.Fprintf(c.out, "%d bytes written to %s (read it with tcpdump -r or tshark -r)\n", len(b), name)
		return nil
	}
}
