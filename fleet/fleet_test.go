// SPDX-License-Identifier: Apache-2.0

package fleet

import (
	"errors"
	"strings"
	"testing"
)

func TestIMSI(t *testing.T) {
	if got := FormatIMSI(42); got != "999990000000042" || !ValidIMSI(got) {
		t.Fatalf("FormatIMSI(42) = %q", got)
	}
	for _, bad := range []string{"99999000000004", "9999900000000421", "310150123456789", "99999abcdefghij"} {
		if ValidIMSI(bad) {
			t.Errorf("ValidIMSI(%q)", bad)
		}
	}
}

func TestSettingsNormalize(t *testing.T) {
	s := GroupSettings{Routes: []string{"192.168.1.0/24", "2001:db8::/32"}}
	if err := s.Normalize("settings"); err != nil || s.Version != SettingsVersion || s.DeviceToDevice.Mode != D2DOff {
		t.Fatalf("defaults: %+v %v", s, err)
	}
	cases := []struct {
		s     GroupSettings
		field string
	}{
		{GroupSettings{Version: 2}, "settings.version"},
		{GroupSettings{Routes: []string{"10.0.0.0/8", "nope"}}, "settings.routes[1]"},
		{GroupSettings{DeviceToDevice: D2DPolicy{Mode: "everyone"}}, "settings.deviceToDevice.mode"},
		{GroupSettings{DeviceToDevice: D2DPolicy{Mode: D2DGroups}}, "settings.deviceToDevice.groups"},
		{GroupSettings{DeviceToDevice: D2DPolicy{Mode: D2DGroup, Groups: []string{"a"}}}, "settings.deviceToDevice.groups"},
		{GroupSettings{DeviceToDevice: D2DPolicy{Mode: D2DGroups, Groups: []string{"bad name"}}}, "settings.deviceToDevice.groups[0]"},
		{GroupSettings{DeviceToDevice: D2DPolicy{Mode: D2DGroup, Ports: []uint16{0}}}, "settings.deviceToDevice.ports[0]"},
		{GroupSettings{UserData: strings.Repeat("x", MaxUserData+1)}, "settings.userData"},
		{GroupSettings{Security: SecurityProfile{VolumeFactor: 1.5}}, "settings.security.volumeFactor"},
		{GroupSettings{Security: SecurityProfile{CheckListeners: true, ListenPorts: []uint16{22, 0}}}, "settings.security.listenPorts[1]"},
		{GroupSettings{Security: SecurityProfile{ListenPorts: []uint16{22}}}, "settings.security.listenPorts"},
		{GroupSettings{Security: SecurityProfile{Action: ActionRotate, RotateWithinHours: MaxRotateWithinHours + 1}}, "settings.security.rotateWithinHours"},
		{GroupSettings{Security: SecurityProfile{Action: ActionSuspend, RotateWithinHours: 2}}, "settings.security.rotateWithinHours"},
		{GroupSettings{Security: SecurityProfile{KeyMaxAgeDays: -1}}, "settings.security.keyMaxAgeDays"},
		{GroupSettings{Security: SecurityProfile{Action: ActionSuspend, ActOn: []string{"cloned-key", "typo"}}}, "settings.security.actOn[1]"},
		{GroupSettings{Security: SecurityProfile{ActOn: []string{"fan-out"}}}, "settings.security.actOn"},
	}
	for _, c := range cases {
		err := c.s.Normalize("settings")
		var fe *Error
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%+v: got %v, want error on %s", c.s, err, c.field)
		}
	}
}

func TestValidateTags(t *testing.T) {
	if err := ValidateTags("tags", map[string]string{"site": "north", "a/b:c": "x"}); err != nil {
		t.Fatal(err)
	}
	for _, tags := range []map[string]string{{"": "x"}, {"bad key": "x"}, {"k": "line\nbreak"}, {"k": strings.Repeat("v", 257)}} {
		if err := ValidateTags("tags", tags); err == nil {
			t.Errorf("accepted %q", tags)
		}
	}
}
