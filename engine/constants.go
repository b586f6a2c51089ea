// SPDX-License-Identifier: Apache-2.0

package engine

import "time"

// Protocol constants from the WireGuard whitepaper (section 6.1). They are
// part of the wire contract with every other implementation.
const (
	RekeyAfterMessages  = uint64(1) << 60
	RejectAfterMessages = ^uint64(0) - (uint64(1) << 13)
	RekeyAfterTime      = 120 * time.Second
	RekeyAttemptTime    = 90 * time.Second
	RekeyTimeout        = 5 * time.Second
	RejectAfterTime     = 180 * time.Second
	KeepaliveTimeout    = 10 * time.Second
	// MaxTimerHandshakes is how many initiations are sent before giving up
	// (RekeyAttemptTime / RekeyTimeout).
	MaxTimerHandshakes = int(RekeyAttemptTime / RekeyTimeout)
	// RekeyTimeoutJitterMax is the random extra added to each retransmission.
	RekeyTimeoutJitterMax = 334 * time.Millisecond
	// HandshakeInitiationRate is the minimum spacing of initiations accepted
	// from one peer (flood protection on top of the timestamp check).
	HandshakeInitiationRate = time.Second / 50
)

// Engine tuning defaults.
const (
	defaultHandshakeQueue = 1024
	// underLoadQueue is the handshake backlog at which the engine declares
	// itself under load and starts asking for cookies.
	underLoadQueue  = defaultHandshakeQueue / 8
	underLoadLinger = time.Second
	// Under load, each source address (an IPv6 /64) may have this many
	// handshake messages a second looked at (MAC1, MAC2, a cookie reply);
	// the rest are dropped before any cryptography. Generous, for the
	// many devices one carrier NAT puts behind an address: each needs
	// about one a RekeyTimeout.
	sourceHandshakeRate  = 1000
	sourceHandshakeBurst = 2000
	maxSources           = 65536
	// cookieReplyRate bounds the cookie replies sent a second in all, so
	// a flood from many (spoofed) sources is not reflected at full rate.
	cookieReplyRate = 20000
	maxStaged       = 128 // packets held per peer while its handshake runs
	// bufSize fits the largest UDP datagram, which GRO may hand us.
	bufSize = 65535
	// chunkSize is how many packets one crypto job holds: small enough to
	// spread a batch over the cores, big enough to amortize the hand-off.
	chunkSize = 32
	// resolveTimeout bounds one Resolver call.
	resolveTimeout = 5 * time.Second
)
