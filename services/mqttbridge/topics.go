// SPDX-License-Identifier: Apache-2.0

package mqttbridge

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxTopicLen is MQTT's limit on a UTF-8 string (two-byte length).
const maxTopicLen = 65535

// topicMap is a topic template with the device's identity filled in: a
// device topic T is the broker topic prefix+T+suffix. The {topic}
// placeholder always spans whole levels, so prefix is empty or ends in
// "/", and suffix is empty or starts with "/".
type topicMap struct {
	prefix, suffix string
}

// Reasons a device's topic or filter is refused. They reach v5 devices as
// the reason string of the failure code.
var (
	errTopicEmpty    = errors.New("empty topic")
	errTopicDollar   = errors.New("topics starting with $ are reserved")
	errTopicWildcard = errors.New("wildcards are not allowed in a topic name")
	errTopicDots     = errors.New(`topic levels "." and ".." are refused`)
	errTopicTooLong  = errors.New("topic too long once rewritten")
	errTopicUTF8     = errors.New("topic is not valid UTF-8 or holds a control character")
	errFilterBad     = errors.New("malformed topic filter: + and # must each be a whole level, # the last")
	errFilterShared  = errors.New("shared subscriptions are not supported")
	errFilterHash    = errors.New("# is not supported with this topic template (the device's identity follows the topic)")
)

// newTopicMap checks template and fills in id. It is an error when
// {topic} is missing, repeated, or not whole levels, when the template
// holds an unknown placeholder or a wildcard, or when an identity value it
// uses is empty or holds "/", "+", "#" or U+0000 (which could let one
// device's namespace overlap another's).
func newTopicMap(template string, id Identity) (topicMap, error) {
	if template == "" {
		template = "{topic}"
	}
	if n := strings.Count(template, "{topic}"); n != 1 {
		return topicMap{}, fmt.Errorf("mqttbridge: topic template %q must hold {topic} exactly once (holds it %d times)", template, n)
	}
	pre, suf, _ := strings.Cut(template, "{topic}")
	if pre != "" && !strings.HasSuffix(pre, "/") || suf != "" && !strings.HasPrefix(suf, "/") {
		return topicMap{}, fmt.Errorf("mqttbridge: topic template %q: {topic} must span whole levels (\"/\" on both sides, or the template's start or end)", template)
	}
	var err error
	if pre, err = expand(pre, id, "topic template"); err != nil {
		return topicMap{}, err
	}
	if suf, err = expand(suf, id, "topic template"); err != nil {
		return topicMap{}, err
	}
	if strings.ContainsAny(pre+suf, "+#\x00") || strings.HasPrefix(pre, "$") || !utf8.ValidString(pre+suf) {
		return topicMap{}, fmt.Errorf("mqttbridge: topic template %q: wildcards, U+0000 and a leading $ are not allowed", template)
	}
	return topicMap{prefix: pre, suffix: suf}, nil
}

// expand replaces {imsi}, {simId} and {group} in s; any other {…} is an
// error.
func expand(s string, id Identity, what string) (string, error) {
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return "", fmt.Errorf("mqttbridge: %s: unclosed {", what)
		}
		name := s[i+1 : i+j]
		var v string
		switch name {
		case "imsi":
			v = id.IMSI
		case "simId":
			v = id.SIMID
		case "group":
			v = id.GroupName
		default:
			return "", fmt.Errorf("mqttbridge: %s: unknown placeholder {%s} (known: {imsi}, {simId}, {group}, and {topic} in topics)", what, name)
		}
		if v == "" || strings.ContainsAny(v, "/+#\x00") {
			return "", fmt.Errorf("mqttbridge: %s: identity value for {%s} is empty or holds / + # or U+0000", what, name)
		}
		b.WriteString(s[:i])
		b.WriteString(v)
		s = s[i+j+1:]
	}
}

// checkLevels refuses what a device may not name in a topic or filter:
// empty, invalid UTF-8, control characters (MQTT says a receiver may: they
// would let a device forge lines in the broker's logs), a leading $
// (reserved: $SYS, $share), and "." or ".." levels, which some brokers'
// ACL or storage back ends map to paths.
func checkLevels(s string) error {
	switch {
	case s == "":
		return errTopicEmpty
	case !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0:
		return errTopicUTF8
	case s[0] == '$':
		return errTopicDollar
	}
	for lvl := range strings.SplitSeq(s, "/") {
		if lvl == "." || lvl == ".." {
			return errTopicDots
		}
	}
	return nil
}

// toBroker maps a device's topic name (PUBLISH, will, response topic) to
// the broker's.
func (m topicMap) toBroker(topic string) (string, error) {
	if err := checkLevels(topic); err != nil {
		return "", err
	}
	if strings.ContainsAny(topic, "+#") {
		return "", errTopicWildcard
	}
	out := m.prefix + topic + m.suffix
	if len(out) > maxTopicLen {
		return "", errTopicTooLong
	}
	return out, nil
}

// filterToBroker maps a device's topic filter (SUBSCRIBE, UNSUBSCRIBE) to
// the broker's. Because the device's filter is placed inside fixed
// levels, its wildcards only ever match within the device's namespace:
// with "devices/{imsi}/{topic}", "#" becomes "devices/<imsi>/#". With a
// suffix after {topic}, "#" cannot be expressed (it must end a filter)
// and is refused; "+" is fine.
func (m topicMap) filterToBroker(filter string) (string, error) {
	if strings.HasPrefix(filter, "$share/") {
		return "", errFilterShared
	}
	if err := checkLevels(filter); err != nil {
		return "", err
	}
	levels := strings.Split(filter, "/")
	for i, lvl := range levels {
		switch {
		case lvl == "#":
			if i != len(levels)-1 {
				return "", errFilterBad
			}
			if m.suffix != "" {
				return "", errFilterHash
			}
		case lvl == "+":
		case strings.ContainsAny(lvl, "+#"):
			return "", errFilterBad
		}
	}
	out := m.prefix + filter + m.suffix
	if len(out) > maxTopicLen {
		return "", errTopicTooLong
	}
	return out, nil
}

// toDevice maps a broker topic back to the device's, and reports false
// when the topic does not have the template's shape (or would give the
// device an empty or reserved topic): such messages are not delivered.
func (m topicMap) toDevice(topic string) (string, bool) {
	if len(topic) <= len(m.prefix)+len(m.suffix) ||
		!strings.HasPrefix(topic, m.prefix) || !strings.HasSuffix(topic, m.suffix) {
		return "", false
	}
	t := topic[len(m.prefix) : len(topic)-len(m.suffix)]
	if t[0] == '$' && m.prefix != "" {
		// A $ topic would look reserved to the device; with no prefix
		// the broker's own topic is simply passed through.
		return "", false
	}
	return t, true
}
