// SPDX-License-Identifier: Apache-2.0

package layers

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
)

const module = "github.com/wirefleet/wirefleet"

// listed is one package as `go list -json` describes it.
type listed struct {
	ImportPath                                   string
	Dir                                          string
	Deps                                         []string
	GoFiles, TestGoFiles, XTestGoFiles, CgoFiles []string
}

var (
	listOnce sync.Once
	pkgList  []listed
	listErr  error
)

// list runs go list over the module, once for all the tests: every package
// with the packages it links (Deps: imports, transitively; test files not
// counted).
func list(t *testing.T) []listed {
	t.Helper()
	listOnce.Do(func() { pkgList, listErr = goList(root(t)) })
	if listErr != nil {
		t.Fatal(listErr)
	}
	return pkgList
}

func goList(dir string) ([]listed, error) {
	cmd := exec.Command("go", "list", "-json", module+"/...")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w", err)
	}
	var pkgs []listed
	for dec := json.NewDecoder(bytes.NewReader(out)); dec.More(); {
		var p listed
		if err := dec.Decode(&p); err != nil {
			return nil, err
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

func root(t *testing.T) string {
	t.Helper()
	d, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// rel is a package's path inside the module ("" for the root).
func rel(path string) string { return strings.TrimPrefix(strings.TrimPrefix(path, module), "/") }

// under reports whether pkg (module-relative) is one of prefixes or below
// one; a prefix ending in "$" matches that package only.
func under(pkg string, prefixes ...string) bool {
	for _, p := range prefixes {
		if exact, ok := strings.CutSuffix(p, "$"); ok {
			if pkg == exact {
				return true
			}
			continue
		}
		if pkg == p || strings.HasPrefix(pkg, p+"/") {
			return true
		}
	}
	return false
}

// The layering rules. Each says which packages (by prefix) must not link
// which others, and why.
var rules = []struct {
	who, why  string
	from      []string
	forbidden []string
	except    []string // below a forbidden prefix, yet allowed
}{
	{
		who:       "the WireGuard engine and its parts",
		why:       "the engine knows no SIMs, no store and no gateway: it is a WireGuard implementation any program could embed",
		from:      []string{"engine", "wgkey", "internal/packet", "internal/netmap"},
		forbidden: []string{"fleet", "controlplane", "gateway", "services"},
	},
	{
		who:       "the store",
		why:       "the store knows no packets and no service: it keeps fleet records",
		from:      []string{"controlplane/store"},
		forbidden: []string{"engine", "gateway", "internal/packet", "controlplane$", "controlplane/api", "controlplane/arcapi", "controlplane/audit", "services"},
	},
	{
		who:       "the device agent",
		why:       "a device links no server package: the agent binary stays small and holds no platform code an attacker on a device could turn",
		from:      []string{"agent", "cmd/wirefleet-agent"},
		forbidden: []string{"controlplane", "gateway", "services", "cmd/wirefleetd"},
		except:    []string{"controlplane/api/apiv1", "controlplane/arcapi/arcwire"}, // the APIs' wire types: server-free by design
	},
	{
		who:       "the APIs' wire types",
		why:       "the CLI and the device agent share them with the server, so they must stay server-free",
		from:      []string{"controlplane/api/apiv1", "controlplane/arcapi/arcwire"},
		forbidden: []string{"controlplane", "gateway", "services", "engine"},
	},
	{
		who:       "the platform services",
		why:       "a service sees the gateway only through platform.Host (who is calling, listen, dial, online) and the fleet only through the narrow interface it declares (records through the store's interfaces)",
		from:      []string{"services"},
		forbidden: []string{"gateway", "controlplane$", "controlplane/api", "controlplane/arcapi", "controlplane/audit", "engine", "cmd"},
	},
	{
		who:       "everything shipped",
		why:       "the software USIM holds a card's Ki in memory and answers any challenge made with it: it is for tests, never in a binary",
		from:      []string{"cmd", "agent", "controlplane", "gateway", "services", "usim", "fleet", "engine", "keystore", "keyproof", "attest", "wgkey"},
		forbidden: []string{"internal/softusim"},
	},
	{
		who:       "the security monitor, its response and its webhooks",
		why:       "the monitor sees observations, not packets or sessions, and the response acts through the narrow Actions interface the gateway implements",
		from:      []string{"gateway/monitor"},
		forbidden: []string{"gateway$", "controlplane", "engine", "services", "cmd"},
	},
}

func TestLayers(t *testing.T) {
	pkgs := list(t)
	checked := map[int]int{}
	for _, p := range pkgs {
		pr := rel(p.ImportPath)
		for i, r := range rules {
			if !under(pr, r.from...) || strings.HasSuffix(pr, "test") {
				continue
			}
			checked[i]++
			for _, d := range p.Deps {
				if !strings.HasPrefix(d, module) {
					continue
				}
				if dr := rel(d); under(dr, r.forbidden...) && !under(dr, r.except...) {
					t.Errorf("%s links %s: %s must not (%s)", pr, dr, r.who, r.why)
				}
			}
		}
	}
	for i, r := range rules {
		if checked[i] == 0 {
			t.Errorf("rule for %s matched no package: the tree moved, update the rule", r.who)
		}
	}
}

// A test that would pass on any tree proves nothing: the same check finds
// the link from the gateway to the engine that does exist.
func TestLayersCanFail(t *testing.T) {
	for _, p := range list(t) {
		if rel(p.ImportPath) == "gateway" {
			if !slices.Contains(p.Deps, module+"/engine") {
				t.Fatal("gateway does not link engine: go list's Deps are not what this test thinks")
			}
			return
		}
	}
	t.Fatal("no gateway package")
}

// docs/architecture.md's package table (the section "## Packages") lists
// every package of the module exactly once, and nothing else.
func TestArchitectureListsThePackages(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root(t), "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	row := regexp.MustCompile("^\\| `([^`]+)` \\|")
	in := false
	for s := bufio.NewScanner(bytes.NewReader(b)); s.Scan(); {
		line := s.Text()
		if strings.HasPrefix(line, "## ") {
			in = line == "## Packages"
			continue
		}
		if m := row.FindStringSubmatch(line); in && m != nil {
			documented = append(documented, m[1])
		}
	}
	var actual []string
	for _, p := range list(t) {
		actual = append(actual, rel(p.ImportPath))
	}
	sort.Strings(actual)
	seen := map[string]bool{}
	for _, d := range documented {
		if seen[d] {
			t.Errorf("docs/architecture.md lists %s twice", d)
		}
		seen[d] = true
		if !slices.Contains(actual, d) {
			t.Errorf("docs/architecture.md lists %s, which is no package", d)
		}
	}
	for _, a := range actual {
		if !seen[a] {
			t.Errorf("docs/architecture.md does not list %s", a)
		}
	}
}

// Every Go file starts with its SPDX licence identifier.
func TestLicenceHeaders(t *testing.T) {
	for _, p := range list(t) {
		for _, files := range [][]string{p.GoFiles, p.CgoFiles, p.TestGoFiles, p.XTestGoFiles} {
			for _, f := range files {
				b, err := os.ReadFile(filepath.Join(p.Dir, f))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.HasPrefix(b, []byte("// SPDX-License-Identifier: Apache-2.0\n")) {
					t.Errorf("%s/%s has no SPDX header", rel(p.ImportPath), f)
				}
			}
		}
	}
}
