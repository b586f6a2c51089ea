// SPDX-License-Identifier: Apache-2.0

package engine

import (
	"golang.zx2c4.com/wireguard/conn"
	"net/netip"
	"time"

	"github.com/wirefleet/wirefleet/engine/tai64n"

	"github.com/wirefleet/wirefleet/wgkey"
)

// RejectReason says why a handshake message was refused.
type RejectReason uint8

// Reasons a handshake is rejected.
const (
	RejectBadMAC1 RejectReason = iota + 1
	RejectUndecryptable
	RejectUnknownKey
	RejectDenied
	RejectReplayedTimestamp
	RejectFlood
	RejectCookieSent // under load: answered with a cookie reply instead
	RejectRateLimited
	RejectKeyStore      // the key store refused or failed the DH
	RejectUnexpected    // a response or cookie reply for no pending handshake
	RejectResolverError // the resolver failed (its store is away), not the peer's fault
	// RejectSourceFlood: under load, the source sent more handshake
	// messages than its share; dropped before any cryptography.
	RejectSourceFlood
	// RejectCookieBudget: under load, cookie replies beyond the engine's
	// budget are not sent (the message is dropped).
	RejectCookieBudget
	numRejectReasons
)

var rejectNames = [...]string{
	RejectBadMAC1:           "bad-mac1",
	RejectUndecryptable:     "undecryptable",
	RejectUnknownKey:        "unknown-key",
	RejectDenied:            "denied",
	RejectReplayedTimestamp: "replayed-timestamp",
	RejectFlood:             "flood",
	RejectCookieSent:        "under-load-cookie-sent",
	RejectRateLimited:       "rate-limited",
	RejectKeyStore:          "key-store",
	RejectUnexpected:        "unexpected",
	RejectResolverError:     "resolver-error",
	RejectSourceFlood:       "source-flood",
	RejectCookieBudget:      "cookie-budget",
}

// String returns the reason's stable name, used in logs and metrics.
func (r RejectReason) String() string {
	if int(r) < len(rejectNames) && rejectNames[r] != "" {
		return rejectNames[r]
	}
	return "unknown"
}

// DropReason says why an inner or outer packet was dropped.
type DropReason uint8

// Reasons a packet is dropped.
const (
	DropSourceNotAllowed DropReason = iota + 1
	DropMalformedInner
	DropReplay
	DropNoSession
	DropDecrypt
	DropNoRoute
	DropMalformedOuter // a datagram that is no WireGuard message
	// DropIPv6NotEnabled: an IPv6 packet from a peer whose allowed IPs
	// hold no IPv6 prefix at all — not a spoof, a family it was not given.
	DropIPv6NotEnabled
)

var dropNames = [...]string{
	DropSourceNotAllowed: "source-not-allowed",
	DropMalformedInner:   "malformed-inner",
	DropReplay:           "replay",
	DropNoSession:        "no-session",
	DropDecrypt:          "decrypt",
	DropNoRoute:          "no-route",
	DropMalformedOuter:   "malformed-outer",
	DropIPv6NotEnabled:   "ipv6-not-enabled",
}

// String returns the reason's stable name.
func (r DropReason) String() string {
	if int(r) < len(dropNames) && dropNames[r] != "" {
		return dropNames[r]
	}
	return "unknown"
}

// HandshakeEvent reports a completed handshake: a new session with a peer.
type HandshakeEvent struct {
	Peer      *Peer
	Endpoint  netip.AddrPort
	Initiator bool // we initiated
	Time      time.Time
}

// RejectEvent reports a refused handshake message. Key is the claimed static
// key when the message got far enough to reveal it.
type RejectEvent struct {
	Reason RejectReason
	Key    wgkey.Public
	Remote netip.AddrPort
	Detail string // e.g. the resolver's denial reason
	Time   time.Time
	// Timestamp is the refused initiation's own (authenticated) TAI64N
	// timestamp, for RejectReplayedTimestamp only.
	Timestamp tai64n.Timestamp
}

// EndpointEvent reports that a peer's outer address changed (roaming).
type EndpointEvent struct {
	Peer     *Peer
	Old, New netip.AddrPort
	Time     time.Time
}

// SessionEvent reports that a peer's session ended: expired, or removed.
type SessionEvent struct {
	Peer   *Peer
	Reason string // "expired", "removed", "evicted"
	Time   time.Time
}

// DropEvent reports a dropped packet attributable to a peer.
type DropEvent struct {
	Peer   *Peer
	Reason DropReason
	Source netip.Addr // inner source address, for DropSourceNotAllowed
	Time   time.Time
}

// Hooks are typed callbacks for what the engine sees. Any may be nil, and
// an unset hook costs one nil check. Hooks run on engine goroutines: they
// must return quickly and must not call back into the engine synchronously
// in a way that waits for the engine.
type Hooks struct {
	HandshakeCompleted func(HandshakeEvent)
	HandshakeRejected  func(RejectEvent)
	EndpointChanged    func(EndpointEvent)
	SessionExpired     func(SessionEvent)
	PacketDropped      func(DropEvent)
	// UnplacedTransport reports a transport datagram whose receiver index
	// no session here holds, from remote (ep with the local address it
	// arrived on): a device whose session was on another node. Called on
	// the receive path for every such datagram, floods included: it must
	// be cheap (InitiateTo is for later, off that path).
	UnplacedTransport func(remote netip.AddrPort, ep conn.Endpoint)
}
