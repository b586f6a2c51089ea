// SPDX-License-Identifier: Apache-2.0

package controlplane

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/keyproof"
)

// Proof of key possession (docs/control-plane.md#proof-of-key-possession).
// An auth key is shared by every device it bootstrapped, so it cannot be
// what lets a caller see or re-key one SIM: a device that lost its
// bootstrap answer, or asks for a new key outside the tunnel, proves it
// holds the SIM's current private key by answering a challenge with a DH
// its key store computes.

// KeyProofTTL is how long a key-proof challenge may be answered.
const KeyProofTTL = 60 * time.Second

// keyProofHash is how a key-proof nonce is stored: hashed (as attestation
// nonces are) and domain-separated from them, so that one kind of nonce
// can never be spent as the other.
func keyProofHash(nonce []byte) string {
	h := sha256.Sum256(append([]byte("wirefleet key proof\x00"), nonce...))
	return hex.EncodeToString(h[:])
}

// KeyProofChallenge issues a single-use challenge. Only the hash of the
// nonce is stored; the challenge's private key is derived from the nonce
// and the issuer secret, which is not in the database.
func (s *Service) KeyProofChallenge(ctx context.Context) (keyproof.Challenge, error) {
	nonce := make([]byte, keyproof.NonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return keyproof.Challenge{}, err
	}
	now := s.now()
	c := keyproof.Challenge{Nonce: nonce, ServerKey: s.proofs.ServerKey(nonce), Expires: now.Add(KeyProofTTL)}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.DeleteExpiredChallenges(ctx, now); err != nil {
			return err
		}
		return tx.InsertChallenge(ctx, keyProofHash(nonce), c.Expires)
	})
	if err != nil {
		return keyproof.Challenge{}, storeErr(err, "")
	}
	return c, nil
}

// Why a key proof was refused, for the log (the answer says only that a
// valid proof is required).
var (
	errProofMissing = fleet.Errorf(fleet.CodeKeyProof, "keyProof", "this needs a proof that you hold the SIM's current private key: answer POST /api/v1/key-proof/challenge")
	errProofInvalid = fleet.Errorf(fleet.CodeKeyProof, "keyProof", "the key proof does not verify, or its challenge is unknown, spent or expired: answer a fresh challenge")
)

// checkKeyProof verifies p for st (st.Nonce is taken from p) and spends
// its challenge in tx. The MAC is checked before the database is touched.
func (s *Service) checkKeyProof(ctx context.Context, tx store.Tx, p *keyproof.Reply, st keyproof.Statement) error {
	if p == nil {
		return errProofMissing
	}
	st.Nonce = p.Nonce
	if !s.proofs.Verify(st, p.Proof) {
		s.log.Warn("key proof refused", "reason", "does not verify", "purpose", st.Purpose, "sim", st.SIMID)
		return errProofInvalid
	}
	if err := tx.ConsumeChallenge(ctx, keyProofHash(p.Nonce), s.now()); errors.Is(err, store.ErrNotFound) {
		s.log.Warn("key proof refused", "reason", "challenge unknown, spent or expired", "purpose", st.Purpose, "sim", st.SIMID)
		return errProofInvalid
	} else if err != nil {
		return err
	}
	return nil
}
