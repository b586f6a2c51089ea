// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/api/apiv1"
	"github.com/wirefleet/wirefleet/fleet"
)

func sortStrings(s []string) { sort.Strings(s) }

// The CLI talks to the API only: it reads the API's JSON into the wire
// types (apiv1) and the domain types (fleet) the server writes it from.

// connState is a SIM's tunnel state in one word, for lists.
func connState(c *fleet.Connection) string {
	switch {
	case c == nil:
		return ""
	case c.Online:
		return "online"
	}
	return "offline"
}

type group struct {
	ID       string          `json:"id"`
	Name     string          `json:"name"`
	Settings json.RawMessage `json:"settings"`
}

// compact prints JSON on one line, for table cells.
func compact(raw json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}

func ts(t time.Time) string { return t.Local().Format("2006-01-02 15:04") }

var simHeader = []string{"ID", "IMSI", "NAME", "STATUS", "ADDRESS", "GROUP", "TAGS", "TUNNEL"}

func simRow(s apiv1.SIM) []string {
	return []string{s.ID, s.IMSI, s.Name, string(s.Status), s.Address.String(), s.GroupID, fmtTags(s.Tags), connState(s.Connection)}
}

func (c *command) showSIM(s apiv1.SIM) error {
	extra := ""
	if !s.PrivateKey.IsZero() {
		extra = "private key (shown once, not stored): " + s.PrivateKey.Base64()
	}
	if !s.NextPublicKey.IsZero() {
		extra += "\nnext public key: " + s.NextPublicKey.String()
	}
	if s.Agent != "" {
		extra += "\nagent: " + s.Agent + " (reported since " + ts(s.AgentSeen) + ")"
	}
	if c := s.Connection; c != nil {
		extra += "\ntunnel: " + connState(c)
		if c.Endpoint != "" {
			extra += ", endpoint " + c.Endpoint
		}
		if !c.LastHandshake.IsZero() {
			extra += ", last handshake " + c.LastHandshake.Local().Format("2006-01-02 15:04:05")
		}
		extra += fmt.Sprintf(", %d bytes from the device, %d to it", c.RxBytes, c.TxBytes)
	}
	extra = strings.TrimPrefix(extra, "\n")
	return c.show(s, append(simHeader, "PUBLIC KEY"), [][]string{append(simRow(s), s.PublicKey.String())}, extra)
}

func (c *command) simCall(method, path string, body any) error {
	var s apiv1.SIM
	if err := c.call(method, path, body, &s); err != nil {
		return err
	}
	return c.showSIM(s)
}

// handler runs one "resource action" command.
type handler func(c *command, rest []string) error

// handlers is the command table, from each resource's file.
var handlers = commandTable()

// commandTable lists every command: the core ones here, then each
// resource file's.
func commandTable() map[string]handler {
	t := coreCommands()
	addDataCommands(t)
	addIdentityCommands(t)
	addMappingCommands(t)
	addCaptureCommands(t)
	addRouteCommands(t)
	addGatePeerCommands(t)
	addSIMCardCommands(t)
	addNodeCommands(t)
	return t
}

// coreCommands are the SIM, group, auth-key, token, event and audit
// commands.
func coreCommands() map[string]handler {
	return map[string]handler{
		"sims list": func(c *command, rest []string) error {
			status := c.fs.String("status", "", "active, suspended or terminated")
			grp := c.fs.String("group", "", "group id")
			name := c.fs.String("name", "", "only SIMs whose name starts with this (case-sensitive), listed by name")
			limit := c.fs.Int("limit", 0, "page size")
			cursor := c.fs.String("cursor", "", "next-page cursor")
			all := c.fs.Bool("all", false, "follow cursors and list every matching SIM")
			var tagList multi
			c.fs.Var(&tagList, "tag", "key=value the SIMs must have (repeatable)")
			if err := c.args(rest, 0, 0, "none"); err != nil {
				return err
			}
			var p apiv1.Page[apiv1.SIM]
			for next := *cursor; ; {
				path := "/api/v1/sims" + query("status", *status, "groupId", *grp, "name", *name, "limit", itoa(*limit), "cursor", next)
				for _, kv := range tagList {
					sep := "?"
					if strings.Contains(path, "?") {
						sep = "&"
					}
					path += sep + "tag=" + url.QueryEscape(kv)
				}
				var one apiv1.Page[apiv1.SIM]
				if err := c.call("GET", path, nil, &one); err != nil {
					return err
				}
				p.Items = append(p.Items, one.Items...)
				p.Next = one.Next
				if !*all || one.Next == "" {
					break
				}
				next = one.Next
			}
			rows := [][]string{}
			for _, s := range p.Items {
				rows = append(rows, simRow(s))
			}
			return c.show(p, simHeader, rows, nextHint(p.Next))
		},
		"sims get": func(c *command, rest []string) error {
			if err := c.args(rest, 1, 1, "ID|IMSI|ADDRESS|PUBLIC_KEY"); err != nil {
				return err
			}
			if strings.HasPrefix(c.pos[0], "sim_") {
				return c.simCall("GET", "/api/v1/sims/"+c.pos[0], nil)
			}
			return c.simCall("GET", "/api/v1/sims/find?ref="+url.QueryEscape(c.pos[0]), nil)
		},
		"sims create": func(c *command, rest []string) error {
			name := c.fs.String("name", "", "name")
			grp := c.fs.String("group", "", "group id")
			addr := c.fs.String("address", "", "pin an overlay address")
			pub := c.fs.String("public-key", "", "the device's WireGuard public key")
			gen := c.fs.Bool("generate-key", false, "let the platform generate the key pair (private key shown once)")
			site := c.fs.Bool("site", false, "a site peer: a network outside the fleet (server, cloud router, office) joined as a WireGuard peer, no IMSI; give it routes with 'routes add'")
			var tagList multi
			c.fs.Var(&tagList, "tag", "key=value (repeatable)")
			if err := c.args(rest, 0, 0, "none"); err != nil {
				return err
			}
			t, err := tags(tagList)
			if err != nil {
				return err
			}
			if *pub == "" && !*gen {
				return usageErr("sims create: give --public-key or --generate-key")
			}
			kind := fleet.KindDevice
			if *site {
				kind = fleet.KindSite
			}
			return c.simCall("POST", "/api/v1/sims", map[string]any{"name": *name, "groupId": *grp, "address": *addr, "publicKey": *pub, "generateKey": *gen, "tags": t, "kind": kind})
		},
		"sims suspend":   simStatus("suspend"),
		"sims resume":    simStatus("resume"),
		"sims terminate": simStatus("terminate"),
		"sims require-rotation": func(c *command, rest []string) error {
			within := c.fs.String("within", "24h", "time the device gets to replace its key (30m to 2160h)")
			if err := c.args(rest, 1, 1, "ID"); err != nil {
				return err
			}
			return c.simCall("POST", "/api/v1/sims/"+c.pos[0]+"/require-rotation", map[string]any{"within": *within})
		},
		"sims rename": func(c *command, rest []string) error {
			if err := c.args(rest, 2, 2, "ID NAME"); err != nil {
				return err
			}
			return c.simCall("PATCH", "/api/v1/sims/"+c.pos[0], map[string]any{"name": c.pos[1]})
		},
		"sims set-group": func(c *command, rest []string) error {
			if err := c.args(rest, 2, 2, "ID GROUP_ID"); err != nil {
				return err
			}
			return c.simCall("PUT", "/api/v1/sims/"+c.pos[0]+"/group", map[string]any{"groupId": c.pos[1]})
		},
		"sims set-tags": func(c *command, rest []string) error {
			if err := c.args(rest, 1, -1, "ID [k=v]..."); err != nil {
				return err
			}
			t, err := tags(c.pos[1:])
			if err != nil {
				return err
			}
			return c.simCall("PUT", "/api/v1/sims/"+c.pos[0]+"/tags", map[string]any{"tags": t})
		},
		"sims set-key": func(c *command, rest []string) error {
			pub := c.fs.String("public-key", "", "new public key")
			next := c.fs.Bool("next", false, "announce as the next key (rotation) instead of replacing")
			gen := c.fs.Bool("generate-key", false, "generate the key pair (private key shown once)")
			if err := c.args(rest, 1, 1, "ID"); err != nil {
				return err
			}
			return c.simCall("PUT", "/api/v1/sims/"+c.pos[0]+"/key", map[string]any{"publicKey": *pub, "next": *next, "generateKey": *gen})
		},

		"groups list": func(c *command, rest []string) error {
			page := addPageFlags(c, "")
			if err := c.args(rest, 0, 0, "none"); err != nil {
				return err
			}
			return showPage(c, "/api/v1/groups"+page.query(), []string{"ID", "NAME", "SETTINGS"}, func(g group) []string {
				return []string{g.ID, g.Name, compact(g.Settings)}
			})
		},
		"groups get": func(c *command, rest []string) error {
			if err := c.args(rest, 1, 1, "ID"); err != nil {
				return err
			}
			return c.groupCall("GET", "/api/v1/groups/"+c.pos[0], nil)
		},
		"groups create": func(c *command, rest []string) error {
			var routes, d2dGroups, d2dPorts multi
			c.fs.Var(&routes, "route", "CIDR pushed to devices (repeatable)")
			d2d := c.fs.String("d2d", "off", "device-to-device: off, group or groups")
			c.fs.Var(&d2dGroups, "d2d-group", "group name reachable with --d2d groups (repeatable)")
			c.fs.Var(&d2dPorts, "d2d-port", "port allowed device-to-device (repeatable; none: all)")
			writeTags := c.fs.Bool("devices-write-tags", false, "devices may write their own tags")
			userData := c.fs.String("user-data", "", "user data handed to devices")
			file := c.fs.String("settings", "", "settings as a JSON file (instead of the flags above)")
			if err := c.args(rest, 1, 1, "NAME"); err != nil {
				return err
			}
			var settings any
			if *file != "" {
				raw, err := readJSON(*file)
				if err != nil {
					return err
				}
				settings = raw
			} else {
				ports := []int{}
				for _, p := range d2dPorts {
					n, err := strconv.Atoi(p)
					if err != nil {
						return usageErr("--d2d-port %q: not a number", p)
					}
					ports = append(ports, n)
				}
				settings = map[string]any{"routes": []string(routes), "deviceToDevice": map[string]any{"mode": *d2d, "groups": []string(d2dGroups), "ports": ports},
					"devicesMayWriteTags": *writeTags, "userData": *userData}
			}
			return c.groupCall("POST", "/api/v1/groups", map[string]any{"name": c.pos[0], "settings": settings})
		},
		"groups update": func(c *command, rest []string) error {
			name := c.fs.String("name", "", "new name")
			file := c.fs.String("settings", "", "new settings as a JSON file")
			if err := c.args(rest, 1, 1, "ID"); err != nil {
				return err
			}
			body := map[string]any{}
			if *name != "" {
				body["name"] = *name
			}
			if *file != "" {
				raw, err := readJSON(*file)
				if err != nil {
					return err
				}
				body["settings"] = raw
			}
			return c.groupCall("PATCH", "/api/v1/groups/"+c.pos[0], body)
		},
		"groups delete": func(c *command, rest []string) error {
			if err := c.args(rest, 1, 1, "ID"); err != nil {
				return err
			}
			return c.call("DELETE", "/api/v1/groups/"+c.pos[0], nil, nil)
		},

		"authkeys list": func(c *command, rest []string) error {
			page := addPageFlags(c, "")
			if err := c.args(rest, 0, 0, "none"); err != nil {
				return err
			}
			return showPage(c, "/api/v1/authkeys"+page.query(), authKeyHeader, authKeyRow)
		},
		"authkeys get": func(c *command, rest []string) error {
			if err := c.args(rest, 1, 1, "ID"); err != nil {
				return err
			}
			return showOne(c, "/api/v1/authkeys/"+c.pos[0], authKeyHeader, authKeyRow)
		},
		"authkeys create": func(c *command, rest []string) error {
			grp := c.fs.String("group", "", "group id of the SIMs it bootstraps")
			ttl := c.fs.Duration("ttl", 24*time.Hour, "lifetime")
			maxUses := c.fs.Int("max-uses", 1, "bootstraps allowed (0: unlimited)")
			desc := c.fs.String("description", "", "description")
			var tagList multi
			c.fs.Var(&tagList, "tag", "key=value given to its SIMs (repeatable)")
			if err := c.args(rest, 0, 0, "none"); err != nil {
				return err
			}
			t, err := tags(tagList)
			if err != nil {
				return err
			}
			var out apiv1.Secret[fleet.AuthKey]
			if err := c.call("POST", "/api/v1/authkeys", map[string]any{"groupId": *grp, "ttlSeconds": int64(ttl.Seconds()), "maxUses": *maxUses, "description": *desc, "tags": t}, &out); err != nil {
				return err
			}
			return c.show(out, authKeyHeader, [][]string{authKeyRow(out.Item)}, "auth key (shown once): "+out.Secret)
		},
		"authkeys revoke": func(c *command, rest []string) error {
			if err := c.args(rest, 1, 1, "ID"); err != nil {
				return err
			}
			return c.call("DELETE", "/api/v1/authkeys/"+c.pos[0], nil, nil)
		},

		"tokens list": func(c *command, rest []string) error {
			if err := c.args(rest, 0, 0, "none"); err != nil {
				return err
			}
			return showPage(c, "/api/v1/tokens", []string{"ID", "ROLE", "DESCRIPTION", "CREATED", "EXPIRES"}, func(t fleet.Token) []string {
				expires := "never"
				if !t.Expires.IsZero() {
					expires = ts(t.Expires)
				}
				return []string{t.ID, string(t.Role), t.Description, ts(t.Created), expires}
			})
		},
		"tokens create": func(c *command, rest []string) error {
			role := c.fs.String("role", "", "admin, operator or viewer")
			desc := c.fs.String("description", "", "description")
			ttl := c.fs.Duration("ttl", 0, "lifetime, e.g. 720h (0: never expires)")
			if err := c.args(rest, 0, 0, "none"); err != nil {
				return err
			}
			if *role == "" {
				return usageErr("tokens create: --role is required")
			}
			var out apiv1.Secret[fleet.Token]
			if err := c.call("POST", "/api/v1/tokens", map[string]any{"role": *role, "description": *desc, "ttlSeconds": int64(ttl.Seconds())}, &out); err != nil {
				return err
			}
			return c.show(out, []string{"ID", "ROLE", "DESCRIPTION"}, [][]string{{out.Item.ID, string(out.Item.Role), out.Item.Description}}, "token (shown once): "+out.Secret)
		},
		"tokens delete": func(c *command, rest []string) error {
			if err := c.args(rest, 1, 1, "ID"); err != nil {
				return err
			}
			return c.call("DELETE", "/api/v1/tokens/"+c.pos[0], nil, nil)
		},

		"events list": func(c *command, rest []string) error {
			object := c.fs.String("object", "", "object id")
			actor := c.fs.String("actor", "", "actor, e.g. token:tok_…")
			action := c.fs.String("action", "", "action, e.g. sim.suspend")
			since := c.fs.String("since", "", "RFC 3339 time")
			page := addPageFlags(c, "")
			if err := c.args(rest, 0, 0, "none"); err != nil {
				return err
			}
			return showPage(c, "/api/v1/events"+page.query("objectId", *object, "actor", *actor, "action", *action, "since", *since),
				[]string{"ID", "TIME", "ACTOR", "ACTION", "OBJECT", "DETAILS"}, func(e fleet.Event) []string {
					d, _ := json.Marshal(e.Details)
					if e.Details == nil {
						d = nil
					}
					return []string{strconv.FormatInt(e.ID, 10), ts(e.Time), e.Actor, e.Action, e.ObjectID, string(d)}
				})
		},

		"alerts list": func(c *command, rest []string) error {
			page := addPageFlags(c, "")
			if err := c.args(rest, 0, 0, "none"); err != nil {
				return err
			}
			return showPage(c, "/api/v1/alerts"+page.query(), []string{"ID", "TIME", "SIM", "KIND", "SEVERITY", "DETAIL", "ACKNOWLEDGED"}, func(a fleet.Alert) []string {
				ack := "no"
				if a.Ack != nil {
					ack = a.Ack.Actor + " " + ts(a.Ack.Time)
				}
				return []string{strconv.FormatInt(a.ID, 10), ts(a.Time), a.ObjectID, fmt.Sprint(a.Details["kind"]), fmt.Sprint(a.Details["severity"]), fmt.Sprint(a.Details["detail"]), ack}
			})
		},
		"alerts ack": func(c *command, rest []string) error {
			if err := c.args(rest, 1, 1, "ID"); err != nil {
				return err
			}
			return c.call("POST", "/api/v1/alerts/"+c.pos[0]+"/acknowledge", nil, nil)
		},

		"audit ": func(c *command, rest []string) error {
			if err := c.args(rest, 0, 0, "none"); err != nil {
				return err
			}
			var rep struct {
				Findings []struct {
					Check, Severity, Object, Detail string
				} `json:"findings"`
			}
			if err := c.call("GET", "/api/v1/audit", nil, &rep); err != nil {
				return err
			}
			rows := [][]string{}
			for _, f := range rep.Findings {
				rows = append(rows, []string{f.Severity, f.Check, f.Object, f.Detail})
			}
			return c.show(rep, []string{"SEVERITY", "CHECK", "OBJECT", "DETAIL"}, rows, "")
		},

		"login ": func(c *command, rest []string) error {
			if err := c.args(rest, 0, 0, "none"); err != nil {
				return err
			}
			base, tok, err := c.endpoint()
			if err != nil {
				return err
			}
			if tok == "" {
				return usageErr("login: give --token (or WIREFLEET_TOKEN)")
			}
			// Check the pair works before saving it.
			if err := c.call("GET", "/api/v1/sims?limit=1", nil, nil); err != nil {
				return err
			}
			path := c.g.config
			if path == "" {
				dir, err := os.UserConfigDir()
				if err != nil {
					return err
				}
				path = filepath.Join(dir, "wirefleet", "config.json")
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return err
			}
			b, _ := json.MarshalIndent(map[string]string{"url": base, "token": tok}, "", "  ")
			// The token is a credential: owner-only file.
			if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
				return err
			}
			if err := os.Chmod(path, 0o600); err != nil {
				return err
			}
			fmt.Fprintf(c.out, "saved %s in %s\n", base, path)
			return nil
		},

		"config ": func(c *command, rest []string) error {
			gen := c.fs.Bool("generate-key", false, "re-key the SIM with a generated key and include the private key")
			if err := c.args(rest, 1, 1, "SIM_ID"); err != nil {
				return err
			}
			var b []byte
			var err error
			if *gen {
				err = c.call("POST", "/api/v1/sims/"+c.pos[0]+"/wireguard-config", map[string]any{"generateKey": true}, &b)
			} else {
				err = c.call("GET", "/api/v1/sims/"+c.pos[0]+"/wireguard-config", nil, &b)
			}
			if err != nil {
				return err
			}
			_, err = c.out.Write(b)
			return err
		},
	}
}

func simStatus(action string) func(c *command, rest []string) error {
	return func(c *command, rest []string) error {
		if err := c.args(rest, 1, 1, "ID"); err != nil {
			return err
		}
		return c.simCall("POST", "/api/v1/sims/"+c.pos[0]+"/"+action, nil)
	}
}

func (c *command) groupCall(method, path string, body any) error {
	var g group
	if err := c.call(method, path, body, &g); err != nil {
		return err
	}
	return c.show(g, []string{"ID", "NAME", "SETTINGS"}, [][]string{{g.ID, g.Name, compact(g.Settings)}})
}

var authKeyHeader = []string{"ID", "GROUP", "USES", "EXPIRES", "REVOKED", "TAGS", "DESCRIPTION"}

func authKeyRow(k fleet.AuthKey) []string {
	uses := fmt.Sprintf("%d/%d", k.Uses, k.MaxUses)
	if k.MaxUses == 0 {
		uses = fmt.Sprintf("%d/unlimited", k.Uses)
	}
	return []string{k.ID, k.GroupID, uses, ts(k.Expires), strconv.FormatBool(k.Revoked), fmtTags(k.Tags), k.Description}
}

func itoa(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

func readJSON(path string) (json.RawMessage, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	if !json.Valid(b) {
		return nil, usageErr("%s: not valid JSON", path)
	}
	return json.RawMessage(b), nil
}
