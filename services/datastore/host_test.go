// SPDX-License-Identifier: Apache-2.0

package datastore

import (
	"context"
	"errors"
	"net"
	"net/netip"

	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/services/platform"
)

// testHost is a platform.Host over loopback: Listen hands out listeners
// opened beforehand (HTTP, TCP, then UDP, as Start asks for them), Caller
// asks a function.
type testHost struct {
	tcp    []net.Listener
	udp    []net.PacketConn
	caller func(context.Context, netip.Addr) (platform.Caller, bool)
}

func (h *testHost) Listen(netip.Addr, []uint16, []uint16) ([]net.Listener, []net.PacketConn, error) {
	return h.tcp, h.udp, nil
}

func (h *testHost) DialTCP(context.Context, netip.AddrPort) (net.Conn, error) {
	return nil, errors.New("testHost: no devices to dial")
}

func (h *testHost) Caller(ctx context.Context, a netip.Addr) (platform.Caller, bool) {
	return h.caller(ctx, a)
}

func (h *testHost) Online(string) bool { return false }

func (h *testHost) Reachable(context.Context, fleet.SIM, string) (fleet.SIM, bool) {
	return fleet.SIM{}, false
}
