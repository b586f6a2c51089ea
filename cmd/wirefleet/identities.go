// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/wirefleet/wirefleet/attest"
	"github.com/wirefleet/wirefleet/fleet"
)

// Identity batches: manufacturing's device identity keys for the
// attestation bootstrap (docs/keystores.md).

var batchHeader = []string{"ID", "NAME", "GROUP", "KEYS", "USED", "REVOKED", "CREATED", "TAGS"}

func batchRow(b fleet.IdentityBatch) []string {
	return []string{b.ID, b.Name, b.GroupID, strconv.Itoa(b.Count), strconv.Itoa(b.Used), strconv.FormatBool(b.Revoked), ts(b.Created), fmtTags(b.Tags)}
}

var identityHeader = []string{"ID", "STATUS", "BATCH", "SIM", "PUBLIC KEY"}

func identityRow(i fleet.Identity) []string {
	return []string{i.ID, string(i.Status), i.BatchID, i.SIMID, i.PublicKey}
}

// importChunk keys go in one request: a P-256 key in canonical form is
// 93 bytes, so a chunk stays far below the API's 64 KiB body limit.
const importChunk = 400

// addIdentityCommands adds the identity-batch commands to the table.
func addIdentityCommands(handlers map[string]handler) {
	handlers["identities import"] = func(c *command, rest []string) error {
		name := c.fs.String("name", "", "batch name, e.g. the production lot (required unless --batch)")
		grp := c.fs.String("group", "", "group id the devices' SIMs join")
		batch := c.fs.String("batch", "", "add the keys to this existing batch instead of a new one")
		var tagList multi
		c.fs.Var(&tagList, "tag", "key=value given to the devices' SIMs (repeatable)")
		if err := c.args(rest, 1, 1, "FILE (PEM, JSON, or one key per line; - for stdin)"); err != nil {
			return err
		}
		if *batch == "" && *name == "" {
			return usageErr("identities import: --name is required for a new batch")
		}
		if *batch != "" && (*name != "" || *grp != "" || len(tagList) > 0) {
			return usageErr("identities import: --name, --group and --tag describe a new batch; not with --batch")
		}
		t, err := tags(tagList)
		if err != nil {
			return err
		}
		var data []byte
		if c.pos[0] == "-" {
			data, err = io.ReadAll(io.LimitReader(os.Stdin, 64<<20))
		} else {
			data, err = os.ReadFile(c.pos[0])
		}
		if err != nil {
			return usageErr("%v", err)
		}
		keys, err := attest.ParseKeyList(data)
		if err != nil {
			return &cliError{exitInvalid, fmt.Sprintf("%s: %v", c.pos[0], err)}
		}
		strs := make([]string, len(keys))
		for i, k := range keys {
			strs[i] = k.String()
		}
		var b fleet.IdentityBatch
		done := 0
		for done < len(strs) {
			part := strs[done:min(done+importChunk, len(strs))]
			var err error
			if *batch == "" && done == 0 {
				err = c.call("POST", "/api/v1/identity-batches", map[string]any{"name": *name, "groupId": *grp, "tags": t, "publicKeys": part}, &b)
			} else {
				id := *batch
				if id == "" {
					id = b.ID
				}
				err = c.call("POST", "/api/v1/identity-batches/"+id+"/identities", map[string]any{"publicKeys": part}, &b)
			}
			if err != nil {
				if done > 0 {
					// The parts sent so far are registered: say so, so the rest can follow.
					return fmt.Errorf("%w\nbatch %s holds keys 1-%d of %s; send the rest with --batch %s", err, b.ID, done, c.pos[0], b.ID)
				}
				return err
			}
			done += len(part)
		}
		return c.show(b, batchHeader, [][]string{batchRow(b)}, fmt.Sprintf("%d keys registered", len(keys)))
	}
	handlers["identities batches"] = func(c *command, rest []string) error {
		page := addPageFlags(c, "")
		if err := c.args(rest, 0, 0, "none"); err != nil {
			return err
		}
		return showPage(c, "/api/v1/identity-batches"+page.query(), batchHeader, batchRow)
	}
	handlers["identities batch"] = func(c *command, rest []string) error {
		if err := c.args(rest, 1, 1, "BATCH_ID"); err != nil {
			return err
		}
		return showOne(c, "/api/v1/identity-batches/"+c.pos[0], batchHeader, batchRow)
	}
	handlers["identities list"] = func(c *command, rest []string) error {
		batch := c.fs.String("batch", "", "only this batch")
		status := c.fs.String("status", "", "only active, used or revoked")
		page := addPageFlags(c, "")
		if err := c.args(rest, 0, 0, "none"); err != nil {
			return err
		}
		return showPage(c, "/api/v1/identities"+page.query("batchId", *batch, "status", *status), identityHeader, identityRow)
	}
	handlers["identities get"] = func(c *command, rest []string) error {
		if err := c.args(rest, 1, 1, "ID|PUBLIC_KEY"); err != nil {
			return err
		}
		return showOne(c, "/api/v1/identities/"+identityRef(c.pos[0]), identityHeader, identityRow)
	}
	handlers["identities revoke"] = func(c *command, rest []string) error {
		if err := c.args(rest, 1, 1, "ID|PUBLIC_KEY"); err != nil {
			return err
		}
		return c.call("DELETE", "/api/v1/identities/"+identityRef(c.pos[0]), nil, nil)
	}
	handlers["identities revoke-batch"] = func(c *command, rest []string) error {
		if err := c.args(rest, 1, 1, "BATCH_ID"); err != nil {
			return err
		}
		return c.call("DELETE", "/api/v1/identity-batches/"+c.pos[0], nil, nil)
	}
}

// identityRef turns a public key (any form) into the identity's id, the
// fingerprint the API's paths take; a fingerprint passes unchanged.
func identityRef(s string) string {
	if len(s) == 64 && isFingerprint(s) {
		return s
	}
	if k, err := attest.ParsePublicKey(s); err == nil {
		return k.Fingerprint()
	}
	return s
}

func isFingerprint(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
