// SPDX-License-Identifier: Apache-2.0

package controlplane

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/keyproof"
	"github.com/wirefleet/wirefleet/wgkey"
)

// Operations scoped by an auth key rather than an operator token: what a
// device holding the key may do to the SIMs bootstrapped with that key.
// The Arc adapter uses them.

// UsableAuthKey returns the auth key if it exists and is neither revoked
// nor expired. It does not check the use count: a session of a key whose
// uses are spent still reaches the SIMs it created. Use
// AuthenticateAuthKey to admit a new session.
func (s *Service) UsableAuthKey(ctx context.Context, id string) (fleet.AuthKey, error) {
	k, err := s.st.AuthKey(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return k, fleet.Errorf(fleet.CodeUnauthorized, "authKeyId", "unknown auth key")
	} else if err != nil {
		return k, err
	}
	if k.Revoked || !s.now().Before(k.Expires) {
		return k, fleet.Errorf(fleet.CodeUnauthorized, "authKeyId", "auth key revoked or expired")
	}
	return k, nil
}

// ErrAuthKeyDenied is the one answer AuthenticateAuthKey gives to every
// refused key, so that the reply reveals nothing about the key's state.
var ErrAuthKeyDenied = fleet.Errorf(fleet.CodeUnauthorized, "authKey", "invalid auth key id or secret")

// AuthenticateAuthKey admits a new session of the auth key id with secret:
// the key must exist, match secret, be neither revoked nor expired, and
// have uses left (a spent one-time key opens no new session). Every
// refusal is ErrAuthKeyDenied; other errors are the store's.
func (s *Service) AuthenticateAuthKey(ctx context.Context, id, secret string) (fleet.AuthKey, error) {
	k, err := s.st.AuthKey(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return fleet.AuthKey{}, ErrAuthKeyDenied
	} else if err != nil {
		return fleet.AuthKey{}, err
	}
	if subtle.ConstantTimeCompare([]byte(HashSecret(secret)), []byte(k.Hash)) != 1 {
		return fleet.AuthKey{}, ErrAuthKeyDenied
	}
	if k.Revoked || !s.now().Before(k.Expires) || (k.MaxUses > 0 && k.Uses >= k.MaxUses) {
		return fleet.AuthKey{}, ErrAuthKeyDenied
	}
	return k, nil
}

// scopedSIM reads a SIM the key may act on: bootstrapped with that very
// key, and not terminated. Others are reported as not found, so a key
// cannot probe SIMs of other keys, operators or groups.
func scopedSIM(ctx context.Context, r store.Reader, k fleet.AuthKey, simID string) (fleet.SIM, error) {
	sim, err := r.SIM(ctx, simID)
	if err != nil || k.ID == "" || sim.AuthKeyID != k.ID || sim.GroupID != k.GroupID || sim.Status == fleet.StatusTerminated {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return sim, err
		}
		return fleet.SIM{}, fleet.Errorf(fleet.CodeNotFound, "simId", "not found")
	}
	return sim, nil
}

// ScopedSession returns the session of a SIM bootstrapped with k.
func (s *Service) ScopedSession(ctx context.Context, k fleet.AuthKey, simID string) (fleet.SIM, fleet.Session, error) {
	sim, err := scopedSIM(ctx, s.st, k, simID)
	if err != nil {
		return sim, fleet.Session{}, err
	}
	return s.SessionFor(ctx, System, sim.ID)
}

// ScopedRekey replaces the key of an active SIM bootstrapped with k with
// pub, or with a generated key returned in the session when pub is zero.
// A suspended SIM is not re-keyed (bad_state): that would let a device
// holding the key replace the key an operator suspended.
//
// The auth key alone is not enough: every device it bootstrapped holds it.
// proof must show the caller holds the SIM's current private key
// (keyproof.Rekey, over the SIM id and pub). Only a group with
// ArcRekeyWithAuthKey accepts a re-key without one (SORACOM's behaviour,
// off by default); the event then says so, and a gateway holding a
// session of the SIM alerts (key-replaced).
func (s *Service) ScopedRekey(ctx context.Context, k fleet.AuthKey, simID string, pub wgkey.Public, proof *keyproof.Reply) (fleet.SIM, fleet.Session, error) {
	if err := fleet.ValidatePublicKey("arcClientPeerPublicKey", pub); !pub.IsZero() && err != nil {
		return fleet.SIM{}, fleet.Session{}, err
	}
	requested := pub
	var priv wgkey.Private
	if pub.IsZero() {
		var err error
		if priv, err = wgkey.NewPrivate(); err != nil {
			return fleet.SIM{}, fleet.Session{}, err
		}
		pub = priv.Public()
	}
	a := Actor{Kind: "authkey", ID: k.ID}
	var sim fleet.SIM
	err := s.st.Update(ctx, func(tx store.Tx) error {
		var err error
		if sim, err = scopedSIM(ctx, tx, k, simID); err != nil {
			return err
		}
		if sim.Status != fleet.StatusActive {
			return fleet.Errorf(fleet.CodeBadState, "status", "the SIM is %s", sim.Status)
		}
		proved := false
		if proof != nil {
			st := keyproof.Statement{Purpose: keyproof.Rekey, Key: sim.PublicKey, SIMID: sim.ID, NewKey: requested}
			if err := s.checkKeyProof(ctx, tx, proof, st); err != nil {
				return err
			}
			proved = true
		} else {
			allowed := false
			if sim.GroupID != "" {
				g, err := tx.Group(ctx, sim.GroupID)
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
				allowed = err == nil && g.Settings.ArcRekeyWithAuthKey
			}
			if !allowed {
				s.log.Warn("arc re-key refused: no key proof", "sim", sim.ID, "authkey", k.ID)
				return errProofMissing
			}
		}
		sim.PublicKey, sim.NextPublicKey = pub, wgkey.Public{}
		sim.Updated = s.now()
		sim.KeySet, sim.RotateBy = sim.Updated, time.Time{}
		if err := tx.UpdateSIM(ctx, sim); err != nil {
			return storeErr(err, "")
		}
		tx.Publish(fleet.Change{Kind: fleet.ChangeSIM, ID: sim.ID})
		return s.event(ctx, tx, a, "sim.set_key", "sim", sim.ID, map[string]any{"publicKey": pub.String(), "keyProof": proved})
	})
	if err != nil {
		return fleet.SIM{}, fleet.Session{}, storeErr(err, "")
	}
	sim, sess, err := s.SessionFor(ctx, System, sim.ID)
	sess.PrivateKey = priv
	return sim, sess, err
}

// AttestedBootstrap is network-attested bootstrap: the caller has checked
// that source lies in a network the operator trusts, mapped to groupID. The
// SIM bound to source is created on first call; every call gives it a new
// generated key (the old one is retired at once) and returns the session
// with the private key. group is a group name ("" for none), resolved at
// each call so that the operator may create it after configuring the network.
func (s *Service) AttestedBootstrap(ctx context.Context, source string, group string) (fleet.SIM, fleet.Session, error) {
	priv, err := wgkey.NewPrivate()
	if err != nil {
		return fleet.SIM{}, fleet.Session{}, err
	}
	pub := priv.Public()
	a := Actor{Kind: "network", ID: source}
	var sim fleet.SIM
	err = s.st.Update(ctx, func(tx store.Tx) error {
		id, err := tx.SIMBinding(ctx, source)
		switch {
		case errors.Is(err, store.ErrNotFound):
			groupID := ""
			if group != "" {
				g, err := tx.GroupByName(ctx, group)
				if err != nil {
					return fmtGroupErr(group, err)
				}
				groupID = g.ID
			}
			if sim, err = s.newSIM(ctx, tx, SIMSpec{Name: "arc-" + source, PublicKey: pub, GroupID: groupID, Tags: map[string]string{"attested.source": source}}, ""); err != nil {
				return err
			}
			if err := tx.BindSIM(ctx, source, sim.ID); err != nil {
				return err
			}
			return s.event(ctx, tx, a, "sim.bootstrap", "sim", sim.ID, map[string]any{"imsi": sim.IMSI, "address": sim.Address.String(), "attested": true})
		case err != nil:
			return err
		}
		sim, err = s.rekeyBootstrapped(ctx, tx, a, id, pub, "the SIM bound to this source", "attested", true)
		return err
	})
	if err != nil {
		return fleet.SIM{}, fleet.Session{}, storeErr(err, "")
	}
	s.log.Info("sim attested bootstrap", "sim", sim.ID, "source", source)
	sim, sess, err := s.SessionFor(ctx, System, sim.ID)
	sess.PrivateKey = priv
	return sim, sess, err
}

// fmtGroupErr reports a trusted network whose group is missing: the
// operator's configuration, not the device, is at fault.
func fmtGroupErr(name string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fleet.Errorf(fleet.CodeBadState, "", "the trusted network's group %q does not exist", name)
	}
	return fmt.Errorf("trusted network's group %s: %w", name, err)
}

// RecordDeviceEvent adds a device-side event (for example from the
// gateway: "device.handshake", "device.endpoint_changed") to the audit
// trail, attributed to the SIM. Actions must start with "device." so they
// can never be mistaken for operator actions.
func (s *Service) RecordDeviceEvent(ctx context.Context, simID, action string, details map[string]any) error {
	if err := checkDeviceAction(action); err != nil {
		return err
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.SIM(ctx, simID); err != nil {
			return storeErr(err, "simId")
		}
		return s.event(ctx, tx, Actor{Kind: "sim", ID: simID}, action, "sim", simID, details)
	})
	return storeErr(err, "simId")
}

// AgentChangeEvery is the least time between two changes of a SIM's
// agent: a device flipping its report on every request makes one write
// and one event in this time, not one a request.
const AgentChangeEvery = 10 * time.Minute

// ReportAgent records the software a device says it runs (its metadata
// report, PUT /v1/subscriber/agent), with a "device.agent" event when it
// changes; the same report again writes nothing, nor does a change within
// AgentChangeEvery of the last (the device's next request after it tells
// again). A report that is not a short printable label is refused.
func (s *Service) ReportAgent(ctx context.Context, simID, agent string) error {
	if agent == "" {
		return nil
	}
	if err := fleet.ValidateLabel("agent", agent, fleet.MaxAgentLen); err != nil {
		return err
	}
	settled := func(sim fleet.SIM) bool {
		return sim.Agent == agent || sim.Agent != "" && s.now().Sub(sim.AgentSeen) < AgentChangeEvery
	}
	// Read first, outside a write transaction: most reports change nothing.
	sim, err := s.st.SIM(ctx, simID)
	if err != nil {
		return storeErr(err, "simId")
	}
	if settled(sim) {
		return nil
	}
	err = s.st.Update(ctx, func(tx store.Tx) error {
		sim, err := tx.SIM(ctx, simID)
		if err != nil {
			return storeErr(err, "simId")
		}
		if settled(sim) {
			return nil
		}
		if err := tx.SetSIMAgent(ctx, simID, agent, s.now()); err != nil {
			return err
		}
		return s.event(ctx, tx, Actor{Kind: "sim", ID: simID}, "device.agent", "sim", simID, map[string]any{"agent": agent, "from": sim.Agent})
	})
	return storeErr(err, "simId")
}

// checkDeviceAction refuses what is not a device event's action.
func checkDeviceAction(action string) error {
	if !strings.HasPrefix(action, "device.") || len(action) > 64 {
		return fleet.Errorf(fleet.CodeInvalid, "action", "device event actions start with \"device.\" (at most 64 bytes)")
	}
	return nil
}

// DeviceEvent is one event a gateway records of a device.
type DeviceEvent struct {
	SIMID, Action string
	Details       map[string]any
}

// RecordDeviceEvents records a gateway's device events in one transaction.
// The SIMs are not read again: the gateway records events of SIMs it has
// just resolved, and a read per event was a third of a batch's cost (an
// event of a SIM deleted a moment before stays in the trail, as it
// happened). An invalid action fails the call before anything is
// written. Should the batch fail, each event is tried on its own; the
// first error is returned.
func (s *Service) RecordDeviceEvents(ctx context.Context, evs []DeviceEvent) error {
	for _, ev := range evs {
		if err := checkDeviceAction(ev.Action); err != nil {
			return err
		}
	}
	apply := func(tx store.Tx, ev DeviceEvent) error {
		return s.event(ctx, tx, Actor{Kind: "sim", ID: ev.SIMID}, ev.Action, "sim", ev.SIMID, ev.Details)
	}
	return updateBatch(ctx, s.st, evs, apply)
}

// PromoteNextKey completes a key rotation: called (by the gateway) when the
// device first completes a handshake with its announced next key, it makes
// that key current and retires the old one. A key that is not the SIM's
// next key changes nothing and reports bad_state.
func (s *Service) PromoteNextKey(ctx context.Context, simID string, key wgkey.Public) (fleet.SIM, error) {
	return s.modifySIM(ctx, System, simID, "sim.rotate_key", map[string]any{"publicKey": key.String()}, func(_ store.Tx, sim *fleet.SIM) error {
		if key.IsZero() || sim.NextPublicKey != key {
			return fleet.Errorf(fleet.CodeBadState, "publicKey", "not the SIM's next key")
		}
		sim.PublicKey, sim.NextPublicKey = key, wgkey.Public{}
		return nil
	})
}

// RecordGatewayEvent adds a gateway-side event that concerns no single SIM
// (for example "gateway.flood") to the audit trail, attributed to the
// gateway. Actions must start with "gateway.".
func (s *Service) RecordGatewayEvent(ctx context.Context, gatewayID, action string, details map[string]any) error {
	if !strings.HasPrefix(action, "gateway.") || len(action) > 64 {
		return fleet.Errorf(fleet.CodeInvalid, "action", "gateway event actions start with \"gateway.\" (at most 64 bytes)")
	}
	return s.st.Update(ctx, func(tx store.Tx) error {
		return s.event(ctx, tx, Actor{Kind: "gateway", ID: gatewayID}, action, "gateway", gatewayID, details)
	})
}

// rekeyBootstrapped gives the SIM already bound to a bootstrapping device
// (by its card, by its source) the key the device brings: the next key
// and a required rotation cleared, the change published, a sim.set_key
// event with the binding's detail (key, value). A SIM that is not active
// is refused; what names it in the error.
func (s *Service) rekeyBootstrapped(ctx context.Context, tx store.Tx, a Actor, id string, pub wgkey.Public, what, key string, value any) (fleet.SIM, error) {
	sim, err := tx.SIM(ctx, id)
	if err != nil {
		return fleet.SIM{}, err
	}
	if sim.Status != fleet.StatusActive {
		return fleet.SIM{}, fleet.Errorf(fleet.CodeBadState, "status", "%s is %s", what, sim.Status)
	}
	sim.PublicKey, sim.NextPublicKey = pub, wgkey.Public{}
	sim.Updated = s.now()
	sim.KeySet, sim.RotateBy = sim.Updated, time.Time{}
	if err := tx.UpdateSIM(ctx, sim); err != nil {
		return fleet.SIM{}, err
	}
	tx.Publish(fleet.Change{Kind: fleet.ChangeSIM, ID: sim.ID})
	return sim, s.event(ctx, tx, a, "sim.set_key", "sim", sim.ID, map[string]any{"publicKey": pub.String(), key: value})
}
