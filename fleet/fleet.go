// SPDX-License-Identifier: Apache-2.0

// Package fleet holds the control plane's domain types — SIMs, groups, auth
// keys, operator tokens, events, change notifications — and their validation.
// It knows nothing of storage or HTTP.
package fleet

import (
	"net/netip"
	"slices"
	"time"

	"github.com/wirefleet/wirefleet/wgkey"
)

// Status is the lifecycle state of a SIM.
type Status string

// SIM statuses. Terminated is final: the SIM keeps its IMSI, address and
// keys so that none of them is ever handed to another device by accident.
const (
	StatusActive     Status = "active"
	StatusSuspended  Status = "suspended"
	StatusTerminated Status = "terminated"
)

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	return s == StatusActive || s == StatusSuspended || s == StatusTerminated
}

// SIMKind says what stands behind a SIM's tunnel.
type SIMKind string

// SIM kinds. A site is a network outside the fleet (a server, a cloud
// network's router, an office) joined as a standard WireGuard peer: its
// own key and the prefixes behind it, no IMSI.
const (
	KindDevice SIMKind = ""
	KindSite   SIMKind = "site"
)

// SIM is a virtual SIM: the fleet identity of one device (or one site).
type SIM struct {
	ID   string  `json:"id"`
	Kind SIMKind `json:"kind,omitempty"`
	// IMSI is empty for a site.
	IMSI    string            `json:"imsi"`
	Name    string            `json:"name"`
	Tags    map[string]string `json:"tags"`
	GroupID string            `json:"groupId,omitempty"`
	Status  Status            `json:"status"`
	Address netip.Addr        `json:"address"`
	// PublicKey is the device's current WireGuard key. NextPublicKey is a key
	// announced during rotation; the gateway accepts both until the rotation
	// completes (SetKey promotes the next key).
	PublicKey     wgkey.Public `json:"publicKey"`
	NextPublicKey wgkey.Public `json:"nextPublicKey,omitzero"`
	Created       time.Time    `json:"created"`
	Updated       time.Time    `json:"updated"`
	// AuthKeyID is the auth key the SIM was bootstrapped with; empty when
	// an operator or a trusted network created it. Fixed at creation: it
	// scopes what sessions of that key (the Arc API) may do to the SIM.
	AuthKeyID string `json:"authKeyId,omitempty"`
	// KeySet is when the current key became current (key-age audits).
	KeySet time.Time `json:"keySet,omitzero"`
	// RotateBy, when set, is the deadline for the device to replace its
	// key (a group's "rotate" security action, or an operator). After it
	// the current key is refused; a next key announced before is still
	// accepted, and its first handshake completes the rotation. A new key
	// clears it.
	RotateBy time.Time `json:"rotateBy,omitzero"`
	// Agent is the software the device last reported itself as: the
	// product of the User-Agent of its requests to the metadata service
	// ("wirefleet-agent/v1.4.0"); empty until it makes one. The device's
	// own word, for operators' eyes: never a basis for a decision.
	Agent string `json:"agent,omitempty"`
	// AgentSeen is when the device first reported Agent.
	AgentSeen time.Time `json:"agentSeen,omitzero"`
}

// MaxAgentLen bounds SIM.Agent.
const MaxAgentLen = 64

// Group is a set of SIMs sharing settings.
type Group struct {
	ID       string        `json:"id"`
	Name     string        `json:"name"`
	Settings GroupSettings `json:"settings"`
	Created  time.Time     `json:"created"`
	Updated  time.Time     `json:"updated"`
}

// SettingsVersion is the current version of GroupSettings. Stored settings
// carry their version so that later fields (services, security profile) can
// be added with a migration of old documents rather than a guess.
const SettingsVersion = 1

// MaxUserData bounds the user data handed to devices.
const MaxUserData = 8 << 10

// GroupSettings are the per-group settings. Unknown fields are rejected by
// the API so a typo is an error, not a silently ignored setting.
type GroupSettings struct {
	Version int `json:"version"`
	// Routes are pushed to devices as AllowedIPs beyond the platform range.
	Routes []string `json:"routes,omitempty"`
	// DeviceToDevice says which other SIMs a device may reach.
	DeviceToDevice D2DPolicy `json:"deviceToDevice"`
	// DevicesMayWriteTags lets devices set their own tags.
	DevicesMayWriteTags bool `json:"devicesMayWriteTags"`
	// DevicesMayAdvertiseRoutes lets devices advertise the LAN prefixes
	// behind them (they take effect once an operator approves them).
	DevicesMayAdvertiseRoutes bool `json:"devicesMayAdvertiseRoutes,omitempty"`
	// ArcRekeyWithAuthKey lets a holder of the auth key that bootstrapped
	// a SIM replace its key through the Arc route without proving it holds
	// the current key — the SORACOM behaviour. Off by default: the auth
	// key is shared by every device it bootstrapped, so one stolen device
	// could take over all of them. The monitor alerts ("key-replaced")
	// when the key of an online SIM is replaced this way (or any other way
	// than the device's own rotation).
	ArcRekeyWithAuthKey bool `json:"arcRekeyWithAuthKey,omitempty"`
	// UserData is handed to devices as-is (at most MaxUserData bytes).
	UserData string `json:"userData,omitempty"`
	// Security says what the monitor does about alerts on the group's SIMs.
	Security SecurityProfile `json:"security,omitzero"`
	// Forwarders route devices' traffic to the cloud with identity and credentials.
	Forwarders Forwarders `json:"forwarders,omitzero"`
	// DataStore says whether and how devices store data (fleet/datastore.go).
	DataStore DataStoreSettings `json:"dataStore,omitzero"`
	// Egress says where devices may send beyond the fleet, and whether
	// such traffic leaves through the gateway (fleet/egress.go).
	Egress EgressSettings `json:"egress,omitzero"`
	// Mirroring copies every packet of the group's SIMs to mirror peers
	// (fleet/mirror.go).
	Mirroring Mirroring `json:"mirroring,omitzero"`
	// Redirection routes the group's traffic through an operator's host
	// (fleet/mirror.go).
	Redirection Redirection `json:"redirection,omitzero"`
	// Inspection measures the group's traffic per interval
	// (fleet/inspection.go).
	Inspection Inspection `json:"inspection,omitzero"`
}

// Security actions taken on an alert about a SIM.
const (
	ActionAlert      = "alert"      // record and notify only
	ActionQuarantine = "quarantine" // move the SIM to the quarantine group
	ActionSuspend    = "suspend"    // suspend the SIM
	ActionRotate     = "rotate"     // require a key rotation (RotateWithinHours)
)

// AlertKinds are the kinds of the monitor's alerts (package monitor).
var AlertKinds = []string{"cloned-key", "fan-out", "outside-allow-list", "first-seen", "volume", "unexpected-listener", "key-replaced", "egress-denied"}

// DefaultActOn is the alert kinds a security action answers by default.
var DefaultActOn = []string{"cloned-key"}

// SecurityProfile is a group's answer to security alerts.
type SecurityProfile struct {
	// Action on an alert: ActionAlert (default), ActionQuarantine,
	// ActionSuspend or ActionRotate.
	Action string `json:"action,omitempty"`
	// ActOn lists the alert kinds the action answers (AlertKinds); the
	// others are recorded and notified only. Default: cloned-key, the one
	// alert that means the SIM itself is compromised — a first-seen
	// destination should not suspend a device unless the group says so.
	ActOn []string `json:"actOn,omitempty"`
	// RotateWithinHours is the time a device gets to replace its key when
	// the action is ActionRotate (default 24; at most 2160).
	RotateWithinHours int `json:"rotateWithinHours,omitempty"`
	// KeyMaxAgeDays is the group's key rotation policy: audits report
	// SIMs whose key is older (0: no policy).
	KeyMaxAgeDays int `json:"keyMaxAgeDays,omitempty"`
	// QuarantineGroup names the group quarantined SIMs move to; give it
	// device-to-device off, so only platform services stay reachable.
	QuarantineGroup string `json:"quarantineGroup,omitempty"`
	// WebhookURL receives each alert as JSON, signed with WebhookSecret.
	WebhookURL string `json:"webhookUrl,omitempty"`
	// WebhookSecret keys the HMAC-SHA256 signature of webhook bodies. The
	// API never returns it (WebhookSecretSet says whether one is set).
	WebhookSecret    string `json:"webhookSecret,omitempty"`
	WebhookSecretSet bool   `json:"webhookSecretSet,omitempty"`
	// AllowList, if not empty, is where the group's devices may send
	// (CIDR prefixes; the platform range is always allowed). Traffic
	// elsewhere raises an alert, and is dropped when Block is set.
	AllowList []string `json:"allowList,omitempty"`
	Block     bool     `json:"block,omitempty"`
	// FirstSeen alerts when a device reaches a destination (address and
	// port) it did not reach while the gateway learned its habits (the
	// first hour of its traffic the gateway sees, by default).
	FirstSeen bool `json:"firstSeen,omitempty"`
	// MaxBytesPerMinute and MaxPacketsPerMinute alert when a SIM sends
	// more within a minute; 0 is off.
	MaxBytesPerMinute   uint64 `json:"maxBytesPerMinute,omitempty"`
	MaxPacketsPerMinute uint64 `json:"maxPacketsPerMinute,omitempty"`
	// VolumeFactor alerts when a SIM sends more bytes in a minute than
	// this many times the group's 95th percentile of SIM-minutes (2 to
	// 1000; 0 is off).
	VolumeFactor float64 `json:"volumeFactor,omitempty"`
	// CheckListeners alerts when a device accepts a TCP connection on a
	// port not in ListenPorts (none listed: on any port).
	CheckListeners bool     `json:"checkListeners,omitempty"`
	ListenPorts    []uint16 `json:"listenPorts,omitempty"`
}

// Redacted returns the settings with secrets removed, for answers.
func (s GroupSettings) Redacted() GroupSettings {
	if s.Security.WebhookSecret != "" {
		s.Security.WebhookSecret = ""
		s.Security.WebhookSecretSet = true
	}
	s.Forwarders = s.Forwarders.Redacted()
	return s
}

// Device-to-device modes.
const (
	D2DOff    = "off"    // no device-to-device traffic
	D2DGroup  = "group"  // within the same group
	D2DGroups = "groups" // within the group and to the named groups
)

// D2DPolicy is a group's device-to-device policy.
type D2DPolicy struct {
	Mode   string   `json:"mode"`
	Groups []string `json:"groups,omitempty"` // group names, for mode "groups"
	Ports  []uint16 `json:"ports,omitempty"`  // empty: all ports
}

// Admits reports whether the policy of group selfID lets its devices
// exchange traffic with devices of the group otherID named otherName.
// Traffic needs both groups to admit each other.
func (p D2DPolicy) Admits(selfID, otherID, otherName string) bool {
	switch p.Mode {
	case D2DGroup:
		return selfID == otherID
	case D2DGroups:
		return selfID == otherID || slices.Contains(p.Groups, otherName)
	}
	return false
}

// MutualD2D reports whether groups a and b admit each other.
func MutualD2D(a, b Group) bool {
	return a.Settings.DeviceToDevice.Admits(a.ID, b.ID, b.Name) && b.Settings.DeviceToDevice.Admits(b.ID, a.ID, a.Name)
}

// AuthKey is an operator-made bootstrap credential. Only the SHA-256 of its
// secret is kept.
type AuthKey struct {
	ID          string            `json:"id"`
	Description string            `json:"description,omitempty"`
	GroupID     string            `json:"groupId,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	Hash        string            `json:"-"`
	Expires     time.Time         `json:"expires"`
	// MaxUses is the number of bootstraps allowed; 1 is a one-time key,
	// 0 means unlimited (reusable until expiry or revocation).
	MaxUses int       `json:"maxUses"`
	Uses    int       `json:"uses"`
	Revoked bool      `json:"revoked"`
	Created time.Time `json:"created"`
}

// Role is an operator token's role.
type Role string

// Roles, from most to least powerful.
const (
	RoleAdmin    Role = "admin"    // everything, including tokens
	RoleOperator Role = "operator" // manage SIMs, groups, auth keys
	RoleViewer   Role = "viewer"   // read
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleAdmin || r == RoleOperator || r == RoleViewer }

// Token is an operator API token. Only the SHA-256 of its secret is kept.
type Token struct {
	ID          string    `json:"id"`
	Description string    `json:"description,omitempty"`
	Role        Role      `json:"role"`
	Hash        string    `json:"-"`
	Created     time.Time `json:"created"`
	// Expires is when the token stops working; zero: never.
	Expires time.Time `json:"expires,omitzero"`
}

// ConsoleSession is one sign-in to the web console: the hash of its
// secret (the cookie's value, never stored), the operator token it acts as
// (its role is read from the token on every request), and when it ends.
type ConsoleSession struct {
	Hash    string
	TokenID string
	Created time.Time
	Expires time.Time
}

// Event is one entry of the audit trail.
type Event struct {
	ID         int64          `json:"id"`
	Time       time.Time      `json:"time"`
	Actor      string         `json:"actor"`  // "token:<id>", "authkey:<id>", "system"
	Action     string         `json:"action"` // "sim.create", "sim.suspend", …
	ObjectType string         `json:"objectType"`
	ObjectID   string         `json:"objectId"`
	Details    map[string]any `json:"details,omitempty"`
}

// Alert is a security monitor alert (a "device.alert" event on its SIM)
// with its acknowledgement, if any.
type Alert struct {
	Event
	Ack *Event `json:"acknowledged,omitempty"`
}

// ChangeKind says what kind of object a Change is about.
type ChangeKind string

// Change kinds.
const (
	ChangeSIM   ChangeKind = "sim"
	ChangeGroup ChangeKind = "group"
	// ChangePresence: a gateway recorded a session of the SIM (ID).
	ChangePresence ChangeKind = "presence"
	// ChangeGatePeer: a VXLAN Gate peer (ID) was added or removed.
	ChangeGatePeer ChangeKind = "gate_peer"
)

// Change is published after a committed write that a gateway must react to.
// It only names the object: subscribers re-read it, so two changes of one
// object arriving out of order cannot leave stale state behind.
type Change struct {
	Kind ChangeKind `json:"kind"`
	ID   string     `json:"id"`
}

// Connection is the live state of a SIM's tunnel as one gateway sees it.
type Connection struct {
	Online        bool      `json:"online"`
	Endpoint      string    `json:"endpoint,omitempty"` // the device's current outer address
	LastHandshake time.Time `json:"lastHandshake,omitzero"`
	RxBytes       uint64    `json:"rxBytes"` // inner bytes from the device
	TxBytes       uint64    `json:"txBytes"` // inner bytes to the device
}

// GatewayStats is a gateway's state at a glance (the console's overview).
type GatewayStats struct {
	Sessions   int    `json:"sessions"`   // SIMs with a live WireGuard session
	Peers      int    `json:"peers"`      // peers held (sessions and recently active)
	Handshakes uint64 `json:"handshakes"` // completed since start
	RxBytes    uint64 `json:"rxBytes"`    // inner bytes from devices, of held peers
	TxBytes    uint64 `json:"txBytes"`    // inner bytes to devices, of held peers
	UnderLoad  bool   `json:"underLoad"`  // demanding cookies from initiators
}

// Session is what a device needs to bring its tunnel up.
type Session struct {
	Endpoint         string       `json:"endpoint"`
	GatewayPublicKey wgkey.Public `json:"gatewayPublicKey"`
	Address          string       `json:"address"` // overlay address as a /32
	// Address6 is the SIM's IPv6 overlay address as a /128 (empty in a
	// fleet without IPv6); AllowedIPs hold both families.
	Address6   string   `json:"address6,omitempty"`
	AllowedIPs []string `json:"allowedIPs"`
	// PrivateKey is set only in the answer to the call that generated it.
	PrivateKey wgkey.Private `json:"privateKey,omitzero"`
}
