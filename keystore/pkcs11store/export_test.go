// SPDX-License-Identifier: Apache-2.0

//go:build cgo

package pkcs11store

import (
	"context"

	"github.com/miekg/pkcs11"
)

// ParseECPoint exposes parseECPoint to the tests.
var ParseECPoint = parseECPoint

// ReadPrivateValue asks the token for CKA_VALUE of k's private key, which a
// sensitive, non-extractable key must refuse.
func ReadPrivateValue(k *Key) ([]byte, error) {
	sh, err := k.tok.session(context.Background())
	if err != nil {
		return nil, err
	}
	defer k.tok.release(sh)
	attrs, err := k.tok.mod.ctx.GetAttributeValue(sh, k.handle(), []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
	if err != nil {
		return nil, err
	}
	return attrs[0].Value, nil
}

// CloseAllSessions closes every session of the token behind the store's
// back, as a token reset does: the login and private handles go with them.
func CloseAllSessions(t *Token) error { return t.mod.ctx.CloseAllSessions(t.slot) }

// Logout logs the application out of the token behind the store's back.
func Logout(t *Token) error {
	sh, err := t.session(context.Background())
	if err != nil {
		return err
	}
	defer t.release(sh)
	return t.mod.ctx.Logout(sh)
}

// ClaimMechanism makes t believe the token offers mech, to drive the
// fallback from a mechanism the token lists but then refuses.
func ClaimMechanism(t *Token, mech uint) { t.mechs[mech] = true }

// MontgomeryKeyPairGen is CKM_EC_MONTGOMERY_KEY_PAIR_GEN.
const MontgomeryKeyPairGen = ckmECMontgomeryKeyPairGen
