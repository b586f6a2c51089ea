// SPDX-License-Identifier: Apache-2.0

// Package mqttbridge relays a device's MQTT connection to an upstream
// broker as the platform: the device connects to the gateway's forwarder
// without credentials (its tunnel is its identity), and the bridge opens
// its own connection to the broker (MQTT or MQTTS) with credentials the
// device never holds, rewriting topics to carry the device's identity.
//
// Devices speak MQTT 3.1.1 or 5.0; the bridge speaks the same version to
// the broker. Packets are encoded and decoded with
// github.com/mochi-mqtt/server/v2/packets. docs/mqtt.md describes the
// behaviour a device sees.
package mqttbridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
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
	// TLS, if not nil, makes the connection MQTTS. An empty ServerName is
	// taken from Addr's host.
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
	// {topic} must span whole topic levels.
	TopicTemplate string
	// Dialer connects to the broker; default a plain net.Dialer. The
	// forwarder gives one that enforces its egress policy.
	Dialer *net.Dialer
	// DialTimeout bounds connecting to the broker, TLS handshake and
	// CONNACK included (0: 10 s).
	DialTimeout time.Duration

	// MaxPacketSize bounds every packet read from the device or the
	// broker, in bytes (0: DefaultMaxPacketSize, 256 KiB).
	MaxPacketSize int
	// Logger receives the bridge's logs (nil: slog.Default()). Credentials
	// and payloads are never logged.
	Logger *slog.Logger
	// Stats, if not nil, counts what the bridge does; one Stats may be
	// shared by all sessions.
	Stats *Stats
}

// Stats counts a bridge's work, for metrics. All fields are cumulative.
type Stats struct {
	// Sessions counts devices whose CONNECT the broker accepted.
	Sessions atomic.Int64
	// Refused counts CONNECTs answered with a failure (broker refusal,
	// broker unreachable, bad configuration, unsupported version).
	Refused atomic.Int64
	// ToBroker and ToDevice count PUBLISH packets relayed each way.
	ToBroker, ToDevice atomic.Int64
	// Rejected counts device topics and filters the bridge refused.
	Rejected atomic.Int64
	// Undeliverable counts broker PUBLISH packets whose topic does not
	// have the template's shape, acknowledged upstream and not delivered.
	Undeliverable atomic.Int64
}

// Validate checks the configuration that does not depend on a device:
// the address, the templates' syntax. Serve checks again with the
// device's identity filled in.
func (u Upstream) Validate() error {
	if _, _, err := net.SplitHostPort(u.Addr); err != nil {
		return fmt.Errorf("mqttbridge: broker address %q: %w", u.Addr, err)
	}
	probe := Identity{SIMID: "sim", IMSI: "999990000000000", GroupName: "group"}
	if _, err := newTopicMap(u.TopicTemplate, probe); err != nil {
		return err
	}
	if _, err := expand(clientIDTemplate(u.ClientID), probe, "client id template"); err != nil {
		return err
	}
	if u.Password != "" && u.Username == "" {
		return errors.New("mqttbridge: a password needs a username (MQTT 3.1.1 forbids a password alone)")
	}
	return nil
}

func clientIDTemplate(s string) string {
	if s == "" {
		return "{imsi}"
	}
	return s
}

// Errors Serve returns (wrapped) when a session ends other than by the
// device's DISCONNECT.
var (
	// ErrBrokerUnavailable: the broker could not be reached, or its
	// connection failed; the device got a CONNACK 0x03 (v5: 0x88) or, in
	// session, a v5 DISCONNECT, and was closed.
	ErrBrokerUnavailable = errors.New("mqttbridge: broker unavailable")
	// ErrKeepaliveTimeout: the device sent nothing for 1.5 times its
	// keepalive.
	ErrKeepaliveTimeout = errors.New("mqttbridge: device keepalive timeout")
	// ErrUnsupportedVersion: the device spoke MQTT 3.1 (or something
	// else); it got CONNACK 0x01.
	ErrUnsupportedVersion = errors.New("mqttbridge: unsupported MQTT protocol version")
)

// RefusedError is returned when the broker refused the bridge's CONNECT;
// the device received the same return (reason) code.
type RefusedError struct {
	Code   byte
	Reason string
}

func (e *RefusedError) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("mqttbridge: broker refused the connection: code 0x%02x (%s)", e.Code, e.Reason)
	}
	return fmt.Sprintf("mqttbridge: broker refused the connection: code 0x%02x", e.Code)
}

// Serve relays dev (the device's connection, on the in-tunnel stack) to the
// upstream broker until either side closes or ctx ends. It owns dev and
// closes it. It returns nil when the device disconnected with DISCONNECT.
func Serve(ctx context.Context, dev net.Conn, id Identity, up Upstream) error {
	defer dev.Close()
	s, err := connect(ctx, dev, id, up)
	if err != nil {
		if up.Stats != nil && !errors.Is(err, errNoConnect) {
			up.Stats.Refused.Add(1)
		}
		return err
	}
	if up.Stats != nil {
		up.Stats.Sessions.Add(1)
	}
	return s.run(ctx)
}
