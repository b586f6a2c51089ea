// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
)

var mappingHeader = []string{"ID", "SIM", "PORT", "PUBLIC", "SOURCES", "TLS", "EXPIRES"}

func mappingRow(m fleet.MappingView) []string {
	tls := "no"
	if m.TLS {
		tls = "yes"
	}
	return []string{m.ID, m.SIMID, strconv.Itoa(m.Port), net.JoinHostPort(m.Host, strconv.Itoa(m.PublicPort)), joinPrefixes(m.AllowedSources), tls, ts(m.Expires)}
}

func mappingExtra(m fleet.MappingView) []string {
	extra := []string{fmt.Sprintf("connect to %s (open until %s)", net.JoinHostPort(m.Host, strconv.Itoa(m.PublicPort)), m.Expires.Local().Format(time.RFC3339))}
	if m.TLSFingerprint != "" {
		extra = append(extra, "TLS certificate SHA-256 fingerprint: "+m.TLSFingerprint)
	}
	return extra
}

// addMappingCommands adds the remote-access commands to the table.
func addMappingCommands(handlers map[string]handler) {
	handlers["mappings create"] = func(c *command, rest []string) error {
		port := c.fs.Int("port", 0, "the device's TCP port (required)")
		target := c.fs.String("target", "", "a host on a LAN behind the SIM, by the address the fleet reaches it by (its mapped address)")
		dur := c.fs.Duration("duration", 0, "lifetime (default 1h; at most the platform's maximum, 8h unless configured)")
		var sources multi
		c.fs.Var(&sources, "allow", "source CIDR or address allowed to connect (repeatable, required; 0.0.0.0/0 for anyone)")
		tls := c.fs.Bool("tls", false, "the platform serves TLS on the public port and carries plain TCP to the device")
		maxConns := c.fs.Int("max-conns", 0, "concurrent connections (default and maximum: the platform's)")
		if err := c.args(rest, 1, 1, "SIM_ID"); err != nil {
			return err
		}
		if *port == 0 {
			return usageErr("mappings create: --port is required")
		}
		if len(sources) == 0 {
			return usageErr("mappings create: --allow is required (your own address, or 0.0.0.0/0 for anyone)")
		}
		var list []string
		for _, s := range sources {
			list = append(list, strings.Split(s, ",")...)
		}
		var m fleet.MappingView
		if err := c.call("POST", "/api/v1/mappings", map[string]any{"simId": c.pos[0], "port": *port, "target": *target, "durationSeconds": int64(dur.Seconds()),
			"allowedSources": list, "tls": *tls, "maxConnections": *maxConns}, &m); err != nil {
			return err
		}
		return c.show(m, mappingHeader, [][]string{mappingRow(m)}, mappingExtra(m)...)
	}
	handlers["mappings list"] = func(c *command, rest []string) error {
		simID := c.fs.String("sim", "", "only this SIM's mappings")
		page := addPageFlags(c, "")
		if err := c.args(rest, 0, 0, "none"); err != nil {
			return err
		}
		return showPage(c, "/api/v1/mappings"+page.query("simId", *simID), mappingHeader, mappingRow)
	}
	handlers["mappings get"] = func(c *command, rest []string) error {
		if err := c.args(rest, 1, 1, "ID"); err != nil {
			return err
		}
		var m fleet.MappingView
		if err := c.call("GET", "/api/v1/mappings/"+c.pos[0], nil, &m); err != nil {
			return err
		}
		return c.show(m, mappingHeader, [][]string{mappingRow(m)}, mappingExtra(m)...)
	}
	handlers["mappings delete"] = func(c *command, rest []string) error {
		if err := c.args(rest, 1, 1, "ID"); err != nil {
			return err
		}
		return c.call("DELETE", "/api/v1/mappings/"+c.pos[0], nil, nil)
	}
}

func joinPrefixes(ps []netip.Prefix) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return strings.Join(out, ",")
}
