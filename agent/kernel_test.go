// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/internal/netns"
	"github.com/wirefleet/wirefleet/keystore"
)

// The agent with a kernel TUN in a network namespace: the interface gets
// the overlay address and the routes, ping and TCP reach the platform
// range through the gateway, and Close removes the interface.
func TestKernelTunnel(t *testing.T) {
	env := netns.New(t)
	ns := env.NewNS("d")
	up := env.Uplink(ns, netip.MustParsePrefix("10.212.0.0/30"))

	devKS, _ := keystore.GenerateMemory()
	devAddr := netip.MustParseAddr("10.128.0.9")
	gw := newGatewayStandIn(t, devKS, devAddr)

	cfg := &Config{
		SIMID: "sim-k", IMSI: "999990000000002", Address: netip.PrefixFrom(devAddr, 32),
		GatewayEndpoint:  netip.AddrPortFrom(up.RootAddr(), gw.eng.Port()).String(),
		GatewayPublicKey: gw.eng.PublicKey(),
		AllowedIPs:       []netip.Prefix{netip.MustParsePrefix("100.127.0.0/16")}, KeyRef: "memory",
	}
	ifname := env.Name("t")
	var tn *Tunnel
	ns.MustDo(func() (err error) {
		tn, err = Up(context.Background(), cfg, UpOptions{TUNName: ifname, KeyStore: devKS, Logger: quiet})
		return err
	})
	defer tn.Close()

	if out := ns.MustExec("ip", "-o", "addr", "show", "dev", ifname); !strings.Contains(out, "10.128.0.9/32") {
		t.Fatalf("interface address:\n%s", out)
	}
	if out := ns.MustExec("ip", "route", "show", "100.127.0.0/16"); !strings.Contains(out, ifname) {
		t.Fatalf("route:\n%s", out)
	}
	if out, err := ns.Exec("ping", "-c", "2", "-W", "5", "100.127.100.127"); err != nil {
		t.Fatalf("ping through the tunnel: %v\n%s", err, out)
	}
	resp := httpGetIn(t, ns, "100.127.100.127:80", "/")
	if !strings.Contains(resp, "hello 10.128.0.9:") {
		t.Fatalf("HTTP through the tunnel:\n%s", resp)
	}
	tn.Close()
	if out, err := ns.Exec("ip", "link", "show", ifname); err == nil {
		t.Fatalf("interface still there after Close:\n%s", out)
	}
}

// httpGetIn sends a plain HTTP/1.0 GET from inside ns (the socket is made
// there) and returns the whole answer.
func httpGetIn(t *testing.T, ns *netns.NS, addr, path string) string {
	t.Helper()
	var resp string
	ns.MustDo(func() error {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: platform\r\n\r\n", path)
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			resp += line
			if err != nil {
				return nil
			}
		}
	})
	return resp
}
