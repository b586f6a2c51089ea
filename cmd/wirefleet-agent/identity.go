// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/wirefleet/wirefleet/agent"
	"github.com/wirefleet/wirefleet/attest"
)

// identity prints (and with --generate makes) the device's attestation
// identity key, for manufacturing to register with `wirefleet identities
// import`.
func identity(args []string) error {
	fs := newFlags("identity", "print the device's identity public key for manufacturing (make it with --generate)")
	ref := fs.String("attest", os.Getenv("WIREFLEET_AGENT_IDENTITY"), "identity key reference: pkcs11:token=…;object=…?pin-source=… or file:<path> (env WIREFLEET_AGENT_IDENTITY)")
	gen := fs.String("generate", "", "make the key if the reference names none: ed25519 or p256 (an existing key of that algorithm is printed)")
	format := fs.String("format", "key", "output: key (ed25519:<base64>), pem, fingerprint, or json (all of them)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *ref == "" {
		return usageError{errors.New("identity needs --attest REF")}
	}
	switch *format {
	case "key", "pem", "fingerprint", "json":
	default:
		return usageError{fmt.Errorf("--format %q: want key, pem, fingerprint or json", *format)}
	}
	var (
		id  *agent.Identity
		err error
	)
	if *gen != "" {
		id, err = agent.CreateIdentity(*ref, attest.Algorithm(*gen))
	} else {
		id, err = agent.OpenIdentity(*ref)
	}
	if err != nil {
		return err
	}
	defer id.Close()
	k := id.Key
	switch *format {
	case "key":
		fmt.Println(k.String())
	case "pem":
		fmt.Print(k.PEM())
	case "fingerprint":
		fmt.Println(k.Fingerprint())
	case "json":
		ne, err := agent.IdentityNonExtractable(id)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"publicKey": k.String(), "algorithm": k.Algorithm(), "fingerprint": k.Fingerprint(), "pem": k.PEM(), "nonExtractable": ne})
	}
	return nil
}
