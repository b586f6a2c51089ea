// SPDX-License-Identifier: Apache-2.0

package fleet

import (
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// IMSIPrefix starts every IMSI the platform allocates: 999 is the test
// MCC, 99 the MNC, so no real network's subscriber can collide with ours.
const IMSIPrefix = "99999"

var imsiRE = regexp.MustCompile(`^99999[0-9]{10}$`)

// ValidIMSI reports whether s is a platform IMSI.
func ValidIMSI(s string) bool { return imsiRE.MatchString(s) }

// FormatIMSI turns an allocation counter into an IMSI.
func FormatIMSI(n int64) string { return fmt.Sprintf("%s%010d", IMSIPrefix, n) }

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// ValidateName checks a group name: short, URL- and shell-safe.
func ValidateName(field, s string) error {
	if s == "" {
		return Errorf(CodeRequired, field, "required")
	}
	if !nameRE.MatchString(s) {
		return Errorf(CodeInvalid, field, "must be 1-63 characters of letters, digits, '.', '_', '-', starting with a letter or digit")
	}
	return nil
}

// ValidateLabel checks a free-text name or description: at most max
// bytes of UTF-8 with no control character (C0, DEL, C1) and no bidi
// control. Labels end up on operators' terminals and pages, and a device
// can set some (its name at bootstrap, its tags): an ESC or OSC sequence
// there would rewrite what an operator sees.
func ValidateLabel(field, s string, max int) error {
	if len(s) > max || !utf8.ValidString(s) {
		return Errorf(CodeInvalid, field, "must be at most %d bytes of single-line UTF-8", max)
	}
	if i := strings.IndexFunc(s, IsUnsafeRune); i >= 0 {
		r, _ := utf8.DecodeRuneInString(s[i:])
		return Errorf(CodeInvalid, field, "control character U+%04X at byte %d: labels are single-line printable text", r, i)
	}
	return nil
}

// IsUnsafeRune reports whether r must not reach a terminal raw: a control
// character (C0, DEL, C1: escape sequences start with them) or a bidi
// control (it reorders what is shown around it).
func IsUnsafeRune(r rune) bool {
	return unicode.IsControl(r) || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 || r == 0x200e || r == 0x200f || r == 0x061c
}

// MaxTags bounds the number of tags of one SIM or auth key.
const MaxTags = 64

var tagKeyRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]{0,62}$`)

// ValidateTags checks a tag map.
func ValidateTags(field string, tags map[string]string) error {
	if len(tags) > MaxTags {
		return Errorf(CodeInvalid, field, "at most %d tags", MaxTags)
	}
	for k, v := range tags {
		if !tagKeyRE.MatchString(k) {
			return Errorf(CodeInvalid, field+"."+k, "tag key must be 1-63 characters of letters, digits, '.', '_', ':', '/', '-'")
		}
		if err := ValidateLabel(field+"."+k, v, 256); err != nil {
			return err
		}
	}
	return nil
}

// MaxRotateWithinHours bounds the time a required key rotation may allow.
const MaxRotateWithinHours = 2160

// Normalize fills defaults and validates settings, all but the egress
// rules (egressrules.Normalize: the control plane calls both). Field
// paths are given under prefix (for example "settings").
func (s *GroupSettings) Normalize(prefix string) error {
	if s.Version == 0 {
		s.Version = SettingsVersion
	}
	if s.Version != SettingsVersion {
		return Errorf(CodeInvalid, prefix+".version", "unsupported settings version %d (want %d)", s.Version, SettingsVersion)
	}
	if len(s.Routes) > 64 {
		return Errorf(CodeInvalid, prefix+".routes", "at most 64 routes")
	}
	for i, r := range s.Routes {
		p, err := netip.ParsePrefix(r)
		if err != nil {
			return Errorf(CodeInvalid, fmt.Sprintf("%s.routes[%d]", prefix, i), "not a CIDR prefix: %q", r)
		}
		if p != p.Masked() {
			return Errorf(CodeInvalid, fmt.Sprintf("%s.routes[%d]", prefix, i), "prefix has host bits set; did you mean %s?", p.Masked())
		}
		s.Routes[i] = p.String()
	}
	d := &s.DeviceToDevice
	if d.Mode == "" {
		d.Mode = D2DOff
	}
	switch d.Mode {
	case D2DOff, D2DGroup:
		if len(d.Groups) > 0 {
			return Errorf(CodeInvalid, prefix+".deviceToDevice.groups", "only allowed with mode %q", D2DGroups)
		}
	case D2DGroups:
		if len(d.Groups) == 0 {
			return Errorf(CodeRequired, prefix+".deviceToDevice.groups", "mode %q needs at least one group", D2DGroups)
		}
		for i, g := range d.Groups {
			if err := ValidateName(fmt.Sprintf("%s.deviceToDevice.groups[%d]", prefix, i), g); err != nil {
				return err
			}
		}
	default:
		return Errorf(CodeInvalid, prefix+".deviceToDevice.mode", "must be %q, %q or %q", D2DOff, D2DGroup, D2DGroups)
	}
	for i, p := range d.Ports {
		if p == 0 {
			return Errorf(CodeInvalid, fmt.Sprintf("%s.deviceToDevice.ports[%d]", prefix, i), "port 0 is not a port")
		}
	}
	if len(s.UserData) > MaxUserData {
		return Errorf(CodeInvalid, prefix+".userData", "at most %d bytes", MaxUserData)
	}
	if err := s.Forwarders.Normalize(prefix + ".forwarders"); err != nil {
		return err
	}
	if err := s.DataStore.Normalize(prefix + ".dataStore"); err != nil {
		return err
	}
	if err := s.Mirroring.Normalize(prefix + ".mirroring"); err != nil {
		return err
	}
	if err := s.Redirection.Normalize(prefix + ".redirection"); err != nil {
		return err
	}
	if s.Inspection.Enabled || s.Inspection.IntervalSeconds != 0 || s.Inspection.ForwardPath != "" {
		if err := s.Inspection.Normalize(prefix + ".inspection"); err != nil {
			return err
		}
		if p := s.Inspection.ForwardPath; p != "" {
			if r, _ := MatchHTTPRoute(s.Forwarders.HTTP, p); r == nil {
				return Errorf(CodeInvalid, prefix+".inspection.forwardPath", "%q: no forwarders.http route takes this path", p)
			}
		}
	}
	sec := &s.Security
	sec.WebhookSecretSet = false // derived, never stored
	switch sec.Action {
	case "":
		sec.Action = ActionAlert
	case ActionAlert, ActionSuspend, ActionRotate:
	case ActionQuarantine:
		if err := ValidateName(prefix+".security.quarantineGroup", sec.QuarantineGroup); err != nil {
			return err
		}
	default:
		return Errorf(CodeInvalid, prefix+".security.action", "must be %q, %q, %q or %q", ActionAlert, ActionQuarantine, ActionSuspend, ActionRotate)
	}
	for i, k := range sec.ActOn {
		if !slices.Contains(AlertKinds, k) {
			return Errorf(CodeInvalid, fmt.Sprintf("%s.security.actOn[%d]", prefix, i), "one of %s", strings.Join(AlertKinds, ", "))
		}
	}
	if len(sec.ActOn) > 0 && sec.Action == ActionAlert {
		return Errorf(CodeInvalid, prefix+".security.actOn", "needs an action other than %q", ActionAlert)
	}
	if sec.RotateWithinHours < 0 || sec.RotateWithinHours > MaxRotateWithinHours {
		return Errorf(CodeInvalid, prefix+".security.rotateWithinHours", "between 1 and %d, or 0 for the default (24)", MaxRotateWithinHours)
	}
	if sec.RotateWithinHours != 0 && sec.Action != ActionRotate {
		return Errorf(CodeInvalid, prefix+".security.rotateWithinHours", "only with action %q", ActionRotate)
	}
	if sec.KeyMaxAgeDays < 0 || sec.KeyMaxAgeDays > 3650 {
		return Errorf(CodeInvalid, prefix+".security.keyMaxAgeDays", "between 1 and 3650, or 0 for no policy")
	}
	if sec.Action != ActionQuarantine && sec.QuarantineGroup != "" {
		return Errorf(CodeInvalid, prefix+".security.quarantineGroup", "only with action %q", ActionQuarantine)
	}
	if len(sec.AllowList) > 256 {
		return Errorf(CodeInvalid, prefix+".security.allowList", "at most 256 prefixes")
	}
	for i, a := range sec.AllowList {
		p, err := netip.ParsePrefix(a)
		if err != nil || p != p.Masked() {
			return Errorf(CodeInvalid, fmt.Sprintf("%s.security.allowList[%d]", prefix, i), "not a CIDR prefix without host bits: %q", a)
		}
	}
	if sec.Block && len(sec.AllowList) == 0 {
		return Errorf(CodeInvalid, prefix+".security.block", "needs an allowList")
	}
	if sec.VolumeFactor != 0 && (sec.VolumeFactor < 2 || sec.VolumeFactor > 1000) {
		return Errorf(CodeInvalid, prefix+".security.volumeFactor", "between 2 and 1000, or 0 for off")
	}
	if len(sec.ListenPorts) > 64 {
		return Errorf(CodeInvalid, prefix+".security.listenPorts", "at most 64 ports")
	}
	for i, p := range sec.ListenPorts {
		if p == 0 {
			return Errorf(CodeInvalid, fmt.Sprintf("%s.security.listenPorts[%d]", prefix, i), "port 0 is not a port")
		}
	}
	if len(sec.ListenPorts) > 0 && !sec.CheckListeners {
		return Errorf(CodeInvalid, prefix+".security.listenPorts", "only with checkListeners")
	}
	if sec.WebhookURL != "" {
		u, err := url.Parse(sec.WebhookURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return Errorf(CodeInvalid, prefix+".security.webhookUrl", "not an http(s) URL")
		}
		if len(sec.WebhookSecret) < 16 {
			return Errorf(CodeInvalid, prefix+".security.webhookSecret", "at least 16 characters, to sign webhook bodies")
		}
	} else if sec.WebhookSecret != "" {
		return Errorf(CodeInvalid, prefix+".security.webhookSecret", "only with a webhookUrl")
	}
	return nil
}
