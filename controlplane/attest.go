// SPDX-License-Identifier: Apache-2.0

package controlplane

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"maps"
	"time"

	"github.com/wirefleet/wirefleet/attest"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/wgkey"
)

// ChallengeTTL is how long an attestation challenge may be answered: long
// enough for a secure element on a slow bus, short enough that a nonce
// cannot be stockpiled.
const ChallengeTTL = 60 * time.Second

// Challenge is a server nonce for the attestation bootstrap.
type Challenge struct {
	Nonce   []byte    `json:"nonce"` // attest.NonceSize random bytes (base64 in JSON)
	Expires time.Time `json:"expires"`
}

// AttestChallenge issues a single-use challenge. Only the SHA-256 of the
// nonce is stored: a database reader cannot answer outstanding challenges
// (they are useless without an identity key anyway, but cost nothing to
// protect). Expired challenges are pruned in the same transaction, so the
// table holds at most what the rate limit lets in during one TTL.
func (s *Service) AttestChallenge(ctx context.Context) (Challenge, error) {
	nonce := make([]byte, attest.NonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return Challenge{}, err
	}
	now := s.now()
	c := Challenge{Nonce: nonce, Expires: now.Add(ChallengeTTL)}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.DeleteExpiredChallenges(ctx, now); err != nil {
			return err
		}
		return tx.InsertChallenge(ctx, challengeHash(nonce), c.Expires)
	})
	if err != nil {
		return Challenge{}, err
	}
	return c, nil
}

func challengeHash(nonce []byte) string {
	h := sha256.Sum256(nonce)
	return hex.EncodeToString(h[:])
}

// AttestRequest is a device's answer to a challenge.
type AttestRequest struct {
	Identity  attest.PublicKey // the device's identity key
	PublicKey wgkey.Public     // the WireGuard key to register
	Nonce     []byte           // from AttestChallenge
	Signature []byte           // over attest.Message(Nonce, Identity, PublicKey)
	Name      string           // optional SIM name
}

// Why an attestation was refused: in the log and the outcome passed to
// ObserveAttest (never in the answer, which is the same for all).
const (
	RefusedSignature = "bad_signature"    // not the identity key's signature of this message
	RefusedChallenge = "challenge"        // nonce unknown, already spent or expired
	RefusedUnknown   = "unknown_identity" // key not registered
	RefusedRevoked   = "revoked_identity" // identity or its batch revoked
	RefusedUsed      = "used_identity"    // identity used, with another WireGuard key
)

// ObserveAttest has fn called with the outcome of every attestation
// bootstrap that got past input validation: "ok" or a Refused… reason, for
// metrics (a run of bad signatures or unknown identities is someone
// probing). Set it before serving.
func (s *Service) ObserveAttest(fn func(outcome string)) { s.attestObserver = fn }

func (s *Service) observeAttest(outcome string) {
	if s.attestObserver != nil {
		s.attestObserver(outcome)
	}
}

// MaxSignature bounds a signature's size (a DER P-256 signature is at most
// 72 bytes, Ed25519 64).
const MaxSignature = 128

// errAttestRefused is the one answer to every failed proof: an unknown,
// spent or expired challenge, a bad signature, an unknown, revoked or used
// identity. A prober learns nothing from it; the log says which it was.
var errAttestRefused = fleet.Errorf(fleet.CodeUnauthorized, "", "attestation refused")

// AttestBootstrap gives a device its SIM in exchange for a proof that it
// holds a registered identity key: a signature over the server's nonce,
// the identity key and the WireGuard key to register.
//
// A proof whose signature verifies spends the challenge, in its own
// transaction, whatever follows: each challenge buys one valid proof. An
// identity creates one SIM; presenting the
// same identity with the same WireGuard key again (with a fresh challenge)
// returns that SIM, so a device that lost the answer can retry; any other
// use of a used identity is refused.
func (s *Service) AttestBootstrap(ctx context.Context, req AttestRequest) (fleet.SIM, fleet.Session, error) {
	switch {
	case req.Identity.IsZero():
		return fleet.SIM{}, fleet.Session{}, fleet.Errorf(fleet.CodeRequired, "identityKey", "the device's identity public key")
	case req.PublicKey.IsZero():
		return fleet.SIM{}, fleet.Session{}, fleet.Errorf(fleet.CodeRequired, "publicKey", "the WireGuard public key to register")
	case len(req.Nonce) != attest.NonceSize:
		return fleet.SIM{}, fleet.Session{}, fleet.Errorf(fleet.CodeInvalid, "nonce", "must be the %d-byte nonce of a challenge", attest.NonceSize)
	case len(req.Signature) == 0 || len(req.Signature) > MaxSignature:
		return fleet.SIM{}, fleet.Session{}, fleet.Errorf(fleet.CodeInvalid, "signature", "must be 1 to %d bytes", MaxSignature)
	}
	if err := fleet.ValidateLabel("name", req.Name, 128); err != nil {
		return fleet.SIM{}, fleet.Session{}, err
	}
	if err := fleet.ValidatePublicKey("publicKey", req.PublicKey); err != nil {
		return fleet.SIM{}, fleet.Session{}, err
	}
	idn := req.Identity.Fingerprint()
	refuse := func(reason string) (fleet.SIM, fleet.Session, error) {
		s.log.Warn("attestation refused", "reason", reason, "identity", idn)
		s.observeAttest(reason)
		return fleet.SIM{}, fleet.Session{}, errAttestRefused
	}
	// The signature first: garbage costs a verification, not a database
	// write, and nobody who merely saw a nonce can spend it before the
	// device does.
	msg, err := attest.Message(req.Nonce, req.Identity, req.PublicKey)
	if err != nil {
		return fleet.SIM{}, fleet.Session{}, err
	}
	if !attest.Verify(req.Identity, msg, req.Signature) {
		return refuse(RefusedSignature)
	}
	now := s.now()
	err = s.st.Update(ctx, func(tx store.Tx) error { return tx.ConsumeChallenge(ctx, challengeHash(req.Nonce), now) })
	if errors.Is(err, store.ErrNotFound) {
		return refuse(RefusedChallenge)
	} else if err != nil {
		return fleet.SIM{}, fleet.Session{}, err
	}

	var (
		sim    fleet.SIM
		group  *fleet.Group
		reason string
	)
	actor := Actor{Kind: "identity", ID: idn}
	err = s.st.Update(ctx, func(tx store.Tx) error {
		i, err := tx.Identity(ctx, idn)
		if errors.Is(err, store.ErrNotFound) {
			reason = RefusedUnknown
			return errAttestRefused
		} else if err != nil {
			return err
		}
		b, err := tx.IdentityBatch(ctx, i.BatchID)
		if err != nil {
			return err
		}
		switch {
		case i.Status == fleet.IdentityRevoked || b.Revoked:
			reason = RefusedRevoked
			return errAttestRefused
		case i.Status == fleet.IdentityUsed:
			existing, err := tx.SIM(ctx, i.SIMID)
			if errors.Is(err, store.ErrNotFound) || (err == nil && (existing.PublicKey != req.PublicKey || existing.Status != fleet.StatusActive)) {
				reason = RefusedUsed
				return errAttestRefused
			} else if err != nil {
				return err
			}
			sim = existing // the same device retrying
		default:
			if _, err := tx.SIMByPublicKey(ctx, req.PublicKey); err == nil {
				return fleet.Errorf(fleet.CodeConflict, "publicKey", "key belongs to another SIM")
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if err := useGroup(ctx, tx, b.GroupID); errors.Is(err, store.ErrNotFound) {
				return fleet.Errorf(fleet.CodeBadState, "", "the identity batch's group no longer exists")
			} else if err != nil {
				return err
			}
			tags := maps.Clone(b.Tags)
			if tags == nil {
				tags = map[string]string{}
			}
			tags["attest.batch"] = b.ID
			if sim, err = s.newSIM(ctx, tx, SIMSpec{Name: req.Name, Tags: tags, GroupID: b.GroupID, PublicKey: req.PublicKey}, ""); err != nil {
				return err
			}
			i.Status, i.SIMID, i.Updated = fleet.IdentityUsed, sim.ID, now
			if err := tx.UpdateIdentity(ctx, i); err != nil {
				return err
			}
			if err := s.event(ctx, tx, actor, "sim.bootstrap", "sim", sim.ID, map[string]any{"imsi": sim.IMSI, "address": sim.Address.String(), "identity": idn, "batchId": b.ID}); err != nil {
				return err
			}
		}
		if sim.GroupID != "" {
			g, err := tx.Group(ctx, sim.GroupID)
			if errors.Is(err, store.ErrNotFound) {
				return fleet.Errorf(fleet.CodeBadState, "", "the SIM's group no longer exists")
			} else if err != nil {
				return err
			}
			group = &g
		}
		return nil
	})
	if reason != "" {
		return refuse(reason)
	}
	if err != nil {
		return fleet.SIM{}, fleet.Session{}, storeErr(err, "")
	}
	s.observeAttest("ok")
	s.log.Info("sim attested bootstrap", "sim", sim.ID, "imsi", sim.IMSI, "address", sim.Address, "identity", idn)
	return sim, s.session(ctx, sim, group), nil
}
