// Package mqttbridge relays a device's MQTT connection to an upstream
// broker as the platform: the device connects to the gateway's forwarder
// without credentials (its tunnel is its identity), and the bridge opens
// its own connection to the broker (MQTT or MQTTS) with credentials the
// device never holds, rewriting topics to carry the device's identity.
package mqttbridge

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"time"
)

// Identity is who the device is, for topic and client-id templates.
type Identity struct {
	SIMID     string
	IMSI      string
	GroupName string
}

// Upstream is the broker a device is bridged to, and how.
type Upstream struct {
	// Addr is the broker's host:port.
	Addr string
	// TLS, if not nil, makes the connection MQTTS.
	TLS *tls.Config
	// Username and Password are sent to the broker; whatever the device
	// sent is dropped.
	Username, Password string
	// ClientID is the upstream client id template ("" means "{imsi}").
	// Placeholders: {imsi}, {simId}, {group}.
	ClientID string
	// TopicTemplate maps a device topic to the broker's ("" means
	// "{topic}", unchanged); it holds {topic} once, and may hold {imsi},
	// {simId}, {group}: "devices/{imsi}/{topic}" prefixes, "{topic}/{imsi}"
	// appends. Topics coming back to the device are mapped in reverse.
	TopicTemplate string
	// DialTimeout bounds connecting to the broker (0: 10 s).
	DialTimeout time.Duration
}

// ErrNotImplemented is returned until the bridge is written.
var ErrNotImplemented = errors.New("mqttbridge: not implemented")

// Serve relays dev (the device's connection, on the in-tunnel stack) to the
// upstream broker until either side closes or ctx ends. It owns dev and
// closes it.
func Serve(ctx context.Context, dev net.Conn, id Identity, up Upstream) error {
	dev.Close()
	return ErrNotImplemented
}
