// SPDX-License-Identifier: Apache-2.0

package netns

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestRequireSkipsLocallyFailsInCI runs Require in a child test process with an
// empty PATH (no tools): without CI it must skip, with CI=true it must fail.
func TestRequireSkipsLocallyFailsInCI(t *testing.T) {
	if os.Getenv("WF_NETNS_REQUIRE_CHILD") == "1" {
		Require(t)
		return
	}
	for _, tc := range []struct {
		ci       string
		wantFail bool
		wantText string
	}{
		{"", false, "SKIP"},
		{"true", true, "CI=true"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRequireSkipsLocallyFailsInCI$", "-test.v")
		cmd.Env = []string{"WF_NETNS_REQUIRE_CHILD=1", "PATH=/nonexistent", "CI=" + tc.ci}
		out, err := cmd.CombinedOutput()
		if failed := err != nil; failed != tc.wantFail {
			t.Errorf("CI=%q: child failed=%v, want %v\n%s", tc.ci, failed, tc.wantFail, out)
		}
		if !strings.Contains(string(out), tc.wantText) {
			t.Errorf("CI=%q: output lacks %q\n%s", tc.ci, tc.wantText, out)
		}
	}
}
