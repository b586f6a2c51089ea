// SPDX-License-Identifier: Apache-2.0

package controlplane

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"strconv"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/api/apiv1"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/milenage"
	"github.com/wirefleet/wirefleet/keyproof"
	"github.com/wirefleet/wirefleet/wgkey"
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
	card, err := s.st.SIMCardByIMSI(ctx, imsi)
	if errors.Is(err, store.ErrNotFound) || err == nil && card.Status != fleet.CardActive {
		s.cardAttempt(ctx, imsi, "", "unknown_card")
		s.observeCard("challenge", "unknown_card")
		return CardChallenge{}, errUnknownCard
	} else if err != nil {
		return CardChallenge{}, storeErr(err, "")
	}
	c, err := s.cardCipher(card)
	if err != nil {
		return CardChallenge{}, err
	}
	var cardSQN milenage.SQN // the card's own, from a resync
	if auts != nil {
		if len(rnd) != milenage.RANDSize || len(auts) != milenage.AUTSSize {
			return CardChallenge{}, fleet.Errorf(fleet.CodeInvalid, "auts", "AUTS is 14 bytes, with the 16-byte RAND it answers")
		}
		ms, err := c.Resync(rnd, auts)
		if err != nil {
			s.cardAttempt(ctx, imsi, card.ICCID, "bad_auts")
			s.observeCard("challenge", "bad_auts")
			return CardChallenge{}, fleet.Errorf(fleet.CodeInvalid, "auts", "the AUTS is not this card's")
		}
		cardSQN = ms
	}
	box := s.cfg.Secrets.(secretBox)
	for attempt := 0; ; attempt++ {
		var key fleet.CardKey
		var v milenage.Vector
		// The SQN is read and advanced in one transaction (compare and
		// set), so concurrent challenges on this node or another never
		// carry one SQN; a lost race reads again and takes the next.
		err = s.st.Update(ctx, func(tx store.Tx) error {
			cur, err := tx.SIMCard(ctx, card.ICCID)
			if err != nil {
				return err
			}
			if cur.Status != fleet.CardActive {
				return store.ErrNotFound
			}
			last := max(milenage.SQN(cur.SQN), cardSQN) // a card ahead: continue after it
			next := last.Next()
			v = c.NewVector(randBytes(milenage.RANDSize), next, cardAMF)
			ck, err := box.Seal(hex.EncodeToString(v.CK))
			if err != nil {
				return err
			}
			now := s.now()
			h := sha256.Sum256(v.XRES)
			key = fleet.CardKey{ID: "ck-" + hex.EncodeToString(randBytes(16)), ICCID: card.ICCID, XRESHash: hex.EncodeToString(h[:]), CKSealed: ck, Expires: now.Add(CardKeyPending), Created: now}
			if err := tx.AdvanceCardSQN(ctx, card.ICCID, cur.SQN, uint64(next)); err != nil {
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
		if errors.Is(err, store.ErrStale) && attempt < 50 {
			// Another node's transaction won (PostgreSQL read committed):
			// back off a little, at random, so racers spread out.
			select {
			case <-ctx.Done():
				return CardChallenge{}, ctx.Err()
			case <-time.After(time.Duration(1+randBytes(1)[0]%8) * time.Millisecond):
			}
			continue
		}
		if errors.Is(err, store.ErrNotFound) {
			s.observeCard("challenge", "unknown_card")
			return CardChallenge{}, errUnknownCard // deleted or suspended meanwhile
		}
		if err != nil {
			return CardChallenge{}, storeErr(err, "")
		}
		s.observeCard("challenge", "ok")
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
		s.observeCard("verify", "wrong_res")
		return fleet.Errorf(fleet.CodeUnauthorized, "res", "the card's answer does not match")
	}
	switch fe := (*fleet.Error)(nil); {
	case err == nil:
		s.observeCard("verify", "ok")
	case errors.As(err, &fe) && fe.Code == fleet.CodeNotFound:
		s.observeCard("verify", "unknown_key")
	}
	return storeErr(err, "")
}

var errWrongRES = errors.New("wrong RES")

// ObserveCard sets a function told each SIM-card authentication step's
// outcome (step challenge, verify or signature; outcome "ok" or the
// refusal), for metrics: a run of wrong answers or bad signatures is
// someone probing. Set it before serving.
func (s *Service) ObserveCard(fn func(step, outcome string)) { s.cardObserver = fn }

func (s *Service) observeCard(step, outcome string) {
	if s.cardObserver != nil {
		s.cardObserver(step, outcome)
	}
}

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

// CardSignatureWindow is how far a signed request's timestamp may be from
// the platform's clock.
const CardSignatureWindow = 5 * time.Minute

// SignatureForm is how a device signed a provisioning request with CK.
type SignatureForm int

// The signature forms.
const (
	// SignatureSORACOM is Krypton's: SHA-256(body ‖ timestamp ‖ CK), a
	// keyed hash, not an HMAC.
	SignatureSORACOM SignatureForm = iota
	// SignatureHMAC is ours: apiv1.CardSignature (HMAC-SHA256 keyed by CK
	// over path, timestamp and body).
	SignatureHMAC
)

// CardSignedRequest is a request signed with a verified key's CK.
type CardSignedRequest struct {
	KeyID     string
	Path      string // the request's path: our form signs it
	Timestamp string // Unix milliseconds, as sent
	Body      []byte
	Signature []byte
	Form      SignatureForm
}

// CheckCardSignature checks a request signed with a verified key's CK:
// the timestamp within CardSignatureWindow, the signature compared in
// constant time, and each (keyId, timestamp) accepted once. It returns
// the card of the key.
func (s *Service) CheckCardSignature(ctx context.Context, r CardSignedRequest) (fleet.SIMCard, error) {
	keyID, body, timestamp, sig := r.KeyID, r.Body, r.Timestamp, r.Signature
	ms, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil || ms <= 0 {
		return fleet.SIMCard{}, fleet.Errorf(fleet.CodeInvalid, "timestamp", "Unix milliseconds")
	}
	now := s.now()
	if d := now.Sub(time.UnixMilli(ms)); d > CardSignatureWindow || d < -CardSignatureWindow {
		s.observeCard("signature", "stale_timestamp")
		return fleet.SIMCard{}, fleet.Errorf(fleet.CodeUnauthorized, "timestamp", "more than %v from the server's clock", CardSignatureWindow)
	}
	k, err := s.st.CardKey(ctx, keyID)
	if errors.Is(err, store.ErrNotFound) || err == nil && (!k.Verified || !now.Before(k.Expires)) {
		s.observeCard("signature", "unknown_key")
		return fleet.SIMCard{}, fleet.Errorf(fleet.CodeUnauthorized, "keyId", "no verified key with this id (unknown, expired, or its card never answered)")
	} else if err != nil {
		return fleet.SIMCard{}, storeErr(err, "")
	}
	box, ok := s.cfg.Secrets.(secretBox)
	if !ok {
		return fleet.SIMCard{}, fleet.Errorf(fleet.CodeBadState, "", "no settings key")
	}
	ckHex, err := box.Open(k.CKSealed)
	if err != nil {
		return fleet.SIMCard{}, err
	}
	ck, _ := hex.DecodeString(ckHex)
	var want []byte
	switch r.Form {
	case SignatureHMAC:
		want = apiv1.CardSignature(ck, r.Path, timestamp, body)
	default:
		h := sha256.New()
		h.Write(body)
		h.Write([]byte(timestamp))
		h.Write(ck)
		want = h.Sum(nil)
	}
	if subtle.ConstantTimeCompare(want, sig) != 1 {
		s.cardAttempt(ctx, "", k.ICCID, "bad_signature")
		s.observeCard("signature", "bad_signature")
		return fleet.SIMCard{}, fleet.Errorf(fleet.CodeUnauthorized, "signature", "the signature does not match")
	}
	var card fleet.SIMCard
	err = s.st.Update(ctx, func(tx store.Tx) error {
		if err := tx.UseCardSignature(ctx, keyID, ms, now.Add(2*CardSignatureWindow)); err != nil {
			var ce *store.ConflictError
			if errors.As(err, &ce) {
				s.observeCard("signature", "replay")
				return fleet.Errorf(fleet.CodeUnauthorized, "signature", "this signed request was already accepted (a replay)")
			}
			return err
		}
		card, err = tx.SIMCard(ctx, k.ICCID)
		if err == nil && card.Status != fleet.CardActive {
			return fleet.Errorf(fleet.CodeForbidden, "", "the SIM card is %s", card.Status)
		}
		return err
	})
	if err != nil {
		return fleet.SIMCard{}, storeErr(err, "")
	}
	s.observeCard("signature", "ok")
	return card, nil
}

// CardSubscriber returns what a card that has just signed a request
// (CheckCardSignature) may read of itself: its virtual SIM (zero before
// its first bootstrap) and the group whose settings apply — the SIM's, or
// the card's until there is a SIM (zero when neither has one).
func (s *Service) CardSubscriber(ctx context.Context, card fleet.SIMCard) (fleet.SIM, fleet.Group, error) {
	c, err := s.st.SIMCard(ctx, card.ICCID)
	if err != nil {
		return fleet.SIM{}, fleet.Group{}, storeErr(err, "")
	}
	var sim fleet.SIM
	gid := c.GroupID
	if c.SIMID != "" {
		switch sim, err = s.st.SIM(ctx, c.SIMID); {
		case errors.Is(err, store.ErrNotFound):
			sim = fleet.SIM{} // deleted since: the card makes a new one next time
		case err != nil:
			return fleet.SIM{}, fleet.Group{}, storeErr(err, "")
		default:
			gid = sim.GroupID
		}
	}
	if gid == "" {
		return sim, fleet.Group{}, nil
	}
	group, err := s.st.Group(ctx, gid)
	if errors.Is(err, store.ErrNotFound) {
		return sim, fleet.Group{}, nil
	} else if err != nil {
		return fleet.SIM{}, fleet.Group{}, storeErr(err, "")
	}
	return sim, group, nil
}

// CardBootstrapRequest is what a device asks of CardBootstrap.
type CardBootstrapRequest struct {
	// PublicKey is the device's own key; zero: the platform makes one and
	// returns its private half (Krypton's Arc bootstrap).
	PublicKey wgkey.Public
	// KeyProof proves the device holds PublicKey (optional, checked when
	// given, as for the auth-key bootstrap).
	KeyProof *keyproof.Reply
	Name     string // a first bootstrap's SIM name (default card-<ICCID>)
}

// CardBootstrap makes or re-keys the virtual SIM of a card that has just
// signed a request (CheckCardSignature): a first bootstrap creates it in
// the card's group and links it; a later one gives it the new key — the
// card's answer proves the device as the SIM's own key would. It returns
// the SIM and its session, with the private key when the platform made it.
func (s *Service) CardBootstrap(ctx context.Context, card fleet.SIMCard, req CardBootstrapRequest) (fleet.SIM, fleet.Session, error) {
	var priv wgkey.Private
	pub := req.PublicKey
	if pub.IsZero() {
		var err error
		if priv, err = wgkey.NewPrivate(); err != nil {
			return fleet.SIM{}, fleet.Session{}, err
		}
		pub = priv.Public()
	} else if err := fleet.ValidatePublicKey("publicKey", pub); err != nil {
		return fleet.SIM{}, fleet.Session{}, err
	}
	if err := fleet.ValidateLabel("name", req.Name, 128); err != nil {
		return fleet.SIM{}, fleet.Session{}, err
	}
	name := req.Name
	if name == "" {
		name = "card-" + card.ICCID
	}
	a := Actor{Kind: "sim_card", ID: card.ICCID}
	var sim fleet.SIM
	err := s.st.Update(ctx, func(tx store.Tx) error {
		c, err := tx.SIMCard(ctx, card.ICCID)
		if err != nil {
			return err
		}
		if c.SIMID != "" { // its SIM deleted since: the card makes a new one
			if _, err := tx.SIM(ctx, c.SIMID); errors.Is(err, store.ErrNotFound) {
				c.SIMID = ""
			} else if err != nil {
				return err
			}
		}
		if req.KeyProof != nil {
			if err := s.checkKeyProof(ctx, tx, req.KeyProof, keyproof.Statement{Purpose: keyproof.Bootstrap, Key: pub}); err != nil {
				return err
			}
		}
		if other, err := tx.SIMByPublicKey(ctx, pub); err == nil && other.ID != c.SIMID {
			return fleet.Errorf(fleet.CodeConflict, "publicKey", "key belongs to another SIM")
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		} else if err == nil {
			sim = other // this card's SIM already has this key: nothing to change
			if sim.Status != fleet.StatusActive {
				return fleet.Errorf(fleet.CodeBadState, "status", "the card's virtual SIM is %s", sim.Status)
			}
			return nil
		}
		if c.SIMID == "" {
			if sim, err = s.newSIM(ctx, tx, SIMSpec{Name: name, PublicKey: pub, GroupID: c.GroupID, Tags: map[string]string{"iccid": c.ICCID}}, ""); err != nil {
				return err
			}
			c.SIMID, c.Updated = sim.ID, s.now()
			if err := tx.UpdateSIMCard(ctx, c); err != nil {
				return err
			}
			return s.event(ctx, tx, a, "sim.bootstrap", "sim", sim.ID, map[string]any{"imsi": sim.IMSI, "address": sim.Address.String(), "simCard": c.ICCID})
		}
		sim, err = s.rekeyBootstrapped(ctx, tx, a, c.SIMID, pub, "the card's virtual SIM", "simCard", c.ICCID)
		return err
	})
	if err != nil {
		return fleet.SIM{}, fleet.Session{}, storeErr(err, "")
	}
	s.log.Info("sim card bootstrap", "sim", sim.ID, "iccid", card.ICCID)
	sim, sess, err := s.SessionFor(ctx, System, sim.ID)
	sess.PrivateKey = priv // zero when the device brought its key
	return sim, sess, err
}
