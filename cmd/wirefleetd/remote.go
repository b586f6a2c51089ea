// SPDX-License-Identifier: Apache-2.0

package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/services/remoteaccess"
)

// remoteFlags configure remote access (port mappings into devices).
type remoteFlags struct {
	ports       string
	host        string
	listen      string
	maxDuration time.Duration
	maxConns    int
	source      string
	tlsCert     string
	tlsKey      string
}

func (r *remoteFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&r.ports, "remote-ports", "", "public TCP port range of remote-access mappings, FIRST-LAST (e.g. 40000-40999); empty: remote access off")
	fs.StringVar(&r.host, "remote-host", "", "public host name or address operators connect to, given in mapping answers (default: the host of --endpoint)")
	fs.StringVar(&r.listen, "remote-listen", "", "address the public ports are opened on (default: every address)")
	fs.DurationVar(&r.maxDuration, "remote-max-duration", controlplane.DefaultMaxMappingDuration, "longest lifetime of a mapping (the default one is 1 h, or this if shorter)")
	fs.IntVar(&r.maxConns, "remote-max-conns", controlplane.DefaultMappingMaxConnections, "concurrent connections per mapping (the default and the most a mapping may ask for)")
	fs.StringVar(&r.source, "remote-source", remoteaccess.DefaultSource.String(), "in-tunnel address devices see remote-access connections come from (in the platform range)")
	fs.StringVar(&r.tlsCert, "remote-tls-cert", "", "PEM certificate served on TLS mappings (default: a self-signed one made once in the data directory)")
	fs.StringVar(&r.tlsKey, "remote-tls-key", "", "PEM private key of --remote-tls-cert")
}

// setup reads the remote-access flags: the policy the control plane
// enforces, and the service's configuration (nil when remote access is
// off), which lacks only the control plane.
func (r *remoteFlags) setup(dataDir, endpoint string, platform netip.Prefix, log *slog.Logger) (controlplane.RemotePolicy, *remoteaccess.Config, error) {
	if r.ports == "" {
		return controlplane.RemotePolicy{}, nil, nil
	}
	lo, hi, ok := strings.Cut(r.ports, "-")
	min, err1 := strconv.Atoi(lo)
	max, err2 := strconv.Atoi(hi)
	if !ok || err1 != nil || err2 != nil || min < 1 || max > 65535 || min > max {
		return controlplane.RemotePolicy{}, nil, fmt.Errorf("--remote-ports %q: want FIRST-LAST, 1 to 65535", r.ports)
	}
	if r.maxDuration < time.Minute {
		return controlplane.RemotePolicy{}, nil, fmt.Errorf("--remote-max-duration %s: at least 1m", r.maxDuration)
	}
	if r.maxConns < 1 {
		return controlplane.RemotePolicy{}, nil, fmt.Errorf("--remote-max-conns %d: at least 1", r.maxConns)
	}
	src, err := netip.ParseAddr(r.source)
	if err != nil || !platform.Contains(src) {
		return controlplane.RemotePolicy{}, nil, fmt.Errorf("--remote-source %q: want an address in the platform range %s", r.source, platform)
	}
	host := r.host
	if host == "" {
		host, _, _ = net.SplitHostPort(endpoint)
	}
	var (
		cert tls.Certificate
		fp   string
	)
	switch {
	case r.tlsCert != "" || r.tlsKey != "":
		if r.tlsCert == "" || r.tlsKey == "" {
			return controlplane.RemotePolicy{}, nil, fmt.Errorf("--remote-tls-cert and --remote-tls-key go together")
		}
		cert, fp, err = remoteaccess.LoadCertificate(r.tlsCert, r.tlsKey)
	default:
		cert, fp, err = remoteaccess.LoadOrCreateCertificate(dataDir, []string{host})
	}
	if err != nil {
		return controlplane.RemotePolicy{}, nil, err
	}
	pol := controlplane.RemotePolicy{Host: host, PortMin: min, PortMax: max, MaxDuration: r.maxDuration, MaxConnections: r.maxConns, TLSFingerprint: fp}
	cfg := &remoteaccess.Config{ListenHost: r.listen, Source: src, Logger: log,
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	log.Info("remote access on", "ports", r.ports, "host", host, "listen", r.listen, "source", src, "tls_fingerprint", fp)
	if elo, ehi, ok := ephemeralPorts(); ok && min <= ehi && max >= elo {
		log.Warn("--remote-ports overlaps the kernel's ephemeral port range: an outgoing connection may hold a mapping's port for a while (reserve the range with net.ipv4.ip_local_reserved_ports, or pick one outside)",
			"ports", r.ports, "ephemeral", fmt.Sprintf("%d-%d", elo, ehi))
	}
	return pol, cfg, nil
}

// ephemeralPorts reads Linux's range of ports given to outgoing connections.
func ephemeralPorts() (lo, hi int, ok bool) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, false
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	return lo, hi, err1 == nil && err2 == nil
}
