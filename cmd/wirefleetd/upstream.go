// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// resolvConf is where the host's resolvers are read from for
// --dns-upstream auto.
const resolvConf = "/etc/resolv.conf"

// dnsUpstreams turns --dns-upstream into resolver addresses: "auto" reads
// the host's resolv.conf, "none" turns outside names off, anything else is
// a comma-separated list of IP or IP:port.
func dnsUpstreams(flag string) ([]netip.AddrPort, error) {
	switch flag {
	case "none", "":
		return nil, nil
	case "auto":
		return readResolvConf(resolvConf)
	}
	var out []netip.AddrPort
	for _, part := range strings.Split(flag, ",") {
		part = strings.TrimSpace(part)
		if ap, err := netip.ParseAddrPort(part); err == nil {
			out = append(out, ap)
			continue
		}
		a, err := netip.ParseAddr(part)
		if err != nil {
			return nil, fmt.Errorf("--dns-upstream %q: want auto, none, or IP[:port] resolvers, comma-separated", part)
		}
		out = append(out, netip.AddrPortFrom(a, 53))
	}
	return out, nil
}

// readResolvConf returns the nameservers of a resolv.conf (port 53); a
// missing file is no resolvers, not an error.
func readResolvConf(path string) ([]netip.AddrPort, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []netip.AddrPort
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "nameserver" {
			if a, err := netip.ParseAddr(fields[1]); err == nil && a.Zone() == "" {
				out = append(out, netip.AddrPortFrom(a.Unmap(), 53))
			}
		}
	}
	return out, sc.Err()
}
