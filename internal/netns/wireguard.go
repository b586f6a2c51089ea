// SPDX-License-Identifier: Apache-2.0

package netns

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/wirefleet/wirefleet/wgkey"
)

// UAPIDir is where wireguard-go puts its control sockets. It is a filesystem
// path, shared by all namespaces, which is why interface names must be unique
// across every test on the machine (the Env prefix sees to that).
const UAPIDir = "/var/run/wireguard"

// wireguardGoEnv makes Debian's wireguard-go start although the kernel has
// WireGuard built in (it refuses otherwise).
var wireguardGoEnv = []string{"WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1"}

// WireGuard is a Debian wireguard-go process serving one interface in a namespace.
type WireGuard struct {
	NS      *NS
	Name    string // interface name, also the UAPI socket name
	Process *Process
	Private wgkey.Private
	Public  wgkey.Public
}

// StartWireGuardGo starts `wireguard-go -f <name>` in n (name from
// Env.Name(suffix), empty suffix picks one), waits for its UAPI socket, gives it a
// fresh private key and returns it. The interface is still down and has no
// address: use SetConf/Set, AddAddr and Up. Cleanup ends the process by PID and
// removes the socket file if the process left it behind.
func (n *NS) StartWireGuardGo(suffix string) *WireGuard {
	n.env.t.Helper()
	return n.StartWireGuardProgram(suffix, "wireguard-go", "-f")
}

// StartWireGuardProgram is StartWireGuardGo with another userspace
// WireGuard that behaves as wireguard-go does: run in the foreground as
// `bin args... <name>`, make the TUN <name> and the UAPI socket
// UAPIDir/<name>.sock, and take `wg` configuration there (wirefleet-bench
// runs the latest golang.zx2c4.com/wireguard so).
func (n *NS) StartWireGuardProgram(suffix, bin string, args ...string) *WireGuard {
	t := n.env.t
	t.Helper()
	var name string
	if suffix == "" {
		name = n.env.autoName("w")
	} else {
		name = n.env.Name(suffix)
	}
	sock := filepath.Join(UAPIDir, name+".sock")
	if _, err := os.Stat(sock); err == nil {
		t.Fatalf("netns: UAPI socket %s already exists: another wireguard-go uses the name", sock)
	}
	// Registered before the process so it runs after the process is ended.
	n.env.addCleanup(func() { _ = os.Remove(sock) })
	p := n.Start(wireguardGoEnv, bin, append(args, name)...)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if p.Exited() {
			t.Fatalf("netns: %s %s exited before creating %s: %v\n%s", bin, name, sock, p.Wait(), p.Output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("netns: %s %s: no UAPI socket after 10s\n%s", bin, name, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	priv, err := wgkey.NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	w := &WireGuard{NS: n, Name: name, Process: p, Private: priv, Public: priv.Public()}
	w.SetConf(fmt.Sprintf("[Interface]\nPrivateKey = %s\n", priv.Base64()))
	return w
}

// Set runs `wg set <name> args...` in the namespace, failing the test on error.
// Keys that wg reads from files (private-key, preshared-key) take paths: use
// WriteKeyFile.
func (w *WireGuard) Set(args ...string) {
	w.NS.env.t.Helper()
	w.NS.MustExec("wg", append([]string{"set", w.Name}, args...)...)
}

// SetConf replaces the whole configuration with conf (wg-setconf(8) format),
// failing the test on error.
func (w *WireGuard) SetConf(conf string) {
	w.NS.env.t.Helper()
	w.NS.MustExec("wg", "setconf", w.Name, w.writeTemp("conf", conf))
}

// AddConf applies conf (wg-setconf(8) format) on top of the current
// configuration with `wg addconf`, failing the test on error.
func (w *WireGuard) AddConf(conf string) {
	w.NS.env.t.Helper()
	w.NS.MustExec("wg", "addconf", w.Name, w.writeTemp("conf", conf))
}

// WriteKeyFile writes a key (wgkey.Private or wgkey.Preshared) to a 0600
// file in a test temporary directory and returns its path, for
// `wg set ... private-key <path>` or `preshared-key <path>`.
func (w *WireGuard) WriteKeyFile(k fmt.Stringer) string {
	return w.writeTemp("key", k.String()+"\n")
}

func (w *WireGuard) writeTemp(kind, content string) string {
	t := w.NS.env.t
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), w.Name+"-"+kind+"-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Chmod(0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// Peer is one [Peer] section of a WireGuard configuration.
type Peer struct {
	PublicKey           wgkey.Public
	PresharedKey        *wgkey.Preshared
	Endpoint            netip.AddrPort // zero: none
	AllowedIPs          []netip.Prefix
	PersistentKeepalive int // seconds, 0: off
}

// Config is a WireGuard interface configuration. The private key is the
// WireGuard's own.
type Config struct {
	ListenPort int // 0: random
	Peers      []Peer
}

// Configure replaces the configuration with cfg and w's private key.
func (w *WireGuard) Configure(cfg Config) {
	w.NS.env.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "[Interface]\nPrivateKey = %s\n", w.Private.Base64())
	if cfg.ListenPort != 0 {
		fmt.Fprintf(&b, "ListenPort = %d\n", cfg.ListenPort)
	}
	for _, p := range cfg.Peers {
		fmt.Fprintf(&b, "\n[Peer]\nPublicKey = %s\n", p.PublicKey)
		if p.PresharedKey != nil {
			fmt.Fprintf(&b, "PresharedKey = %s\n", p.PresharedKey.Base64())
		}
		if p.Endpoint.IsValid() {
			fmt.Fprintf(&b, "Endpoint = %s\n", p.Endpoint)
		}
		if len(p.AllowedIPs) > 0 {
			ips := make([]string, len(p.AllowedIPs))
			for i, a := range p.AllowedIPs {
				ips[i] = a.String()
			}
			fmt.Fprintf(&b, "AllowedIPs = %s\n", strings.Join(ips, ", "))
		}
		if p.PersistentKeepalive != 0 {
			fmt.Fprintf(&b, "PersistentKeepalive = %d\n", p.PersistentKeepalive)
		}
	}
	w.SetConf(b.String())
}

// ListenPort returns the UDP port wireguard-go listens on.
func (w *WireGuard) ListenPort() int {
	w.NS.env.t.Helper()
	out := strings.TrimSpace(w.NS.MustExec("wg", "show", w.Name, "listen-port"))
	port, err := strconv.Atoi(out)
	if err != nil {
		w.NS.env.t.Fatalf("netns: wg show %s listen-port: %q", w.Name, out)
	}
	return port
}

// Show returns the output of `wg show <name> [field]`.
func (w *WireGuard) Show(field ...string) string {
	w.NS.env.t.Helper()
	return w.NS.MustExec("wg", append([]string{"show", w.Name}, field...)...)
}

// PeerEndpoint returns the endpoint wireguard-go currently has for peer (the
// zero AddrPort if none): what roaming changes.
func (w *WireGuard) PeerEndpoint(peer wgkey.Public) netip.AddrPort {
	w.NS.env.t.Helper()
	for _, line := range strings.Split(w.Show("endpoints"), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == peer.String() {
			ap, err := netip.ParseAddrPort(f[1])
			if err != nil {
				return netip.AddrPort{}
			}
			return ap
		}
	}
	return netip.AddrPort{}
}

// LatestHandshake returns the time of the latest handshake with peer (zero if none).
func (w *WireGuard) LatestHandshake(peer wgkey.Public) time.Time {
	w.NS.env.t.Helper()
	for _, line := range strings.Split(w.Show("latest-handshakes"), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == peer.String() {
			sec, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil || sec == 0 {
				return time.Time{}
			}
			return time.Unix(sec, 0)
		}
	}
	return time.Time{}
}

// AddAddr assigns an address to the WireGuard interface; the prefix also
// installs the on-link route for the overlay.
func (w *WireGuard) AddAddr(p netip.Prefix) {
	w.NS.env.t.Helper()
	w.NS.MustExec("ip", "addr", "add", p.String(), "dev", w.Name)
}

// Up brings the WireGuard interface up.
func (w *WireGuard) Up() {
	w.NS.env.t.Helper()
	w.NS.MustExec("ip", "link", "set", w.Name, "up")
}
