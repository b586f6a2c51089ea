// SPDX-License-Identifier: Apache-2.0

package engine

import "testing"

func TestSelfPair(t *testing.T) {
	a := newNode(t, nil, nil)
	b := newNode(t, nil, nil)
	pb, _ := a.e.AddPeer(PeerConfig{PublicKey: b.e.PublicKey(), AllowedIPs: pfx(addrB), Endpoint: b.endpoint()})
	pa, _ := b.e.AddPeer(PeerConfig{PublicKey: a.e.PublicKey(), AllowedIPs: pfx(addrA)})
	a.e.Send(pb, [][]byte{ping(addrB, addrA)})
	checkPing(t, recv(t, b.in, "ping at b"), addrB, addrA)
	b.e.Send(pa, [][]byte{ping(addrA, addrB)})
	checkPing(t, recv(t, a.in, "ping at a"), addrA, addrB)
}
