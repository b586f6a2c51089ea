// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/wirefleet/wirefleet/attest"
	"github.com/wirefleet/wirefleet/fleet"
)

// Identity references name the device's attestation identity key — the
// signing key manufacturing registered with the control plane:
//
//	pkcs11:token=se;object=identity?pin-source=/etc/wirefleet/pin   on a secure element (the real case)
//	file:/etc/wirefleet/identity.pem                                a PKCS#8 PEM file (development only: it can be copied)
//
// The identity key only signs the bootstrap challenge; the WireGuard key
// is a separate key (KeyRef).

// Identity is an open identity key.
type Identity struct {
	crypto.Signer
	Key   attest.PublicKey
	close func() error
}

// Close releases the token session, if any.
func (i *Identity) Close() error {
	if i.close == nil {
		return nil
	}
	return i.close()
}

// OpenIdentity opens the identity key ref names.
func OpenIdentity(ref string) (*Identity, error) { return openIdentity(ref, "") }

// CreateIdentity opens the identity key ref names, making it with alg
// first if there is none. An existing key of another algorithm is an
// error: manufacturing asked for something the device does not have.
func CreateIdentity(ref string, alg attest.Algorithm) (*Identity, error) {
	if alg != attest.Ed25519 && alg != attest.P256 {
		return nil, fmt.Errorf("agent: identity algorithm %q (want ed25519 or p256)", alg)
	}
	id, err := openIdentity(ref, alg)
	if err == nil && id.Key.Algorithm() != alg {
		id.Close()
		return nil, fmt.Errorf("agent: %s already holds a %s identity key, not %s", ref, id.Key.Algorithm(), alg)
	}
	return id, err
}

func openIdentity(ref string, create attest.Algorithm) (*Identity, error) {
	switch {
	case strings.HasPrefix(ref, "file:"):
		path := strings.TrimPrefix(ref, "file:")
		s, err := attest.LoadFile(path)
		if create != "" && errors.Is(err, fs.ErrNotExist) {
			s, err = attest.GenerateFile(path, create)
		}
		if err != nil {
			return nil, err
		}
		k, err := attest.FromCrypto(s.Public())
		if err != nil {
			return nil, err
		}
		return &Identity{Signer: s, Key: k}, nil
	case strings.HasPrefix(ref, "pkcs11:"):
		u, tok, err := openToken(ref)
		if err != nil {
			return nil, err
		}
		s, err := tok.OpenSigner(u.Object)
		if create != "" && errors.Is(err, fs.ErrNotExist) {
			s, err = tok.GenerateSigner(u.Object, create)
		}
		if err != nil {
			tok.Close()
			return nil, err
		}
		return &Identity{Signer: s, Key: s.PublicKey(), close: tok.Close}, nil
	}
	return nil, fmt.Errorf("agent: unsupported identity reference %q (want pkcs11: or file:)", ref)
}

// IdentityNonExtractable reports whether the identity key cannot leave its
// store (a token's sensitive, non-extractable key); false for files.
func IdentityNonExtractable(id *Identity) (bool, error) {
	if k, ok := id.Signer.(interface{ NonExtractable() (bool, error) }); ok {
		return k.NonExtractable()
	}
	return false, nil
}

// BootstrapAttest obtains the SIM by attestation: no auth key, no secret
// provisioned — the device proves it holds an identity key manufacturing
// registered (identityRef), by signing the server's challenge together
// with the WireGuard key it registers (made in o.KeyRef's store, as with
// Bootstrap). Running it again with the same keys returns the same SIM.
// o.AuthKey is ignored.
func BootstrapAttest(ctx context.Context, o BootstrapOptions, identityRef string) (*Config, error) {
	if o.Server == "" || identityRef == "" {
		return nil, fmt.Errorf("agent: attestation bootstrap needs a server and an identity key reference")
	}
	o = o.withDefaults()
	id, err := OpenIdentity(identityRef)
	if err != nil {
		return nil, err
	}
	defer id.Close()
	ks, err := CreateKeyStore(o.KeyRef)
	if err != nil {
		return nil, err
	}
	defer CloseKeyStore(ks)

	var ch struct {
		Nonce []byte `json:"nonce"`
	}
	if err := postJSON(ctx, o, "/api/v1/attest/challenge", struct{}{}, http.StatusCreated, &ch); err != nil {
		return nil, err
	}
	wg := ks.PublicKey()
	msg, err := attest.Message(ch.Nonce, id.Key, wg)
	if err != nil {
		return nil, fmt.Errorf("agent: attestation challenge: %w", err)
	}
	sig, err := attest.Sign(id, msg)
	if err != nil {
		return nil, fmt.Errorf("agent: signing the challenge with %s: %w", identityRef, err)
	}
	body := map[string]any{"identityKey": id.Key.String(), "publicKey": wg.String(), "nonce": base64.StdEncoding.EncodeToString(ch.Nonce),
		"signature": base64.StdEncoding.EncodeToString(sig), "name": o.Name}
	var raw json.RawMessage
	if err := postJSON(ctx, o, "/api/v1/attest/bootstrap", body, http.StatusOK, &raw); err != nil {
		return nil, err
	}
	return o.saveAnswer(raw)
}

// postJSON posts body to the API path and decodes a want-status answer.
func postJSON(ctx context.Context, o BootstrapOptions, path string, body any, want int, out any) error {
	b, _ := json.Marshal(body)
	return post(ctx, o, path, b, nil, want, out)
}

// post sends a JSON body with extra headers and decodes a want answer
// into out; another status is an error naming the platform's code.
func post(ctx context.Context, o BootstrapOptions, path string, b []byte, hdr http.Header, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(o.Server, "/")+path, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent())
	resp, err := o.Client.Do(req)
	if err != nil {
		return fmt.Errorf("agent: %s: %w", path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("agent: %s: reading answer: %w", path, err)
	}
	if resp.StatusCode != want {
		var ae fleet.Error
		if json.Unmarshal(raw, &ae) == nil && ae.Code != "" {
			return fmt.Errorf("agent: %s refused (%d %s, field %q): %s", path, resp.StatusCode, ae.Code, ae.Field, ae.Message)
		}
		return fmt.Errorf("agent: %s refused: HTTP %d", path, resp.StatusCode)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("agent: %s answer: %w", path, err)
	}
	return nil
}

var defaultClient = &http.Client{Timeout: 30 * time.Second}
