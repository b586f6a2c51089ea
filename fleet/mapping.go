// SPDX-License-Identifier: Apache-2.0

package fleet

import (
	"net/netip"
	"time"
)

// Mapping is a remote-access port mapping: for a limited time, connections
// from the allowed sources to the platform's public host and port are
// carried through the gateway to one TCP port of one SIM's device. The
// device sees them come from a fixed platform address and never listens on
// the Internet.
type Mapping struct {
	ID    string `json:"id"`
	SIMID string `json:"simId"`
	// Port is the device's TCP port.
	Port int `json:"port"`
	// Target, when set, is a host on a LAN behind the SIM, as the fleet
	// reaches it (its mapped address on a mapped LAN): connections go
	// there instead of the SIM's own address.
	Target netip.Addr `json:"target,omitzero"`
	// Host and PublicPort are where operators connect.
	Host       string `json:"host"`
	PublicPort int    `json:"publicPort"`
	// AllowedSources are the source prefixes accepted; 0.0.0.0/0 only when
	// asked for explicitly.
	AllowedSources []netip.Prefix `json:"allowedSources"`
	// TLS: the platform terminates TLS on the public port and carries plain
	// TCP to the device.
	TLS bool `json:"tls"`
	// MaxConnections bounds the mapping's concurrent connections.
	MaxConnections int       `json:"maxConnections"`
	Created        time.Time `json:"created"`
	Expires        time.Time `json:"expires"`
	// CreatedBy is the actor that created it ("token:<id>").
	CreatedBy string `json:"createdBy"`
}

// Live reports whether the mapping accepts connections at now.
func (m Mapping) Live(now time.Time) bool { return now.Before(m.Expires) }

// Allows reports whether src may connect.
func (m Mapping) Allows(src netip.Addr) bool {
	src = src.Unmap()
	for _, p := range m.AllowedSources {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// OpenToAll reports whether the mapping accepts any source address.
func (m Mapping) OpenToAll() bool {
	for _, p := range m.AllowedSources {
		if p.Bits() == 0 {
			return true
		}
	}
	return false
}

// ChangeMapping is the Change kind of port mappings: created, deleted or
// expired, so that every gateway sharing the store opens or closes its
// listener.
const ChangeMapping ChangeKind = "mapping"

// MappingView is a mapping as the API answers it: with the certificate
// fingerprint of TLS mappings (the platform's, so a client can pin it).
type MappingView struct {
	Mapping
	TLSFingerprint string `json:"tlsFingerprint,omitempty"`
}
