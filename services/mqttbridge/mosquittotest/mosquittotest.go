// SPDX-License-Identifier: Apache-2.0

// Package mosquittotest starts a throw-away Mosquitto broker for tests,
// from Debian's mosquitto package: a plain and a TLS listener on
// 127.0.0.1 (random free ports), a CA and server certificate made for the
// test, a password file (mosquitto_passwd -b) and an optional ACL file.
// Anonymous clients are refused. It skips when Mosquitto is not installed,
// except under CI=true, where that is a failure. The broker is stopped by
// PID when the test ends.
package mosquittotest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Options configure a broker.
type Options struct {
	// Users are the accounts in the password file: name → password.
	Users map[string]string
	// ACLs, if not nil, load Mosquitto's dynamic-security plugin with one
	// role per user named here (who must also be in Users): what that
	// user may do. Anything not allowed is denied, subscriptions
	// included (SUBACK failure) — which a plain acl_file cannot do, as
	// Mosquitto 2.0 checks it only when delivering. Without ACLs every
	// authenticated user may use every topic.
	ACLs map[string][]ACL
	// MaxKeepalive, if not 0, is Mosquitto's max_keepalive (10 or more):
	// v5 clients asking for more are told this one (Server Keep Alive).
	MaxKeepalive int
}

// ACL is one rule of the dynamic-security plugin.
type ACL struct {
	// Type is publishClientSend, publishClientReceive, subscribePattern,
	// subscribeLiteral, unsubscribePattern or unsubscribeLiteral.
	Type  string
	Topic string
	Allow bool
	// Priority orders the rules of a role: higher first.
	Priority int
}

// Broker is a running Mosquitto.
type Broker struct {
	// Addr and TLSAddr are the plain and TLS listeners' host:port.
	Addr, TLSAddr string
	// CAFile is the PEM CA certificate that signed the server's
	// certificate (for mosquitto_pub/sub --cafile).
	CAFile string
	// CA holds that certificate, for Go clients.
	CA *x509.CertPool
	// Dir is the broker's temporary directory.
	Dir string

	cmd     *exec.Cmd
	logPath string
}

// ClientTLS is a TLS configuration trusting the broker's CA, with the
// server name its certificate holds.
func (b *Broker) ClientTLS() *tls.Config {
	return &tls.Config{RootCAs: b.CA, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// Log returns what the broker logged so far (connections, with the
// username each client gave, subscriptions, denials).
func (b *Broker) Log() string {
	out, _ := os.ReadFile(b.logPath)
	return string(out)
}

// PID is the broker process id.
func (b *Broker) PID() int { return b.cmd.Process.Pid }

// Stop ends the broker now (by PID), for tests of a broker going away;
// it is also done when the test ends.
func (b *Broker) Stop() {
	b.cmd.Process.Signal(syscall.SIGTERM)
}

// Binary returns the path of the mosquitto daemon, or "".
func Binary() string {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// Need skips t (or fails it under CI=true) unless each named program is
// installed, e.g. Need(t, "mosquitto_pub", "mosquitto_sub").
func Need(t testing.TB, programs ...string) {
	t.Helper()
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			unavailable(t, "%s not found (apt-get install mosquitto-clients)", p)
		}
	}
}

func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("Mosquitto needed under CI: "+format, args...)
	}
	t.Skipf("skipping, Mosquitto not available: "+format, args...)
}

// Start writes the configuration, starts the broker and waits until both
// listeners accept connections.
func Start(t testing.TB, opt Options) *Broker {
	t.Helper()
	bin := Binary()
	if bin == "" {
		unavailable(t, "no mosquitto binary (apt-get install mosquitto)")
	}
	Need(t, "mosquitto_passwd")
	dir, err := os.MkdirTemp("", "wirefleet-mosquitto-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	b := &Broker{Dir: dir, logPath: filepath.Join(dir, "mosquitto.log")}
	if err := b.writeCerts(); err != nil {
		t.Fatal(err)
	}

	passwd := filepath.Join(dir, "passwd")
	if err := os.WriteFile(passwd, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, pw := range opt.Users {
		if out, err := exec.Command("mosquitto_passwd", "-b", passwd, name, pw).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
		}
	}

	var conf strings.Builder
	fmt.Fprintf(&conf, "per_listener_settings false\nallow_anonymous false\npersistence false\n")
	fmt.Fprintf(&conf, "password_file %s\n", passwd)
	if opt.ACLs != nil {
		plugin := "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"
		if m, _ := filepath.Glob("/usr/lib/*/mosquitto_dynamic_security.so"); len(m) > 0 {
			plugin = m[0]
		}
		if _, err := os.Stat(plugin); err != nil {
			unavailable(t, "no mosquitto_dynamic_security.so")
		}
		js, err := dynsecConfig(opt)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "dynamic-security.json")
		if err := os.WriteFile(path, js, 0o600); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&conf, "plugin %s\nplugin_opt_config_file %s\n", plugin, path)
	}
	if opt.MaxKeepalive > 0 {
		fmt.Fprintf(&conf, "max_keepalive %d\n", opt.MaxKeepalive)
	}
	if u, err := user.Current(); err == nil && u.Uid == "0" {
		// As root Mosquitto would switch to the mosquitto user, which
		// cannot read the test's files.
		conf.WriteString("user root\n")
	}
	fmt.Fprintf(&conf, "log_dest file %s\nlog_type all\nconnection_messages true\nlog_timestamp_format %%H:%%M:%%S\n", b.logPath)

	// Ports: ask the kernel for free ones, then let Mosquitto bind them;
	// another process could take one in between, so retry a few times.
	for attempt := 0; ; attempt++ {
		plain, tlsPort := freePort(t), freePort(t)
		c := conf.String()
		c += fmt.Sprintf("listener %d 127.0.0.1\n", plain)
		c += fmt.Sprintf("listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\n", tlsPort,
			filepath.Join(dir, "ca.pem"), filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key"))
		confPath := filepath.Join(dir, "mosquitto.conf")
		if err := os.WriteFile(confPath, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
		b.Addr = fmt.Sprintf("127.0.0.1:%d", plain)
		b.TLSAddr = fmt.Sprintf("127.0.0.1:%d", tlsPort)
		var stderr bytes.Buffer
		b.cmd = exec.Command(bin, "-c", confPath)
		b.cmd.Stdout, b.cmd.Stderr = &stderr, &stderr
		// Its own process group (a ^C to the test does not race the
		// cleanup), and killed if the test process dies (a fuzz worker
		// ended abruptly never runs its cleanups).
		b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := b.cmd.Start(); err != nil {
			t.Fatalf("mosquitto: %v", err)
		}
		exited := make(chan struct{})
		go func() { b.cmd.Wait(); close(exited) }()
		cmd := b.cmd
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
		})
		if waitListening(exited, b.Addr, b.TLSAddr) {
			return b
		}
		select {
		case <-exited:
			if attempt < 3 {
				continue
			}
			t.Fatalf("mosquitto exited: %s\n%s\n%s", b.cmd.ProcessState, stderr.String(), b.Log())
		default:
			t.Fatalf("mosquitto did not listen on %s and %s within 15 s\n%s", b.Addr, b.TLSAddr, b.Log())
		}
	}
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitListening(exited chan struct{}, addrs ...string) bool {
	deadline := time.Now().Add(15 * time.Second)
	for _, a := range addrs {
		for {
			select {
			case <-exited:
				return false
			default:
			}
			if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return true
}

// dynsecConfig is the dynamic-security plugin's configuration: each user
// of opt.ACLs a client (password as PBKDF2-SHA512, the plugin's format)
// with a role of its own; everything not allowed is denied.
func dynsecConfig(opt Options) ([]byte, error) {
	type roleRef struct {
		Rolename string `json:"rolename"`
	}
	type client struct {
		Username   string    `json:"username"`
		Password   string    `json:"password"`
		Salt       string    `json:"salt"`
		Iterations int       `json:"iterations"`
		Roles      []roleRef `json:"roles"`
	}
	type acl struct {
		ACLType  string `json:"acltype"`
		Topic    string `json:"topic"`
		Priority int    `json:"priority"`
		Allow    bool   `json:"allow"`
	}
	type role struct {
		Rolename string `json:"rolename"`
		ACLs     []acl  `json:"acls"`
	}
	cfg := struct {
		DefaultACLAccess map[string]bool `json:"defaultACLAccess"`
		Clients          []client        `json:"clients"`
		Groups           []struct{}      `json:"groups"`
		Roles            []role          `json:"roles"`
	}{
		DefaultACLAccess: map[string]bool{"publishClientSend": false, "publishClientReceive": false, "subscribe": false, "unsubscribe": true},
		Groups:           []struct{}{},
	}
	for name, rules := range opt.ACLs {
		pw, ok := opt.Users[name]
		if !ok {
			return nil, fmt.Errorf("mosquittotest: ACLs for %q, who is not in Users", name)
		}
		salt := make([]byte, 12)
		rand.Read(salt)
		const iterations = 101
		hash, err := pbkdf2.Key(sha512.New, pw, salt, iterations, 64)
		if err != nil {
			return nil, err
		}
		cfg.Clients = append(cfg.Clients, client{
			Username: name, Password: base64.StdEncoding.EncodeToString(hash), Salt: base64.StdEncoding.EncodeToString(salt),
			Iterations: iterations, Roles: []roleRef{{name}},
		})
		r := role{Rolename: name, ACLs: []acl{}}
		for _, a := range rules {
			r.ACLs = append(r.ACLs, acl{ACLType: a.Type, Topic: a.Topic, Priority: a.Priority, Allow: a.Allow})
		}
		cfg.Roles = append(cfg.Roles, r)
	}
	return json.Marshal(cfg)
}

// writeCerts makes a CA and a server certificate for localhost and
// 127.0.0.1, valid for a day.
func (b *Broker) writeCerts() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "wirefleet test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		return err
	}
	b.CAFile = filepath.Join(b.Dir, "ca.pem")
	files := map[string][]byte{
		b.CAFile:                           pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		filepath.Join(b.Dir, "server.pem"): pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}),
		filepath.Join(b.Dir, "server.key"): pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
	for p, data := range files {
		if err := os.WriteFile(p, data, 0o600); err != nil {
			return err
		}
	}
	b.CA = x509.NewCertPool()
	b.CA.AddCert(caCert)
	return nil
}
