// SPDX-License-Identifier: Apache-2.0

package pkcs11store

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// URI names a key on a PKCS#11 token, in the subset of RFC 7512 that a
// WireGuard key reference needs:
//
//	pkcs11:token=fleet;object=wg-a?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/wirefleet/pin
//
// A configuration names the key this way so that nothing that looks like a
// private key (or a handle, which is only valid inside one process) ever
// sits in a private-key field.
type URI struct {
	// Token is the token label (path attribute "token"). Required.
	Token string
	// Object is the key's label (path attribute "object"). Required.
	Object string
	// ModulePath is the PKCS#11 module to load (query attribute
	// "module-path"); empty means the caller chooses.
	ModulePath string
	// PINSource is a file holding the user PIN (query attribute
	// "pin-source"); empty means the caller supplies the PIN.
	PINSource string
}

// ParseURI parses a pkcs11: URI. It refuses attributes it does not know
// rather than ignoring them, because RFC 7512 says an unknown attribute
// must not match (a typo must not select some other key), and it refuses
// "pin-value": a PIN written into a key reference ends up in logs and
// process listings; use pin-source.
func ParseURI(s string) (URI, error) {
	var u URI
	rest, ok := strings.CutPrefix(s, "pkcs11:")
	if !ok {
		return u, fmt.Errorf("pkcs11store: %q is not a pkcs11: URI", s)
	}
	path, query, _ := strings.Cut(rest, "?")
	if path != "" {
		for _, attr := range strings.Split(path, ";") {
			k, v, err := attribute(attr)
			if err != nil {
				return u, err
			}
			switch k {
			case "token":
				u.Token = v
			case "object":
				u.Object = v
			case "type":
				// The URI names the key pair; the private half is the one used.
				if v != "private" {
					return u, fmt.Errorf("pkcs11store: URI type=%q: only type=private names a usable key", v)
				}
			default:
				return u, fmt.Errorf("pkcs11store: URI path attribute %q is not supported", k)
			}
		}
	}
	if query != "" {
		for _, attr := range strings.Split(query, "&") {
			k, v, err := attribute(attr)
			if err != nil {
				return u, err
			}
			switch k {
			case "module-path":
				u.ModulePath = v
			case "pin-source":
				u.PINSource = v
			case "pin-value":
				return u, errors.New("pkcs11store: URI carries pin-value; put the PIN in a file and name it with pin-source")
			default:
				return u, fmt.Errorf("pkcs11store: URI query attribute %q is not supported", k)
			}
		}
	}
	if u.Token == "" || u.Object == "" {
		return u, fmt.Errorf("pkcs11store: URI %q must name both token= and object=", s)
	}
	return u, nil
}

func attribute(attr string) (k, v string, err error) {
	k, raw, ok := strings.Cut(attr, "=")
	if !ok || k == "" {
		return "", "", fmt.Errorf("pkcs11store: URI attribute %q is not name=value", attr)
	}
	v, err = url.PathUnescape(raw)
	if err != nil {
		return "", "", fmt.Errorf("pkcs11store: URI attribute %q: %w", k, err)
	}
	return k, v, nil
}

// String formats u as a pkcs11: URI that ParseURI reads back.
func (u URI) String() string {
	var b strings.Builder
	b.WriteString("pkcs11:token=")
	b.WriteString(escape(u.Token))
	b.WriteString(";object=")
	b.WriteString(escape(u.Object))
	sep := "?"
	if u.ModulePath != "" {
		b.WriteString(sep + "module-path=" + escape(u.ModulePath))
		sep = "&"
	}
	if u.PINSource != "" {
		b.WriteString(sep + "pin-source=" + escape(u.PINSource))
	}
	return b.String()
}

// escape percent-encodes everything RFC 7512 does not allow unencoded in a
// value; '/' stays readable in paths.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '/', c == ':':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// Config resolves u into the Config that opens its token: the module is
// u.ModulePath, else defaultModule; the PIN is read from u.PINSource (a
// file that group and others cannot read, like a key file), else left
// empty for the caller to fill. The key itself is then Token.Open(u.Object).
func (u URI) Config(defaultModule string) (Config, error) {
	cfg := Config{Module: u.ModulePath, Token: u.Token}
	if cfg.Module == "" {
		cfg.Module = defaultModule
	}
	if cfg.Module == "" {
		return cfg, errors.New("pkcs11store: no PKCS#11 module: give module-path in the URI or a default")
	}
	if u.PINSource == "" {
		return cfg, nil
	}
	fi, err := os.Stat(u.PINSource)
	if err != nil {
		return cfg, fmt.Errorf("pkcs11store: PIN source: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return cfg, fmt.Errorf("pkcs11store: PIN source %s has mode %v; want 0600 or stricter", u.PINSource, fi.Mode().Perm())
	}
	b, err := os.ReadFile(u.PINSource)
	if err != nil {
		return cfg, fmt.Errorf("pkcs11store: PIN source: %w", err)
	}
	cfg.PIN = strings.TrimRight(string(b), "\r\n")
	return cfg, nil
}
