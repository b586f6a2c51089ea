// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"bytes"
	"context"
	"encoding/json"

	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// MetadataURL is the in-tunnel metadata service.
const MetadataURL = "http://100.127.100.127"

// RotateResult reports a key rotation.
type RotateResult struct {
	OldKey, NewKey string
	Switched       time.Duration // from switching keys to the first handshake with the new one
}

// Rotate replaces the device's WireGuard key without downtime: a new key is
// made (next to the current key file), announced over the tunnel to the
// metadata service — the running session is the credential, the device
// holds no API secret — then the engine switches to it; the session with
// the old key carries traffic until the handshake with the new one
// completes, and the gateway then retires the old key. Finally the new key
// takes the old one's place on disk, so the old key is gone.
//
// File keys rotate through a file beside the current one; PKCS#11 keys by
// slot: a new object on the token, then the old object is deleted and the
// config names the new one.
func (t *Tunnel) Rotate(ctx context.Context) (RotateResult, error) {
	var res RotateResult
	rot, err := prepareRotation(t.cfg.KeyRef)
	if err != nil {
		return res, err
	}
	res.OldKey, res.NewKey = t.ks.PublicKey().String(), rot.next.PublicKey().String()
	if err := t.announceKey(ctx, res.NewKey); err != nil {
		rot.abort()
		return res, err
	}
	before := t.gateway.Stats().LastHandshake
	start := time.Now()
	old := t.ks
	t.eng.SetKeyStore(rot.next)
	t.ks = rot.next
	for {
		if hs := t.gateway.Stats().LastHandshake; hs.After(before) && hs.After(start.Add(-time.Second)) {
			break
		}
		select {
		case <-ctx.Done():
			t.eng.SetKeyStore(old)
			t.ks = old
			rot.abort()
			return res, fmt.Errorf("agent: rotate: no handshake with the new key: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	res.Switched = time.Since(start)
	if err := rot.commit(); err != nil {
		return res, fmt.Errorf("agent: rotate: the new key is in use but the old one could not be retired: %w", err)
	}
	if t.opts.KeyStore == nil || t.opts.KeyStore != old {
		CloseKeyStore(old)
	}
	t.cfgMu.Lock()
	defer t.cfgMu.Unlock()
	if rot.ref != t.cfg.KeyRef {
		t.cfg.KeyRef = rot.ref
		if t.opts.ConfigPath != "" {
			if err := t.cfg.Save(t.opts.ConfigPath); err != nil {
				return res, fmt.Errorf("agent: rotate: the new key %s is in use but the config could not name it: %w", rot.ref, err)
			}
		}
	}
	t.log.Info("key rotated", "old", res.OldKey, "new", res.NewKey, "switch", res.Switched, "key_store", t.cfg.KeyRef)
	return res, nil
}

// announceKey registers the next public key at the metadata service,
// through the tunnel.
func (t *Tunnel) announceKey(ctx context.Context, pub string) error {
	body, _ := json.Marshal(map[string]string{"publicKey": pub})
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, MetadataURL+"/v1/subscriber/key", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := t.tunnelHTTP().Do(req)
	if err != nil {
		return fmt.Errorf("agent: rotate: announcing the next key: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("agent: rotate: the platform refused the next key: %d %s", resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	return nil
}

// tunnelHTTP is an HTTP client whose connections go through the tunnel
// (the userspace stack, or the kernel's routes to the TUN).
func (t *Tunnel) tunnelHTTP() *http.Client {
	dial := (&net.Dialer{Timeout: 10 * time.Second}).DialContext
	switch {
	case t.net != nil:
		dial = t.net.DialContext
	case t.opts.Dial != nil:
		dial = t.opts.Dial
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: userAgentTransport{&http.Transport{DialContext: dial}}}
}

// CheckIn tells the platform, through the tunnel, which agent version the
// device runs (PUT /v1/subscriber/agent): operators see it on the SIM.
func (t *Tunnel) CheckIn(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, MetadataURL+"/v1/subscriber/agent", strings.NewReader(Product()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain")
	resp, err := t.tunnelHTTP().Do(req)
	if err != nil {
		return fmt.Errorf("agent: checking in: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("agent: checking in: %d", resp.StatusCode)
	}
	return nil
}

// RotationRequired asks the metadata service, through the tunnel, whether
// the platform requires this device to replace its key (a security
// profile's action, or an operator), and by when.
func (t *Tunnel) RotationRequired(ctx context.Context) (bool, time.Time, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, MetadataURL+"/v1/subscriber", nil)
	if err != nil {
		return false, time.Time{}, err
	}
	resp, err := t.tunnelHTTP().Do(req)
	if err != nil {
		return false, time.Time{}, fmt.Errorf("agent: reading metadata: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, time.Time{}, fmt.Errorf("agent: reading metadata: %s", resp.Status)
	}
	var sub struct {
		KeyRotationRequired bool      `json:"keyRotationRequired"`
		RotateBy            time.Time `json:"rotateBy"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&sub); err != nil {
		return false, time.Time{}, fmt.Errorf("agent: reading metadata: %w", err)
	}
	return sub.KeyRotationRequired, sub.RotateBy, nil
}
