// SPDX-License-Identifier: Apache-2.0

package mqttbridge

import (
	"errors"
	"strings"
	"testing"
)

func TestTopicTemplates(t *testing.T) {
	id := Identity{SIMID: "sim-1", IMSI: "999990000000001", GroupName: "sensors"}
	for _, tc := range []struct {
		tmpl, pre, suf string
	}{
		{"", "", ""},
		{"{topic}", "", ""},
		{"devices/{imsi}/{topic}", "devices/999990000000001/", ""},
		{"{topic}/{imsi}", "", "/999990000000001"},
		{"{group}/{simId}/{topic}/in", "sensors/sim-1/", "/in"},
	} {
		m, err := newTopicMap(tc.tmpl, id)
		if err != nil || m.prefix != tc.pre || m.suffix != tc.suf {
			t.Errorf("%q: got %+v %v, want %q %q", tc.tmpl, m, err, tc.pre, tc.suf)
		}
	}
	for _, bad := range []string{
		"devices/{imsi}", "{topic}/{topic}", "devices/{imsi}{topic}", "{topic}x", "{topic}/{serial}",
		"{topic}/{imsi", "a/+/{topic}", "#/{topic}", "$SYS/{topic}",
	} {
		if _, err := newTopicMap(bad, id); err == nil {
			t.Errorf("template %q accepted", bad)
		}
	}
	// Identity values that could widen or overlap a namespace.
	for _, v := range []string{"", "a/b", "+", "#", "a\x00"} {
		if _, err := newTopicMap("devices/{imsi}/{topic}", Identity{IMSI: v}); err == nil {
			t.Errorf("IMSI %q accepted", v)
		}
	}
	if _, err := newTopicMap("devices/{imsi}/{topic}", Identity{IMSI: "1"}); err != nil {
		t.Errorf("unused values must not matter: %v", err)
	}
}

func TestTopicMapping(t *testing.T) {
	pre, _ := newTopicMap("devices/{imsi}/{topic}", Identity{IMSI: "1"})
	suf, _ := newTopicMap("{topic}/{imsi}", Identity{IMSI: "1"})
	for _, tc := range []struct {
		m          topicMap
		in, out    string
		filter     bool
		wantErr    error
		wantReturn string // toDevice(out), when it differs from in
	}{
		{m: pre, in: "a/b", out: "devices/1/a/b"},
		{m: pre, in: "/lead", out: "devices/1//lead"},
		{m: pre, in: "#", out: "devices/1/#", filter: true},
		{m: pre, in: "+", out: "devices/1/+", filter: true},
		{m: pre, in: "+/+/#", out: "devices/1/+/+/#", filter: true},
		{m: suf, in: "a/b", out: "a/b/1"},
		{m: suf, in: "+/b", out: "+/b/1", filter: true},
		{m: suf, in: "#", filter: true, wantErr: errFilterHash},
		{m: suf, in: "a/#", filter: true, wantErr: errFilterHash},
		{m: pre, in: "", wantErr: errTopicEmpty},
		{m: pre, in: "$SYS/x", wantErr: errTopicDollar},
		{m: pre, in: "$SYS/#", filter: true, wantErr: errTopicDollar},
		{m: pre, in: "a/+", wantErr: errTopicWildcard},
		{m: pre, in: "a/#", wantErr: errTopicWildcard},
		{m: pre, in: "../2/x", wantErr: errTopicDots},
		{m: pre, in: "a/./x", wantErr: errTopicDots},
		{m: pre, in: "a/..", filter: true, wantErr: errTopicDots},
		{m: pre, in: "a\x00b", wantErr: errTopicUTF8},
		{m: pre, in: "a\xffb", wantErr: errTopicUTF8},
		{m: pre, in: "a\nb", wantErr: errTopicUTF8},
		{m: pre, in: "a\u0085b", wantErr: errTopicUTF8},
		{m: pre, in: "a\tb/#", filter: true, wantErr: errTopicUTF8},
		{m: pre, in: "a/#/b", filter: true, wantErr: errFilterBad},
		{m: pre, in: "a#", filter: true, wantErr: errFilterBad},
		{m: pre, in: "a+/b", filter: true, wantErr: errFilterBad},
		{m: pre, in: "$share/g/a", filter: true, wantErr: errFilterShared},
		{m: pre, in: strings.Repeat("x", maxTopicLen), wantErr: errTopicTooLong},
	} {
		var got string
		var err error
		if tc.filter {
			got, err = tc.m.filterToBroker(tc.in)
		} else {
			got, err = tc.m.toBroker(tc.in)
		}
		if !errors.Is(err, tc.wantErr) || got != tc.out {
			t.Errorf("%+v %q (filter %v): got %q %v, want %q %v", tc.m, tc.in, tc.filter, got, err, tc.out, tc.wantErr)
			continue
		}
		if err == nil && !tc.filter {
			if back, ok := tc.m.toDevice(got); !ok || back != tc.in {
				t.Errorf("%q: round trip gave %q %v", tc.in, back, ok)
			}
		}
	}
	for _, tc := range []struct {
		m     topicMap
		topic string
	}{
		{pre, "devices/2/a"}, {pre, "devices/1/"}, {pre, "devices/1"}, {pre, "devices/10/a"}, {pre, "x/devices/1/a"},
		{pre, "devices/1/$SYS/x"}, {suf, "a/2"}, {suf, "a/11"}, {suf, "/1"}, {suf, "1"},
	} {
		if got, ok := tc.m.toDevice(tc.topic); ok {
			t.Errorf("%+v: broker topic %q delivered as %q", tc.m, tc.topic, got)
		}
	}
}

// matches reports whether MQTT topic filter f matches topic name n
// (the specification's rules, written independently of the bridge).
func matches(f, n string) bool {
	fl, nl := strings.Split(f, "/"), strings.Split(n, "/")
	if strings.HasPrefix(n, "$") && (fl[0] == "+" || fl[0] == "#") {
		return false
	}
	for i, l := range fl {
		if l == "#" {
			return true
		}
		if i >= len(nl) {
			return false
		}
		if l != "+" && l != nl[i] {
			return false
		}
	}
	return len(fl) == len(nl)
}

var fuzzTemplates = []string{"devices/{imsi}/{topic}", "{topic}/{imsi}", "{group}/{topic}/{simId}", "t/{simId}/x/{topic}"}

// FuzzTopicNamespace checks the bridge's promise about topics: what a
// device may publish maps back to itself; a filter it may use matches no
// broker topic outside its namespace; and nothing it publishes lands in
// the namespace of a device with another identity.
func FuzzTopicNamespace(f *testing.F) {
	for _, s := range [][3]string{
		{"a/b", "#", "devices/1/a/b"}, {"x", "+", "x/1"}, {"..", "+/#", "devices/2/x"}, {"a", "$share/x/#", "1/a/s"},
		{"/", "/#", "devices/1//"}, {"1/a", "+/+", "devices/1/1/a"},
	} {
		for i := range fuzzTemplates {
			f.Add(uint8(i), "1", "12", s[0], s[1], s[2])
		}
	}
	f.Fuzz(func(t *testing.T, ti uint8, imsi, other, topic, filter, brokerTopic string) {
		tmpl := fuzzTemplates[int(ti)%len(fuzzTemplates)]
		id := Identity{IMSI: imsi, SIMID: "s" + imsi, GroupName: "g" + imsi}
		m, err := newTopicMap(tmpl, id)
		if err != nil {
			return // identity values with / + # or NUL are refused
		}
		id2 := Identity{IMSI: other, SIMID: "s" + other, GroupName: "g" + other}
		m2, err := newTopicMap(tmpl, id2)
		foreign := err == nil && other != imsi
		if bt, err := m.toBroker(topic); err == nil {
			if back, ok := m.toDevice(bt); !ok || back != topic {
				t.Fatalf("%q → %q → %q %v", topic, bt, back, ok)
			}
			if foreign {
				if _, ok := m2.toDevice(bt); ok {
					t.Fatalf("%s: %q of %q lands in %q's namespace as %q", tmpl, topic, imsi, other, bt)
				}
			}
		}
		bf, err := m.filterToBroker(filter)
		if err != nil {
			return
		}
		candidates := []string{brokerTopic, m.prefix + brokerTopic + m.suffix}
		if foreign {
			candidates = append(candidates, m2.prefix+brokerTopic+m2.suffix)
		}
		for _, bt := range candidates {
			if !matches(bf, bt) {
				continue
			}
			if foreign {
				if _, ok := m2.toDevice(bt); ok {
					t.Fatalf("%s: filter %q of %q → %q matches %q, in %q's namespace", tmpl, filter, imsi, bf, bt, other)
				}
			}
			if dt, ok := m.toDevice(bt); ok && !matches(filter, dt) {
				t.Fatalf("%s: filter %q → %q matches %q, delivered as %q, which the filter does not match", tmpl, filter, bf, bt, dt)
			}
		}
	})
}

// FuzzTopicTemplate feeds arbitrary templates and identities to the
// template parser: an accepted template must give whole-level, wildcard-
// free fixed parts, and topics must round-trip through it.
func FuzzTopicTemplate(f *testing.F) {
	for _, tmpl := range append(fuzzTemplates, "", "{topic}", "a/{topic}/{topic}", "{imsi", "x/{nope}/{topic}", "{topic}{imsi}") {
		f.Add(tmpl, "999990000000001", "a/b")
	}
	f.Fuzz(func(t *testing.T, tmpl, imsi, topic string) {
		m, err := newTopicMap(tmpl, Identity{IMSI: imsi, SIMID: imsi, GroupName: imsi})
		if err != nil {
			return
		}
		if m.prefix != "" && !strings.HasSuffix(m.prefix, "/") || m.suffix != "" && !strings.HasPrefix(m.suffix, "/") ||
			strings.ContainsAny(m.prefix+m.suffix, "+#\x00") || strings.HasPrefix(m.prefix, "$") {
			t.Fatalf("template %q accepted as %+v", tmpl, m)
		}
		if bt, err := m.toBroker(topic); err == nil {
			if back, ok := m.toDevice(bt); !ok || back != topic {
				t.Fatalf("%q: %q → %q → %q %v", tmpl, topic, bt, back, ok)
			}
		}
	})
}
