// SPDX-License-Identifier: Apache-2.0

// Command wirefleet is the operator CLI over the wirefleet REST API.
//
//	wirefleet sims list
//	wirefleet sims create --name cam-1 --generate-key
//	wirefleet config sim_0123… > wg0.conf
//
// The server and token come from --url/--token, the environment
// (WIREFLEET_URL, WIREFLEET_TOKEN) or a JSON config file
// ({"url": "...", "token": "..."}, --config or ~/.config/wirefleet/config.json),
// in that order of precedence.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// Exit codes, for scripts.
const (
	exitOK           = 0
	exitFailure      = 1 // anything not below
	exitUsage        = 2 // bad command line
	exitDenied       = 3 // 401/403: no, wrong or insufficient token
	exitNotFound     = 4 // 404
	exitConflict     = 5 // 409: taken, wrong state, exhausted
	exitInvalid      = 6 // 400: the server refused the input
	exitUnavailable  = 7 // cannot reach the server, or it failed (5xx)
	defaultServerURL = "http://127.0.0.1:8080"
)

const usage = `wirefleet — operate a wirefleet fleet over its REST API.

Usage: wirefleet [global flags] <command> [args] [flags]

Commands:
  sims list [--status S] [--group ID] [--tag k=v]... [--limit N] [--cursor C] [--all]
  sims get ID|IMSI|ADDRESS|PUBLIC_KEY
  sims create [--name N] [--group ID] [--tag k=v]... [--address A] [--public-key K | --generate-key] [--site]
  sims suspend|resume|terminate ID
  sims rename ID NAME
  sims set-group ID GROUP_ID          ("" for none)
  sims set-tags ID [k=v]...
  sims set-key ID (--public-key K [--next] | --generate-key)
  sims require-rotation ID [--within 24h]   (the gateway refuses the key after that)
  groups list | get ID | delete ID
  groups create NAME [--route CIDR]... [--d2d off|group|groups] [--d2d-group NAME]... [--d2d-port P]...
                     [--devices-write-tags] [--user-data S] [--settings FILE.json]
  groups update ID [--name N] [--settings FILE.json]
  authkeys list | get ID | revoke ID
  authkeys create [--group ID] [--tag k=v]... [--ttl 24h] [--max-uses N] [--description D]
  identities import FILE (--name LOT [--group ID] [--tag k=v]... | --batch ID)
                                      register device identity public keys from manufacturing
                                      (PEM blocks, a JSON array, or one PEM/hex/base64 key per line)
  identities batches | batch ID | revoke-batch ID
  identities list [--batch ID] [--status active|used|revoked] | get ID|KEY | revoke ID|KEY
  sim-cards import FILE.csv [--group ID]
                                      physical SIM cards from the vendor's CSV (ICCID, IMSI, Ki, OPc), for
                                      bootstrap by SIM card; admins only; keys sealed, never shown again
  sim-cards list | get ICCID | suspend ICCID | resume ICCID | set-group ICCID GROUP_ID | delete ICCID
  nodes list | forget NAME            the wirefleetd nodes sharing the store: version, load, health, up or down;
                                      forget a retired node (admins; refused while it is up)
  tokens list | delete ID
  tokens create --role admin|operator|viewer [--description D] [--ttl 720h]
  mappings create SIM_ID --port P --allow CIDR... [--target LAN_HOST] [--duration 1h] [--tls] [--max-conns N]
                                      remote access to a device port: answers the public host:port
  mappings list [--sim ID] | get ID | delete ID
  captures start (--sim ID | --group ID) [--duration 5m] [--prefix CIDR] [--protocol tcp|udp|icmp] [--port P] [--max-bytes N]
                                      a packet capture session: the inner packets, both directions, to pcapng
  captures list | get ID | stop ID | delete ID | download ID [-o FILE]
  routes add SIM_ID PREFIX [--map | --mapped PREFIX]
                                      a LAN behind a SIM; --map reaches it by an allocated prefix of its
                                      size (for LANs other SIMs have too: every site on 192.168.1.0/24)
  routes approve SIM_ID PREFIX [--map | --mapped PREFIX]   approve a prefix the device advertised
  routes list [--sim ID] [--status approved|advertised] | delete SIM_ID PREFIX
  routes hosts SIM_ID PREFIX [NAME=ADDRESS]...   name LAN hosts for the DNS: NAME.SIM_ID.lan.ZONE
  routes import FILE.json [--map]     {"<simId>": "<CIDR>", …}: one LAN per SIM, all or nothing
  gate-peers add --outer IP --vni N [--inner IP] [--group ID] [--name N]
                                      join a host to the device subnet over VXLAN (prints its ip commands)
  gate-peers list | get ID | delete ID
  data list (--sim ID | --group ID) [--from RFC3339] [--to RFC3339] [--category C] [--limit N] [--cursor C]
                                      data-store records, newest first (--json: payloads in full)
  data settings GROUP_ID [--enable | --disable] [--max-payload N] [--timestamp-pointer P] [--batch-pointer P]
                         [--category C] [--retention 30d]   show or change a group's data store
  events list [--object ID] [--actor A] [--action A] [--since RFC3339] [--limit N] [--cursor C]
  alerts list [--limit N] [--cursor C] | ack ID
                                      the security monitor's alerts; acknowledge one
  audit                               audit the fleet now: shared or low-order keys, standing auth keys,
                                      wide-open groups, refused SIMs still trying
  config ID [--generate-key]          wg-quick file of a SIM (generate: re-key, full file)
  login --url URL --token T           check and save server and token in the config file (0600)

Global flags (also accepted after the command):
  --url URL      server (env WIREFLEET_URL, default http://127.0.0.1:8080)
  --token T      API token (env WIREFLEET_TOKEN)
  --config FILE  JSON file with "url" and "token"
  --json         print JSON instead of tables

Exit codes: 0 ok, 1 other failure, 2 usage, 3 unauthorized/forbidden,
4 not found, 5 conflict or wrong state, 6 invalid input, 7 server unreachable or failing.
`

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

type globals struct {
	url, token, config string
	json               bool
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.url, "url", g.url, "server URL")
	fs.StringVar(&g.token, "token", g.token, "API token")
	fs.StringVar(&g.config, "config", g.config, "config file")
	fs.BoolVar(&g.json, "json", g.json, "JSON output")
}

// cliError carries an exit code.
type cliError struct {
	code int
	msg  string
}

func (e *cliError) Error() string { return e.msg }

func usageErr(format string, args ...any) error {
	return &cliError{exitUsage, fmt.Sprintf(format, args...)}
}

// multi is a repeatable flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// parse parses flags anywhere among positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	err := dispatch(args, getenv, stdout)
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintln(stderr, "wirefleet:", termSafe(err.Error()))
	var ce *cliError
	if errors.As(err, &ce) {
		if ce.code == exitUsage {
			fmt.Fprintln(stderr, "run 'wirefleet --help' for usage")
		}
		return ce.code
	}
	return exitFailure
}

func dispatch(args []string, getenv func(string) string, stdout io.Writer) error {
	g := &globals{}
	top := flag.NewFlagSet("wirefleet", flag.ContinueOnError)
	top.SetOutput(io.Discard)
	g.register(top)
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageErr("%v", err)
	}
	rest := top.Args()
	if len(rest) == 0 {
		return usageErr("no command")
	}
	cmd := rest[0]
	rest = rest[1:]
	action := ""
	if cmd != "config" && cmd != "login" && cmd != "audit" {
		if len(rest) == 0 {
			return usageErr("%s: missing action", cmd)
		}
		action, rest = rest[0], rest[1:]
	}
	fs := flag.NewFlagSet(cmd+" "+action, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g.register(fs)
	c := &command{g: g, fs: fs, out: stdout, getenv: getenv}
	h, ok := handlers[cmd+" "+action]
	if !ok {
		return usageErr("unknown command %q", strings.TrimSpace(cmd+" "+action))
	}
	return h(c, rest)
}

// command is one invocation: its flags, client and output.
type command struct {
	g      *globals
	fs     *flag.FlagSet
	out    io.Writer
	getenv func(string) string
	pos    []string
}

// args parses the flags the handler registered and checks the count of
// positional arguments (max -1: any).
func (c *command) args(rest []string, min, max int, names string) error {
	pos, err := parse(c.fs, rest)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageErr("%s: %v", c.fs.Name(), err)
	}
	if len(pos) < min || (max >= 0 && len(pos) > max) {
		return usageErr("%s: want arguments %s", c.fs.Name(), names)
	}
	c.pos = pos
	return nil
}

func (c *command) endpoint() (string, string, error) {
	u, tok := c.g.url, c.g.token
	if u == "" {
		u = c.getenv("WIREFLEET_URL")
	}
	if tok == "" {
		tok = c.getenv("WIREFLEET_TOKEN")
	}
	if u == "" || tok == "" {
		path := c.g.config
		if path == "" {
			if dir, err := os.UserConfigDir(); err == nil {
				path = filepath.Join(dir, "wirefleet", "config.json")
			}
		}
		if b, err := os.ReadFile(path); err == nil {
			var f struct{ URL, Token string }
			if err := json.Unmarshal(b, &f); err != nil {
				return "", "", usageErr("config %s: %v", path, err)
			}
			if u == "" {
				u = f.URL
			}
			if tok == "" {
				tok = f.Token
			}
		} else if c.g.config != "" {
			return "", "", usageErr("config: %v", err)
		}
	}
	if u == "" {
		u = defaultServerURL
	}
	return strings.TrimRight(u, "/"), tok, nil
}

// call does one API request; out (if not nil) receives the JSON answer,
// or the raw body if it is a *[]byte.
func (c *command) call(method, path string, body, out any) error {
	base, tok, err := c.endpoint()
	if err != nil {
		return err
	}
	var rd io.Reader
	ctype := "application/json"
	switch b := body.(type) {
	case nil:
	case rawBody:
		rd, ctype = bytes.NewReader(b.data), b.contentType
	default:
		js, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return usageErr("bad --url: %v", err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return &cliError{exitUnavailable, err.Error()}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return &cliError{exitUnavailable, err.Error()}
	}
	if resp.StatusCode >= 300 {
		var e struct{ Code, Field, Message string }
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Code != "" {
			msg = e.Code + ": " + e.Message
			if e.Field != "" {
				msg = e.Code + ": " + e.Field + ": " + e.Message
			}
		}
		code := exitFailure
		switch {
		case resp.StatusCode == 401 || resp.StatusCode == 403:
			code = exitDenied
		case resp.StatusCode == 404:
			code = exitNotFound
		case resp.StatusCode == 409:
			code = exitConflict
		case resp.StatusCode == 400:
			code = exitInvalid
		case resp.StatusCode >= 500:
			code = exitUnavailable
		}
		return &cliError{code, fmt.Sprintf("%s %s: %d %s", method, path, resp.StatusCode, msg)}
	}
	switch o := out.(type) {
	case nil:
	case *[]byte:
		*o = b
	default:
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("decoding answer: %w", err)
		}
	}
	return nil
}

// show prints v as JSON (--json) or as a table of cols taken from rows.
func (c *command) show(v any, header []string, rows [][]string, extra ...string) error {
	if c.g.json {
		enc := json.NewEncoder(c.out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, cell := range r {
			cells[i] = termSafe(cell)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	tw.Flush()
	for _, e := range extra {
		if e != "" {
			fmt.Fprintln(c.out, termSafe(e))
		}
	}
	return nil
}

func query(kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

func tags(kvs []string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, usageErr("tag %q: want key=value", kv)
		}
		m[k] = v
	}
	return m, nil
}

func fmtTags(m map[string]string) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	sortStrings(parts)
	return strings.Join(parts, ",")
}

func nextHint(next string) string {
	if next == "" {
		return ""
	}
	return "(more: --cursor " + next + ")"
}
