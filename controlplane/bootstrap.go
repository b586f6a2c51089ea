// SPDX-License-Identifier: Apache-2.0

package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/keyproof"
	"github.com/wirefleet/wirefleet/wgkey"
)

// BootstrapRequest is a device asking for its SIM.
type BootstrapRequest struct {
	AuthKey     string
	PublicKey   wgkey.Public
	GenerateKey bool
	Name        string
	// KeyProof proves the device holds PublicKey's private key (purpose
	// keyproof.Bootstrap). It is required when PublicKey is already
	// registered — the answer then reveals that SIM, which the shared auth
	// key alone must not — and checked whenever given.
	KeyProof *keyproof.Reply
}

// Bootstrap gives a device its SIM and session in exchange for an auth key.
// Presenting an already registered key again returns the same SIM without
// using the auth key again, so a device that lost the answer can retry —
// but only with a proof that it holds the key's private half
// (req.KeyProof): public keys are not secret, and anyone holding the auth
// key would otherwise learn which SIM a key belongs to.
func (s *Service) Bootstrap(ctx context.Context, req BootstrapRequest) (fleet.SIM, fleet.Session, error) {
	if !strings.HasPrefix(req.AuthKey, AuthKeyPrefix) {
		return fleet.SIM{}, fleet.Session{}, fleet.Errorf(fleet.CodeUnauthorized, "authKey", "missing or malformed auth key")
	}
	hash := HashSecret(req.AuthKey)
	return s.bootstrap(ctx, req, func(tx store.Tx) (fleet.AuthKey, error) { return tx.AuthKeyByHash(ctx, hash) })
}

// BootstrapWithKeyID is Bootstrap for adapters that have already
// authenticated the auth key by other means (the Arc session token);
// req.AuthKey is ignored.
func (s *Service) BootstrapWithKeyID(ctx context.Context, keyID string, req BootstrapRequest) (fleet.SIM, fleet.Session, error) {
	return s.bootstrap(ctx, req, func(tx store.Tx) (fleet.AuthKey, error) { return tx.AuthKey(ctx, keyID) })
}

func (s *Service) bootstrap(ctx context.Context, req BootstrapRequest, lookup func(store.Tx) (fleet.AuthKey, error)) (fleet.SIM, fleet.Session, error) {
	if req.GenerateKey == !req.PublicKey.IsZero() {
		return fleet.SIM{}, fleet.Session{}, fleet.Errorf(fleet.CodeInvalid, "publicKey", "give either publicKey or generateKey")
	}
	if err := fleet.ValidateLabel("name", req.Name, 128); err != nil {
		return fleet.SIM{}, fleet.Session{}, err
	}
	if !req.GenerateKey {
		if err := fleet.ValidatePublicKey("publicKey", req.PublicKey); err != nil {
			return fleet.SIM{}, fleet.Session{}, err
		}
	}
	var priv wgkey.Private
	if req.GenerateKey {
		var err error
		if priv, err = wgkey.NewPrivate(); err != nil {
			return fleet.SIM{}, fleet.Session{}, err
		}
		req.PublicKey = priv.Public()
	}
	var sim fleet.SIM
	var group *fleet.Group
	err := s.st.Update(ctx, func(tx store.Tx) error {
		k, err := lookup(tx)
		if errors.Is(err, store.ErrNotFound) {
			return fleet.Errorf(fleet.CodeUnauthorized, "authKey", "unknown auth key")
		} else if err != nil {
			return err
		}
		if k.Revoked || !s.now().Before(k.Expires) {
			return fleet.Errorf(fleet.CodeUnauthorized, "authKey", "auth key revoked or expired")
		}
		actor := Actor{Kind: "authkey", ID: k.ID}
		proved := false
		if req.KeyProof != nil {
			if err := s.checkKeyProof(ctx, tx, req.KeyProof, keyproof.Statement{Purpose: keyproof.Bootstrap, Key: req.PublicKey}); err != nil {
				return err
			}
			proved = true
		}
		existing, err := tx.SIMByPublicKey(ctx, req.PublicKey)
		switch {
		case err == nil:
			if existing.AuthKeyID != k.ID || existing.GroupID != k.GroupID || existing.Status != fleet.StatusActive {
				return fleet.Errorf(fleet.CodeConflict, "publicKey", "key belongs to another SIM")
			}
			if !proved {
				return errProofMissing
			}
			sim = existing
		case errors.Is(err, store.ErrNotFound):
			if err := useGroup(ctx, tx, k.GroupID); errors.Is(err, store.ErrNotFound) {
				return fleet.Errorf(fleet.CodeBadState, "authKey", "the auth key's group no longer exists")
			} else if err != nil {
				return err
			}
			if err := tx.UseAuthKey(ctx, k.ID); errors.Is(err, store.ErrExhausted) {
				return fleet.Errorf(fleet.CodeUnauthorized, "authKey", "auth key has no uses left")
			} else if err != nil {
				return err
			}
			if sim, err = s.newSIM(ctx, tx, SIMSpec{Name: req.Name, Tags: k.Tags, GroupID: k.GroupID, PublicKey: req.PublicKey}, k.ID); err != nil {
				return err
			}
			if err := s.event(ctx, tx, actor, "sim.bootstrap", "sim", sim.ID, map[string]any{"imsi": sim.IMSI, "address": sim.Address.String()}); err != nil {
				return err
			}
		default:
			return err
		}
		if sim.GroupID != "" {
			g, err := tx.Group(ctx, sim.GroupID)
			if errors.Is(err, store.ErrNotFound) {
				return fleet.Errorf(fleet.CodeBadState, "authKey", "the auth key's group no longer exists")
			} else if err != nil {
				return fmt.Errorf("group %s of auth key %s: %w", sim.GroupID, k.ID, err)
			}
			group = &g
		}
		return nil
	})
	if err != nil {
		return fleet.SIM{}, fleet.Session{}, storeErr(err, "")
	}
	sess := s.session(ctx, sim, group)
	sess.PrivateKey = priv
	s.log.Info("sim bootstrapped", "sim", sim.ID, "imsi", sim.IMSI, "address", sim.Address)
	return sim, sess, nil
}

// session is what sim's device needs: both address families when the
// fleet has its IPv6 plan, each overlay range with its IPv6 twin.
func (s *Service) session(ctx context.Context, sim fleet.SIM, g *fleet.Group) fleet.Session {
	o6, err := s.Overlay6(ctx)
	if err != nil {
		// The device still gets its IPv4 session; IPv6 comes with the next.
		s.log.Warn("session without IPv6", "sim", sim.ID, "err", err)
	}
	allowed := []string{s.cfg.PlatformRange.String()}
	var allowed6 []string
	if o6.Enabled() {
		allowed6 = append(allowed6, o6.PrefixOf(s.cfg.PlatformRange).String())
	}
	if g != nil {
		if g.Settings.DeviceToDevice.Mode != fleet.D2DOff {
			allowed = append(allowed, s.cfg.Pool.String())
			allowed = append(allowed, s.reachableLANs(ctx, sim, *g)...)
			if o6.Enabled() {
				// The pool's twin, and the 4via6 view of IPv4 LANs.
				allowed6 = append(allowed6, o6.PrefixOf(s.cfg.Pool).String(), o6.Via6().String())
			}
		}
		allowed = append(allowed, g.Settings.Routes...)
		if g.Settings.Egress.Breakout {
			// Destinations beyond the fleet go through the tunnel: the
			// gateway's egress rules decide, not the device's routes.
			allowed = append(allowed, "0.0.0.0/0")
			if o6.Enabled() {
				allowed6 = append(allowed6, "::/0")
			}
		}
	}
	sess := fleet.Session{Endpoint: s.cfg.Endpoint, GatewayPublicKey: s.cfg.GatewayPublicKey(), Address: sim.Address.String() + "/32", AllowedIPs: append(allowed, allowed6...)}
	if a6 := o6.Addr(sim.Address); a6.IsValid() {
		sess.Address6 = netip.PrefixFrom(a6, 128).String()
	}
	return sess
}

// SessionFor returns a SIM's session, for exports such as wg-quick files.
func (s *Service) SessionFor(ctx context.Context, a Actor, id string) (fleet.SIM, fleet.Session, error) {
	if err := require(a, fleet.RoleViewer); err != nil {
		return fleet.SIM{}, fleet.Session{}, err
	}
	sim, err := s.st.SIM(ctx, id)
	if err != nil {
		return sim, fleet.Session{}, storeErr(err, "id")
	}
	var group *fleet.Group
	if sim.GroupID != "" {
		g, err := s.st.Group(ctx, sim.GroupID)
		if err != nil {
			return sim, fleet.Session{}, err
		}
		group = &g
	}
	return sim, s.session(ctx, sim, group), nil
}

// PrivateKeyPlaceholder stands for the device's private key in exported
// configurations: the platform does not have it.
const PrivateKeyPlaceholder = "<device private key>"

// WireGuardConfig renders a session as a wg-quick configuration file.
func WireGuardConfig(sim fleet.SIM, sess fleet.Session) string {
	priv := PrivateKeyPlaceholder
	if !sess.PrivateKey.IsZero() {
		priv = sess.PrivateKey.Base64()
	}
	var b strings.Builder
	if sim.Kind == fleet.KindSite {
		fmt.Fprintf(&b, "# wirefleet site %s (%s)\n", sim.ID, sim.Name)
	} else {
		fmt.Fprintf(&b, "# wirefleet SIM %s (IMSI %s)\n", sim.ID, sim.IMSI)
	}
	addr := sess.Address
	if sess.Address6 != "" {
		addr += ", " + sess.Address6
	}
	fmt.Fprintf(&b, "[Interface]\nPrivateKey = %s\nAddress = %s\n\n", priv, addr)
	fmt.Fprintf(&b, "[Peer]\nPublicKey = %s\n", sess.GatewayPublicKey)
	if sess.Endpoint != "" {
		fmt.Fprintf(&b, "Endpoint = %s\n", sess.Endpoint)
	}
	fmt.Fprintf(&b, "AllowedIPs = %s\n", strings.Join(sess.AllowedIPs, ", "))
	// Devices are usually behind NAT: keep the mapping alive.
	fmt.Fprintf(&b, "PersistentKeepalive = %d\n", int(25*time.Second/time.Second))
	return b.String()
}
