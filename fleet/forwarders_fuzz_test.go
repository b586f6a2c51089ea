// SPDX-License-Identifier: Apache-2.0

package fleet

import (
	"encoding/json"
	"strings"
	"testing"
)

type markSealer struct{}

func (markSealer) Seal(p string) (string, error) { return "sealed(" + p + ")", nil }

// Any JSON forwarder settings either fail validation with a field, or
// normalize, seal and redact so that no secret is left in an answer, and
// normalize again unchanged.
func FuzzForwarders(f *testing.F) {
	f.Add(`{"http":[{"pathPrefix":"/t","url":"https://h/x","secret":"0123456789abcdef","credential":{"type":"bearer","value":"tok"}}]}`)
	f.Add(`{"tcp":{"url":"tls://h:1","secret":"0123456789abcdef","firstLineIdentity":true},"udp":{"url":"http://h/","secret":"0123456789abcdef"}}`)
	f.Add(`{"mqtt":{"broker":"b:8883","tls":true,"password":"pw","topicTemplate":"d/{imsi}/{topic}"}}`)
	f.Add(`{"http":[{"pathPrefix":"/","url":"https://h","secret":"0123456789abcdef","beamSignature":{"fields":["imsi","imei"],"secret":"psk"},"credential":{"type":"header","header":"X-Key","value":"v"}}]}`)
	f.Fuzz(func(t *testing.T, in string) {
		var fw Forwarders
		if json.Unmarshal([]byte(in), &fw) != nil {
			return
		}
		if err := fw.Normalize("f"); err != nil {
			if fe, ok := err.(*Error); !ok || !strings.HasPrefix(fe.Field, "f") {
				t.Fatalf("error without a field: %v", err)
			}
			return
		}
		var secrets []string
		for _, s := range fw.slots("f") {
			if *s.val != "" {
				secrets = append(secrets, *s.val)
			}
		}
		if err := fw.SealSecrets("f", nil, markSealer{}); err != nil {
			return
		}
		if err := fw.Normalize("f"); err != nil {
			t.Fatalf("normalized settings fail again: %v", err)
		}
		out, _ := json.Marshal(fw.Redacted())
		for _, s := range secrets {
			if len(s) >= 4 && strings.Contains(string(out), "sealed("+s) {
				t.Fatalf("redacted settings hold secret %q: %s", s, out)
			}
		}
		red := fw.Redacted()
		for _, s := range red.slots("f") {
			if *s.val != "" {
				t.Fatalf("redacted %s = %q", s.field, *s.val)
			}
		}
	})
}
