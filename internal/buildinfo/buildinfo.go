// SPDX-License-Identifier: Apache-2.0

// Package buildinfo says which version of wirefleet a binary is.
package buildinfo

import (
	"runtime/debug"
	"sync"
)

// Version is the binary's version: its module version when built from a
// release ("v1.4.0"), else "devel" with the revision the build saw
// ("devel-1a2b3c4d5e6f", "-dirty" for uncommitted changes; "devel" alone
// when the build kept no VCS stamp).
func Version() string {
	once.Do(func() {
		version = "devel"
		bi, ok := debug.ReadBuildInfo()
		if !ok {
			return
		}
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			version = v
			return
		}
		var rev, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value[:min(12, len(s.Value))]
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if rev != "" {
			version += "-" + rev + dirty
		}
	})
	return version
}

var (
	once    sync.Once
	version string
)
