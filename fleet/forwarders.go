// SPDX-License-Identifier: Apache-2.0

package fleet

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Forwarders are a group's routes from the forwarder entry points
// (100.127.127.100) to destinations in the cloud. The forwarder adds who
// the device is and what the destination needs (signatures, credentials),
// so devices hold no cloud credential.
//
// Secrets (signature secrets, credential values, the MQTT password) are
// write-only: requests carry them in clear, the control plane seals them
// before they are stored (see package seal), and answers carry only a
// "…Set" flag. A request that omits a secret keeps the stored one as long
// as the route's destination is unchanged.
type Forwarders struct {
	// HTTP routes requests to port 8888 by path prefix (longest first).
	HTTP []HTTPForward `json:"http,omitempty"`
	// TCP routes connections to port 23080.
	TCP TCPForward `json:"tcp,omitzero"`
	// UDP routes datagrams to port 23080.
	UDP UDPForward `json:"udp,omitzero"`
	// MQTT bridges connections to port 1883 to a broker.
	MQTT MQTTForward `json:"mqtt,omitzero"`
}

// HTTPForward is one HTTP route: requests whose path starts with
// PathPrefix go to URL, the rest of the path appended to URL's path.
type HTTPForward struct {
	PathPrefix string `json:"pathPrefix"`
	URL        string `json:"url"`
	// Secret keys the HMAC-SHA256 signature of each forwarded request.
	Secret    string `json:"secret,omitempty"`
	SecretSet bool   `json:"secretSet,omitempty"`
	// BeamSignature, if set, adds SORACOM Beam-compatible headers.
	BeamSignature BeamSignature `json:"beamSignature,omitzero"`
	// Credential is injected into every forwarded request.
	Credential Credential `json:"credential,omitzero"`
	// CAPEM, if set, is the only CA trusted for the destination.
	CAPEM string `json:"caPem,omitempty"`
}

// BeamSignature is a SORACOM Beam-compatible signature: the listed fields
// as x-soracom-* headers, a timestamp, and
// hex(SHA-256(secret + "x-soracom-<field>=" + value … + "x-soracom-timestamp=" + ms)).
type BeamSignature struct {
	// Fields are among BeamFields; they are always signed in that order.
	Fields    []string `json:"fields,omitempty"`
	Secret    string   `json:"secret,omitempty"`
	SecretSet bool     `json:"secretSet,omitempty"`
}

// IdentityTags are the tags the forwarder signs as the device's identity
// (Beam-style imei and msisdn): only an operator sets them, never the
// device itself, or one device could claim another's IMEI.
var IdentityTags = []string{"imei", "msisdn"}

// BeamFields are the identity fields of a Beam signature, in signing order.
// The platform has no IMEI or MSISDN of its own: they come from the SIM's
// tags "imei" and "msisdn".
var BeamFields = []string{"imei", "imsi", "msisdn", "sim-id"}

// Credential types.
const (
	CredentialBearer = "bearer" // Authorization: Bearer <value>
	CredentialBasic  = "basic"  // Authorization: Basic base64(<username>:<value>)
	CredentialHeader = "header" // <header>: <value>
)

// Credential is what the destination needs to accept a request.
type Credential struct {
	Type     string `json:"type"`
	Header   string `json:"header,omitempty"`   // for CredentialHeader
	Username string `json:"username,omitempty"` // for CredentialBasic
	Value    string `json:"value,omitempty"`    // token, password or header value
	ValueSet bool   `json:"valueSet,omitempty"`
}

// TCPForward routes TCP connections: to a TLS server ("tls://host:port",
// a byte stream relayed both ways) or to an HTTP(S) URL (each message the
// device sends is POSTed, the answer's body written back).
type TCPForward struct {
	URL       string `json:"url"`
	Secret    string `json:"secret,omitempty"`
	SecretSet bool   `json:"secretSet,omitempty"`
	// FirstLineIdentity sends a line with the device's identity and a
	// signature before the device's bytes (TLS destinations).
	FirstLineIdentity bool       `json:"firstLineIdentity,omitempty"`
	Credential        Credential `json:"credential,omitzero"` // HTTP(S) destinations
	CAPEM             string     `json:"caPem,omitempty"`
}

// UDPForward routes UDP datagrams to an HTTP(S) URL as JSON (the payload
// in base64 with the device's identity); the answer's body comes back as a
// datagram.
type UDPForward struct {
	URL        string     `json:"url"`
	Secret     string     `json:"secret,omitempty"`
	SecretSet  bool       `json:"secretSet,omitempty"`
	Credential Credential `json:"credential,omitzero"`
	CAPEM      string     `json:"caPem,omitempty"`
}

// MQTTForward bridges MQTT connections to a broker with the platform's
// credentials.
type MQTTForward struct {
	Broker      string `json:"broker"` // host:port
	TLS         bool   `json:"tls,omitempty"`
	CAPEM       string `json:"caPem,omitempty"`
	Username    string `json:"username,omitempty"`
	Password    string `json:"password,omitempty"`
	PasswordSet bool   `json:"passwordSet,omitempty"`
	// ClientID is the upstream client id template ("" means "{imsi}");
	// placeholders {imsi}, {simId}, {group}.
	ClientID string `json:"clientId,omitempty"`
	// TopicTemplate maps device topics to the broker's ("" means
	// "{topic}"); it holds {topic} once and may hold {imsi}, {simId},
	// {group}.
	TopicTemplate string `json:"topicTemplate,omitempty"`
}

// Limits of forwarder settings.
const (
	MaxHTTPForwards = 32
	MaxSecret       = 1024  // bytes of one secret or credential value
	MaxCAPEM        = 65536 // bytes of one CA bundle
	MinSignSecret   = 16    // bytes of a signature secret
)

// secretSlot is one secret of the forwarder settings: where it is, and
// the destination it is bound to (a stored secret is kept for an update
// only when its destination is unchanged, so an edit cannot redirect a
// credential elsewhere).
type secretSlot struct {
	field string // JSON path
	key   string // route identity + destination + which secret
	val   *string
	set   *bool
}

func (f *Forwarders) slots(prefix string) []secretSlot {
	var s []secretSlot
	add := func(field, key string, val *string, set *bool) {
		s = append(s, secretSlot{field, key, val, set})
	}
	for i := range f.HTTP {
		h := &f.HTTP[i]
		p := fmt.Sprintf("%s.http[%d]", prefix, i)
		k := "http\x00" + h.PathPrefix + "\x00" + h.URL
		add(p+".secret", k+"\x00secret", &h.Secret, &h.SecretSet)
		add(p+".beamSignature.secret", k+"\x00beam", &h.BeamSignature.Secret, &h.BeamSignature.SecretSet)
		add(p+".credential.value", k+"\x00cred\x00"+h.Credential.Type+"\x00"+h.Credential.Header+"\x00"+h.Credential.Username, &h.Credential.Value, &h.Credential.ValueSet)
	}
	k := "tcp\x00" + f.TCP.URL
	add(prefix+".tcp.secret", k+"\x00secret", &f.TCP.Secret, &f.TCP.SecretSet)
	add(prefix+".tcp.credential.value", k+"\x00cred\x00"+f.TCP.Credential.Type+"\x00"+f.TCP.Credential.Header+"\x00"+f.TCP.Credential.Username, &f.TCP.Credential.Value, &f.TCP.Credential.ValueSet)
	k = "udp\x00" + f.UDP.URL
	add(prefix+".udp.secret", k+"\x00secret", &f.UDP.Secret, &f.UDP.SecretSet)
	add(prefix+".udp.credential.value", k+"\x00cred\x00"+f.UDP.Credential.Type+"\x00"+f.UDP.Credential.Header+"\x00"+f.UDP.Credential.Username, &f.UDP.Credential.Value, &f.UDP.Credential.ValueSet)
	add(prefix+".mqtt.password", "mqtt\x00"+f.MQTT.Broker+"\x00"+f.MQTT.Username, &f.MQTT.Password, &f.MQTT.PasswordSet)
	return s
}

// clone copies f deeply enough that changing secrets of the copy leaves f
// alone.
func (f Forwarders) clone() Forwarders {
	f.HTTP = slices.Clone(f.HTTP)
	return f
}

// Redacted returns f with every secret removed and its "…Set" flag true.
func (f Forwarders) Redacted() Forwarders {
	f = f.clone()
	for _, s := range f.slots("") {
		if *s.val != "" {
			*s.val, *s.set = "", true
		}
	}
	return f
}

// SecretSealer encrypts a secret for storage.
type SecretSealer interface {
	Seal(plaintext string) (string, error)
}

// SealSecrets prepares validated settings from a request for storage:
// secrets given are sealed with sealer, secrets omitted keep prev's (the
// stored settings, already sealed) when the route and its destination are
// the same. Then it checks that every secret a route needs is there.
func (f *Forwarders) SealSecrets(prefix string, prev *Forwarders, sealer SecretSealer) error {
	kept := map[string]string{}
	if prev != nil {
		p := prev.clone()
		for _, s := range p.slots(prefix) {
			if *s.val != "" {
				kept[s.key] = *s.val
			}
		}
	}
	for _, s := range f.slots(prefix) {
		*s.set = false
		if *s.val == "" {
			*s.val = kept[s.key]
			continue
		}
		if sealer == nil {
			return Errorf(CodeInvalid, s.field, "this server has no key to store secrets with")
		}
		sealed, err := sealer.Seal(*s.val)
		if err != nil {
			return Errorf(CodeInternal, s.field, "sealing the secret failed")
		}
		*s.val = sealed
	}
	need := func(field, val string, what string) error {
		if val == "" {
			return Errorf(CodeRequired, field, "%s", what)
		}
		return nil
	}
	for i, h := range f.HTTP {
		p := fmt.Sprintf("%s.http[%d]", prefix, i)
		if err := need(p+".secret", h.Secret, "a signature secret (at least 16 characters)"); err != nil {
			return err
		}
		if len(h.BeamSignature.Fields) > 0 {
			if err := need(p+".beamSignature.secret", h.BeamSignature.Secret, "the Beam pre-shared key"); err != nil {
				return err
			}
		}
		if h.Credential.Type != "" {
			if err := need(p+".credential.value", h.Credential.Value, "the credential's value"); err != nil {
				return err
			}
		}
	}
	for _, r := range []struct {
		name       string
		url, sec   string
		cred, cval string
	}{{"tcp", f.TCP.URL, f.TCP.Secret, f.TCP.Credential.Type, f.TCP.Credential.Value}, {"udp", f.UDP.URL, f.UDP.Secret, f.UDP.Credential.Type, f.UDP.Credential.Value}} {
		if r.url == "" {
			continue
		}
		if err := need(prefix+"."+r.name+".secret", r.sec, "a signature secret (at least 16 characters)"); err != nil {
			return err
		}
		if r.cred != "" {
			if err := need(prefix+"."+r.name+".credential.value", r.cval, "the credential's value"); err != nil {
				return err
			}
		}
	}
	return nil
}

var (
	pathPrefixRE  = regexp.MustCompile(`^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$`)
	headerNameRE  = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+.^_|~-]{1,64}$`)
	placeholderRE = regexp.MustCompile(`\{[^}]*\}`)
)

// ReservedHeader reports whether a header name is one the forwarder sets
// or strips itself (identity, signatures, credentials, hop-by-hop), so a
// credential cannot be injected under it.
func ReservedHeader(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "authorization", "proxy-authorization", "cookie", "host", "connection", "keep-alive", "te", "trailer",
		"transfer-encoding", "upgrade", "content-length", "proxy-connection":
		return true
	}
	return strings.HasPrefix(n, "x-wirefleet-") || strings.HasPrefix(n, "x-soracom-")
}

// Normalize checks forwarder settings (secrets in clear, as a request
// gives them; empty ones are checked by SealSecrets after merging).
func (f *Forwarders) Normalize(prefix string) error {
	if len(f.HTTP) > MaxHTTPForwards {
		return Errorf(CodeInvalid, prefix+".http", "at most %d routes", MaxHTTPForwards)
	}
	seen := map[string]bool{}
	for i := range f.HTTP {
		h := &f.HTTP[i]
		p := fmt.Sprintf("%s.http[%d]", prefix, i)
		if h.PathPrefix == "" {
			h.PathPrefix = "/"
		}
		if !pathPrefixRE.MatchString(h.PathPrefix) || strings.Contains(h.PathPrefix, "..") || strings.Contains(h.PathPrefix, "//") {
			return Errorf(CodeInvalid, p+".pathPrefix", "a URL path starting with '/', without '..' or '//'")
		}
		if seen[h.PathPrefix] {
			return Errorf(CodeInvalid, p+".pathPrefix", "another route has path prefix %q", h.PathPrefix)
		}
		seen[h.PathPrefix] = true
		if err := checkURL(p+".url", h.URL, "http", "https"); err != nil {
			return err
		}
		if err := checkSignSecret(p+".secret", h.Secret); err != nil {
			return err
		}
		b := &h.BeamSignature
		for j, fl := range b.Fields {
			if !slices.Contains(BeamFields, fl) {
				return Errorf(CodeInvalid, fmt.Sprintf("%s.beamSignature.fields[%d]", p, j), "must be one of %s", strings.Join(BeamFields, ", "))
			}
			if slices.Index(b.Fields, fl) != j {
				return Errorf(CodeInvalid, fmt.Sprintf("%s.beamSignature.fields[%d]", p, j), "listed twice")
			}
		}
		if len(b.Fields) == 0 && b.Secret != "" {
			return Errorf(CodeRequired, p+".beamSignature.fields", "at least one field to sign")
		}
		if len(b.Secret) > MaxSecret {
			return Errorf(CodeInvalid, p+".beamSignature.secret", "at most %d bytes", MaxSecret)
		}
		if err := h.Credential.normalize(p + ".credential"); err != nil {
			return err
		}
		if err := checkCA(p+".caPem", h.CAPEM, h.URL); err != nil {
			return err
		}
	}
	if t := &f.TCP; t.URL != "" || t.Secret != "" || t.Credential.Type != "" {
		p := prefix + ".tcp"
		if err := checkURL(p+".url", t.URL, "tls", "https", "http"); err != nil {
			return err
		}
		if err := checkSignSecret(p+".secret", t.Secret); err != nil {
			return err
		}
		if strings.HasPrefix(t.URL, "tls:") && t.Credential.Type != "" {
			return Errorf(CodeInvalid, p+".credential", "only for http(s) destinations")
		}
		if !strings.HasPrefix(t.URL, "tls:") && t.FirstLineIdentity {
			return Errorf(CodeInvalid, p+".firstLineIdentity", "only for tls:// destinations (http(s) ones get identity headers)")
		}
		if err := t.Credential.normalize(p + ".credential"); err != nil {
			return err
		}
		if err := checkCA(p+".caPem", t.CAPEM, t.URL); err != nil {
			return err
		}
	}
	if u := &f.UDP; u.URL != "" || u.Secret != "" || u.Credential.Type != "" {
		p := prefix + ".udp"
		if err := checkURL(p+".url", u.URL, "https", "http"); err != nil {
			return err
		}
		if err := checkSignSecret(p+".secret", u.Secret); err != nil {
			return err
		}
		if err := u.Credential.normalize(p + ".credential"); err != nil {
			return err
		}
		if err := checkCA(p+".caPem", u.CAPEM, u.URL); err != nil {
			return err
		}
	}
	if m := &f.MQTT; *m != (MQTTForward{}) {
		p := prefix + ".mqtt"
		host, port, err := net.SplitHostPort(m.Broker)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return Errorf(CodeInvalid, p+".broker", "want host:port")
		}
		if m.CAPEM != "" && !m.TLS {
			return Errorf(CodeInvalid, p+".caPem", "only with tls")
		}
		if err := checkCA(p+".caPem", m.CAPEM, ""); err != nil {
			return err
		}
		if err := ValidateLabel(p+".username", m.Username, 256); err != nil {
			return err
		}
		if len(m.Password) > MaxSecret {
			return Errorf(CodeInvalid, p+".password", "at most %d bytes", MaxSecret)
		}
		if err := checkTemplate(p+".clientId", m.ClientID, false); err != nil {
			return err
		}
		if err := checkTemplate(p+".topicTemplate", m.TopicTemplate, true); err != nil {
			return err
		}
	}
	return nil
}

func (c *Credential) normalize(p string) error {
	switch c.Type {
	case "":
		if *c != (Credential{}) {
			return Errorf(CodeRequired, p+".type", "must be %q, %q or %q", CredentialBearer, CredentialBasic, CredentialHeader)
		}
		return nil
	case CredentialBearer:
		if c.Header != "" || c.Username != "" {
			return Errorf(CodeInvalid, p, "a bearer credential has only a value")
		}
	case CredentialBasic:
		if c.Header != "" {
			return Errorf(CodeInvalid, p+".header", "only for type %q", CredentialHeader)
		}
		if c.Username == "" || strings.Contains(c.Username, ":") {
			return Errorf(CodeInvalid, p+".username", "required, without ':'")
		}
		if err := ValidateLabel(p+".username", c.Username, 256); err != nil {
			return err
		}
	case CredentialHeader:
		if c.Username != "" {
			return Errorf(CodeInvalid, p+".username", "only for type %q", CredentialBasic)
		}
		if !headerNameRE.MatchString(c.Header) {
			return Errorf(CodeInvalid, p+".header", "an HTTP header name")
		}
		if ReservedHeader(c.Header) {
			return Errorf(CodeInvalid, p+".header", "%q is set by the forwarder itself", c.Header)
		}
	default:
		return Errorf(CodeInvalid, p+".type", "must be %q, %q or %q", CredentialBearer, CredentialBasic, CredentialHeader)
	}
	if len(c.Value) > MaxSecret || strings.ContainsAny(c.Value, "\x00\r\n") {
		return Errorf(CodeInvalid, p+".value", "at most %d bytes, one line", MaxSecret)
	}
	return nil
}

func checkURL(field, s string, schemes ...string) error {
	u, err := url.Parse(s)
	if s == "" {
		return Errorf(CodeRequired, field, "a %s URL", strings.Join(schemes, "/"))
	}
	if err != nil || !slices.Contains(schemes, u.Scheme) || u.Host == "" || u.User != nil || u.Fragment != "" {
		return Errorf(CodeInvalid, field, "a %s URL with a host, no user or fragment", strings.Join(schemes, "/"))
	}
	if u.Scheme == "tls" {
		if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return Errorf(CodeInvalid, field, "tls://host:port")
		}
	}
	return nil
}

func checkSignSecret(field, s string) error {
	if s != "" && len(s) < MinSignSecret {
		return Errorf(CodeInvalid, field, "at least %d characters", MinSignSecret)
	}
	if len(s) > MaxSecret {
		return Errorf(CodeInvalid, field, "at most %d bytes", MaxSecret)
	}
	return nil
}

func checkCA(field, pemText, dest string) error {
	if pemText == "" {
		return nil
	}
	if strings.HasPrefix(dest, "http:") {
		return Errorf(CodeInvalid, field, "only for TLS destinations")
	}
	if len(pemText) > MaxCAPEM {
		return Errorf(CodeInvalid, field, "at most %d bytes", MaxCAPEM)
	}
	rest := []byte(pemText)
	n := 0
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return Errorf(CodeInvalid, field, "holds a %s, want only CERTIFICATE blocks", b.Type)
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return Errorf(CodeInvalid, field, "certificate %d: %v", n+1, err)
		}
		n++
	}
	if n == 0 || strings.TrimSpace(string(rest)) != "" {
		return Errorf(CodeInvalid, field, "PEM certificates only")
	}
	return nil
}

func checkTemplate(field, t string, topic bool) error {
	if len(t) > 256 || strings.ContainsAny(t, "+#\x00") {
		return Errorf(CodeInvalid, field, "at most 256 bytes, no MQTT wildcards")
	}
	n := 0
	for _, ph := range placeholderRE.FindAllString(t, -1) {
		switch ph {
		case "{imsi}", "{simId}", "{group}":
		case "{topic}":
			if !topic {
				return Errorf(CodeInvalid, field, "{topic} only in topicTemplate")
			}
			n++
		default:
			return Errorf(CodeInvalid, field, "unknown placeholder %s (want {imsi}, {simId}, {group}%s)", ph, map[bool]string{true: ", {topic}"}[topic])
		}
	}
	if topic && t != "" && n != 1 {
		return Errorf(CodeInvalid, field, "must hold {topic} exactly once")
	}
	return nil
}

// MatchHTTPRoute returns the route of routes for path — the one with the
// longest PathPrefix that path is, or is below — and the rest of path
// after the prefix; nil when none is.
func MatchHTTPRoute(routes []HTTPForward, path string) (*HTTPForward, string) {
	var best *HTTPForward
	var rest string
	for i := range routes {
		r := &routes[i]
		p := strings.TrimSuffix(r.PathPrefix, "/")
		if path != p && !strings.HasPrefix(path, p+"/") {
			continue
		}
		if best == nil || len(r.PathPrefix) > len(best.PathPrefix) {
			best, rest = r, strings.TrimPrefix(path, p)
		}
	}
	return best, rest
}
