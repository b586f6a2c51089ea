// SPDX-License-Identifier: Apache-2.0

package engine

import (
	"crypto/cipher"
	"sync"
	"sync/atomic"

	"github.com/wirefleet/wirefleet/engine/noise"
	"github.com/wirefleet/wirefleet/engine/replay"
	"golang.org/x/crypto/chacha20poly1305"
)

// keypair is one direction pair of transport keys: a session.
type keypair struct {
	peer        *Peer
	send, recv  cipher.AEAD
	sendNonce   atomic.Uint64
	created     int64 // clock nanos
	initiator   bool
	confirmed   atomic.Bool // responder: the initiator has used it
	localIndex  uint32
	remoteIndex uint32

	replayMu sync.Mutex
	replay   replay.Filter
}

func newKeypair(p *Peer, k *noise.Keys, initiator bool, now int64, local, remote uint32) *keypair {
	send, _ := chacha20poly1305.New(k.Send[:])
	recv, _ := chacha20poly1305.New(k.Recv[:])
	clear(k.Send[:])
	clear(k.Recv[:])
	return &keypair{peer: p, send: send, recv: recv, created: now, initiator: initiator, localIndex: local, remoteIndex: remote}
}

// acceptCounter runs the replay filter for a counter whose packet
// authenticated.
func (kp *keypair) acceptCounter(c uint64) bool {
	kp.replayMu.Lock()
	ok := kp.replay.Accept(c, RejectAfterMessages)
	kp.replayMu.Unlock()
	return ok
}
