// SPDX-License-Identifier: Apache-2.0

// Package pkcs11store keeps a WireGuard static key on a PKCS#11 token (a
// secure element, an HSM, a smart card, SoftHSM) where it is generated,
// marked sensitive and non-extractable, and used only through
// CKM_ECDH1_DERIVE. It implements keystore.Store: the engine gets the public
// key and DH results, never the private key.
//
// X25519 keys come in two shapes. PKCS#11 3.0 names them CKK_EC_MONTGOMERY
// (CKM_EC_MONTGOMERY_KEY_PAIR_GEN); SoftHSM 2.6 and some other tokens only
// know them as CKK_EC_EDWARDS keys whose CKA_EC_PARAMS is the X25519 OID
// (1.3.101.110). Generate tries the standard type first and falls back.
//
// The package needs cgo (the module is loaded with dlopen); built without
// cgo, OpenToken fails with ErrNoCgo and the rest of the API stays.
package pkcs11store
