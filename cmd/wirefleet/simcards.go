// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"io"
	"os"

	"github.com/wirefleet/wirefleet/fleet"
)

// Physical SIM cards, for bootstrap by SIM card (docs/control-plane.md).

// rawBody is a request body sent as it is (not JSON).
type rawBody struct {
	contentType string
	data        []byte
}

var cardHeader = []string{"ICCID", "IMSI", "STATUS", "GROUP", "SIM", "CREATED"}

func cardRow(c fleet.SIMCard) []string {
	return []string{c.ICCID, c.IMSI, string(c.Status), c.GroupID, c.SIMID, ts(c.Created)}
}

func addSIMCardCommands(handlers map[string]handler) {
	handlers["sim-cards import"] = func(c *command, rest []string) error {
		grp := c.fs.String("group", "", "group id the cards' virtual SIMs join")
		if err := c.args(rest, 1, 1, "FILE.csv (- for stdin)"); err != nil {
			return err
		}
		var (
			data []byte
			err  error
		)
		if c.pos[0] == "-" {
			data, err = io.ReadAll(io.LimitReader(os.Stdin, 16<<20+1))
		} else {
			data, err = os.ReadFile(c.pos[0])
		}
		if err != nil {
			return usageErr("%v", err)
		}
		var res struct {
			Imported int `json:"imported"`
		}
		if err := c.call("POST", "/api/v1/sim-cards/import"+query("groupId", *grp), rawBody{"text/csv", data}, &res); err != nil {
			return err
		}
		return c.show(res, []string{"IMPORTED"}, [][]string{{fmt.Sprint(res.Imported)}}, fmt.Sprintf("%d SIM cards imported", res.Imported))
	}
	handlers["sim-cards list"] = func(c *command, rest []string) error {
		page := addPageFlags(c, "")
		if err := c.args(rest, 0, 0, "none"); err != nil {
			return err
		}
		return showPage(c, "/api/v1/sim-cards"+page.query(), cardHeader, cardRow)
	}
	handlers["sim-cards get"] = func(c *command, rest []string) error {
		if err := c.args(rest, 1, 1, "ICCID"); err != nil {
			return err
		}
		return showOne(c, "/api/v1/sim-cards/"+c.pos[0], cardHeader, cardRow)
	}
	patch := func(usage string, body func(c *command) map[string]any, nargs int) handler {
		return func(c *command, rest []string) error {
			if err := c.args(rest, nargs, nargs, usage); err != nil {
				return err
			}
			var card fleet.SIMCard
			if err := c.call("PATCH", "/api/v1/sim-cards/"+c.pos[0], body(c), &card); err != nil {
				return err
			}
			return c.show(card, cardHeader, [][]string{cardRow(card)}, "")
		}
	}
	handlers["sim-cards suspend"] = patch("ICCID", func(*command) map[string]any { return map[string]any{"status": fleet.CardSuspended} }, 1)
	handlers["sim-cards resume"] = patch("ICCID", func(*command) map[string]any { return map[string]any{"status": fleet.CardActive} }, 1)
	handlers["sim-cards set-group"] = patch("ICCID GROUP_ID", func(c *command) map[string]any { return map[string]any{"groupId": c.pos[1]} }, 2)
	handlers["sim-cards delete"] = func(c *command, rest []string) error {
		if err := c.args(rest, 1, 1, "ICCID"); err != nil {
			return err
		}
		return c.call("DELETE", "/api/v1/sim-cards/"+c.pos[0], nil, nil)
	}
}
