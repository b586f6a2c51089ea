// SPDX-License-Identifier: Apache-2.0

package fleet

import (
	"errors"
	"testing"
)

func TestMirrorPeersRefused(t *testing.T) {
	for name, c := range map[string]struct {
		m     Mirroring
		field string
	}{
		"not an address": {Mirroring{Peers: []MirrorPeer{{IPAddress: "collector.example"}}}, "m.peers[0].ipAddress"},
		"multicast":      {Mirroring{Peers: []MirrorPeer{{IPAddress: "239.1.1.1"}}}, "m.peers[0].ipAddress"},
		"broadcast":      {Mirroring{Peers: []MirrorPeer{{IPAddress: "255.255.255.255"}}}, "m.peers[0].ipAddress"},
		"unspecified":    {Mirroring{Peers: []MirrorPeer{{IPAddress: "::"}}}, "m.peers[0].ipAddress"},
		"link-local":     {Mirroring{Peers: []MirrorPeer{{IPAddress: "fe80::1"}}}, "m.peers[0].ipAddress"},
		"protocol":       {Mirroring{Peers: []MirrorPeer{{IPAddress: "192.0.2.9", Protocol: "erspan"}}}, "m.peers[0].protocol"},
		"port on gre":    {Mirroring{Peers: []MirrorPeer{{IPAddress: "192.0.2.9", Port: 4754}}}, "m.peers[0].port"},
		"too many":       {Mirroring{Peers: make([]MirrorPeer, MaxMirrorPeers+1)}, "m.peers"},
	} {
		err := c.m.Normalize("m")
		var fe *Error
		if !errors.As(err, &fe) || fe.Field != c.field || fe.Code != CodeInvalid {
			t.Errorf("%s: %v, want invalid %s", name, err, c.field)
		}
	}
	m := Mirroring{Peers: []MirrorPeer{{IPAddress: "::ffff:192.0.2.9", Enabled: true}}}
	if err := m.Normalize("m"); err != nil || m.Peers[0].IPAddress != "192.0.2.9" || m.Peers[0].Protocol != MirrorGRE {
		t.Fatalf("normalized: %+v %v", m, err)
	}
}
