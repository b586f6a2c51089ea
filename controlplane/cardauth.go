// SPDX-License-Identifier: Apache-2.0

package controlplane

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/milenage"
)

// Bootstrap by SIM card: the platform is the card's authentication
// centre. It challenges the card with MILENAGE (RAND, AUTN), checks its
// answer (RES against XRES), and the cipher key CK both then hold signs
// the device's later requests (SORACOM Krypton's keys API; the wire
// routes are in arcapi). The lifetimes are documented in
// docs/control-plane.md.
const (
	// CardKeyPending is how long a challenge may be answered.
	CardKeyPending = 5 * time.Minute
	// CardKeyVerified is how long a verified key signs requests: the
	// clients cache it an hour.
	CardKeyVerified = time.Hour
)

// cardAMF is the AMF of the platform's challenges: the separation bit set
// (TS 33.102 Annex H), as E-UTRAN-capable cards expect.
var cardAMF = []byte{0x80, 0x00}

// CardChallenge is a challenge for a SIM card.
type CardChallenge struct {
	KeyID      string
	RAND, AUTN []byte
}

// secretBox opens what the settings key sealed.
type secretBox interface {
	Seal(string) (string, error)
	Open(string) (string, error)
}

// cardCipher opens a card's keys.
func (s *Service) cardCipher(c fleet.SIMCard) (*milenage.Cipher, error) {
	box, ok := s.cfg.Secrets.(secretBox)
	if !ok {
		return nil, fleet.Errorf(fleet.CodeBadState, "", "this platform has no settings key to open SIM cards' keys with")
	}
	kiHex, err := box.Open(c.KiSealed)
	if err != nil {
		return nil, err
	}
	opcHex, err := box.Open(c.OPcSealed)
	if err != nil {
		return nil, err
	}
	ki, err1 := hex.DecodeString(kiHex)
	opc, err2 := hex.DecodeString(opcHex)
	if err1 != nil || err2 != nil {
		return nil, errors.New("a SIM card's stored keys do not decode")
	}
	return milenage.New(ki, opc)
}

// errUnknownCard answers every failure to find an active card alike.
var errUnknownCard = fleet.Errorf(fleet.CodeNotFound, "imsi", "no active SIM card with this IMSI")

// ChallengeCard starts an AKA exchange with the card of imsi: a fresh SQN
// (never one used before, even by another node at once), a random RAND,
// and a pending key. With auts (the card's answer to an earlier challenge
// rand whose SQN it found out of range), the network's SQN is first
// resynchronised to the card's, after MAC-S proves the AUTS is the card's.
func (s *Service) ChallengeCard(ctx context.Context, imsi string, rnd, auts []byte) (CardChallenge, error) {
	if err := fleet.ValidateCardIMSI(imsi); err != nil {
		return CardChallenge{}, err
	}
	for attempt := 0; ; attempt++ {
		card, err := s.st.SIMCardByIMSI(ctx, imsi)
		if errors.Is(err, store.ErrNotFound) || err == nil && card.Status != fleet.CardActive {
			s.cardAttempt(ctx, imsi, "", "unknown_card")
			return CardChallenge{}, errUnknownCard
		} else if err != nil {
			return CardChallenge{}, storeErr(err, "")
		}
		c, err := s.cardCipher(card)
		if err != nil {
			return CardChallenge{}, err
		}
		last := milenage.SQN(card.SQN)
		if auts != nil {
			if len(rnd) != milenage.RANDSize || len(auts) != milenage.AUTSSize {
				return CardChallenge{}, fleet.Errorf(fleet.CodeInvalid, "auts", "AUTS is 14 bytes, with the 16-byte RAND it answers")
			}
			ms, err := c.Resync(rnd, auts)
			if err != nil {
				s.cardAttempt(ctx, imsi, card.ICCID, "bad_auts")
				return CardChallenge{}, fleet.Errorf(fleet.CodeInvalid, "auts", "the AUTS is not this card's")
			}
			if ms > last {
				last = ms // the card is ahead: continue after it
			}
		}
		next := last.Next()
		v := c.NewVector(randBytes(milenage.RANDSize), next, cardAMF)
		box := s.cfg.Secrets.(secretBox)
		ck, err := box.Seal(hex.EncodeToString(v.CK))
		if err != nil {
			return CardChallenge{}, err
		}
		now := s.now()
		h := sha256.Sum256(v.XRES)
		key := fleet.CardKey{ID: "ck_" + hex.EncodeToString(randBytes(16)), ICCID: card.ICCID, XRESHash: hex.EncodeToString(h[:]), CKSealed: ck, Expires: now.Add(CardKeyPending), Created: now}
		err = s.st.Update(ctx, func(tx store.Tx) error {
			if err := tx.AdvanceCardSQN(ctx, card.ICCID, card.SQN, uint64(next)); err != nil {
				return err
			}
			if _, err := tx.DeleteExpiredCardKeys(ctx, now); err != nil {
				return err
			}
			if err := tx.InsertCardKey(ctx, key); err != nil {
				return err
			}
			return s.event(ctx, tx, System, "sim_card.challenge", "sim_card", card.ICCID, map[string]any{"resync": auts != nil})
		})
		if errors.Is(err, store.ErrStale) && attempt < 5 {
			continue // another challenge took this SQN first: take the next
		}
		if err != nil {
			return CardChallenge{}, storeErr(err, "")
		}
		return CardChallenge{KeyID: key.ID, RAND: v.RAND, AUTN: v.AUTN}, nil
	}
}

// VerifyCardKey checks the card's RES for a pending key: a match makes
// the key verified for CardKeyVerified; a mismatch burns it (one answer
// per challenge, so RES cannot be guessed).
func (s *Service) VerifyCardKey(ctx context.Context, keyID string, res []byte) error {
	now := s.now()
	var iccid string
	err := s.st.Update(ctx, func(tx store.Tx) error {
		k, err := tx.CardKey(ctx, keyID)
		if errors.Is(err, store.ErrNotFound) || err == nil && (k.Verified || !now.Before(k.Expires)) {
			return fleet.Errorf(fleet.CodeNotFound, "keyId", "no pending key with this id (unknown, expired, or already answered)")
		} else if err != nil {
			return err
		}
		iccid = k.ICCID
		h := sha256.Sum256(res)
		want, _ := hex.DecodeString(k.XRESHash)
		if subtle.ConstantTimeCompare(h[:], want) != 1 {
			return errWrongRES // burnt below, in a transaction of its own
		}
		k.Verified, k.Expires = true, now.Add(CardKeyVerified)
		if err := tx.UpdateCardKey(ctx, k); err != nil {
			return err
		}
		return s.event(ctx, tx, System, "sim_card.verified", "sim_card", k.ICCID, nil)
	})
	if errors.Is(err, errWrongRES) {
		// One answer per challenge: the key is gone, so RES cannot be
		// guessed at by asking again.
		s.st.Update(ctx, func(tx store.Tx) error {
			if err := tx.DeleteCardKey(ctx, keyID); err != nil {
				return err
			}
			return s.event(ctx, tx, System, "sim_card.verify_failed", "sim_card", iccid, nil)
		})
		s.log.Warn("SIM card answered a wrong RES", "iccid", iccid)
		return fleet.Errorf(fleet.CodeUnauthorized, "res", "the card's answer does not match")
	}
	return storeErr(err, "")
}

var errWrongRES = errors.New("wrong RES")

// cardAttempt records a refused attempt that touched no key (an unknown
// IMSI) so attempts are audited too.
func (s *Service) cardAttempt(ctx context.Context, imsi, iccid, reason string) {
	s.st.Update(ctx, func(tx store.Tx) error {
		return s.event(ctx, tx, System, "sim_card.refused", "sim_card", iccid, map[string]any{"imsi": imsi, "reason": reason})
	})
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
