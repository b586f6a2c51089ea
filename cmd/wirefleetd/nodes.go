// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/gateway"
	"github.com/wirefleet/wirefleet/internal/seal"
	"github.com/wirefleet/wirefleet/keystore"
)

// settingsKCV is the check value of the settings key the store keeps to
// tell a node with another key: derived from it, so it reveals nothing of
// it.
func settingsKCV(k *seal.Key) string {
	return hex.EncodeToString(k.Derive("key check value")[:8])
}

// startHeartbeat registers this node in the store's node registry and
// refreshes its record (load, health) every fleet.NodeHeartbeat. The
// function it returns stops it and marks the node stopped, so the others
// and the operators see it down at once rather than after
// fleet.NodeStaleAfter.
func startHeartbeat(ctx context.Context, svc *controlplane.Service, n fleet.Node, stats func() fleet.GatewayStats, degraded func() []string, log *slog.Logger) func() {
	ctx, cancel := context.WithCancel(ctx)
	n.Started = time.Now().UTC()
	beat := func(ctx context.Context) {
		st := stats()
		n.Seen, n.Sessions, n.Degraded = time.Now().UTC(), st.Sessions, strings.Join(degraded(), "; ")
		if err := svc.Heartbeat(ctx, n); err != nil && ctx.Err() == nil {
			log.Warn("node registry: heartbeat", "node", n.Name, "err", err)
		}
	}
	// The first beat before serving: a node that answers is registered.
	beat(ctx)
	log.Info("node registered", "node", n.Name, "version", n.Version)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(fleet.NodeHeartbeat)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				beat(ctx)
			}
		}
	}()
	return func() {
		cancel()
		wg.Wait()
		stop, done := context.WithTimeout(context.Background(), 2*time.Second)
		defer done()
		n.Seen, n.Degraded = time.Now().UTC().Add(-fleet.NodeStaleAfter), "stopped"
		if err := svc.Heartbeat(stop, n); err != nil {
			log.Warn("node registry: marking this node stopped", "node", n.Name, "err", err)
		}
	}
}

// The cluster-wide jobs, by their lease's name: of the nodes sharing a
// store, the one holding a job's lease runs it.
const (
	JobRetention = "datastore-retention"
	JobAudit     = "config-audit"
)

// meshConfig is the gateway's mesh from the flags: the node's own mesh
// key (created on first start in the data directory), the port.
func meshConfig(c config) (*gateway.MeshConfig, error) {
	ep, err := netip.ParseAddrPort(c.meshEndpoint)
	if err != nil {
		return nil, fmt.Errorf("--mesh-endpoint %q: want HOST:PORT with an IP address: %w", c.meshEndpoint, err)
	}
	port := ep.Port()
	if c.meshListen != "" {
		// :PORT only: the engine listens on every address (it answers
		// each node from the address that node sent to); keep the port
		// to the nodes' network with the host's firewall.
		h, p, err := net.SplitHostPort(c.meshListen)
		n, err2 := strconv.ParseUint(p, 10, 16)
		if err != nil || err2 != nil || h != "" {
			return nil, fmt.Errorf("--mesh-listen %q: want :PORT (the mesh listens on every address; firewall the port to the nodes' network)", c.meshListen)
		}
		port = uint16(n)
	}
	ks, err := keystore.LoadOrCreateFile(filepath.Join(c.dataDir, "mesh.key"))
	if err != nil {
		return nil, fmt.Errorf("mesh key: %w", err)
	}
	return &gateway.MeshConfig{KeyStore: ks, ListenPort: port, Endpoint: c.meshEndpoint}, nil
}
