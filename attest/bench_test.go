// SPDX-License-Identifier: Apache-2.0

package attest

import (
	"testing"
)

// BenchmarkVerify is the server's signature check of one proof.
//
//	go test -run XXX -bench Verify ./attest
func BenchmarkVerify(b *testing.B) {
	edPriv, ed := genEd(b)
	pPriv, pk := genP256(b)
	nonce := make([]byte, NonceSize)
	for name, kv := range map[string]struct {
		key PublicKey
		sig func([]byte) []byte
	}{
		"ed25519": {ed, func(m []byte) []byte { s, _ := Sign(edPriv, m); return s }},
		"p256":    {pk, func(m []byte) []byte { s, _ := Sign(pPriv, m); return s }},
	} {
		b.Run(name, func(b *testing.B) {
			msg, _ := Message(nonce, kv.key, [32]byte{1})
			sig := kv.sig(msg)
			for range b.N {
				if !Verify(kv.key, msg, sig) {
					b.Fatal("no")
				}
			}
		})
	}
}
