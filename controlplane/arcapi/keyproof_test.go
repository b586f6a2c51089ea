// SPDX-License-Identifier: Apache-2.0

package arcapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/arcapi"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/keyproof"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

// rekeyBody is a PUT credentials/arc body re-keying simID to newPub (zero:
// generated), with a key proof made by the key store of priv against a
// fresh challenge of svc.
func rekeyBody(t *testing.T, svc *controlplane.Service, priv wgkey.Private, simID string, newPub wgkey.Public) string {
	t.Helper()
	ch, err := svc.KeyProofChallenge(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	proof, err := keyproof.Answer(context.Background(), keystore.NewMemory(priv),
		keyproof.Statement{Purpose: keyproof.Rekey, Nonce: ch.Nonce, ServerKey: ch.ServerKey, SIMID: simID, NewKey: newPub})
	if err != nil {
		t.Fatal(err)
	}
	body := map[string]any{"keyProof": map[string]string{"nonce": base64.StdEncoding.EncodeToString(ch.Nonce), "proof": base64.StdEncoding.EncodeToString(proof)}}
	if !newPub.IsZero() {
		body["arcClientPeerPublicKey"] = newPub.String()
	}
	b, _ := json.Marshal(body)
	return string(b)
}

// TestSharedAuthKeyCannotTakeOverSIM is the attack of the hardening review
// (issue 14, item 1): a device bootstraps with its own key; a second
// device holding the same auth key — every device it bootstrapped holds it
// — knows the victim's public key (public keys are not secret). Before the
// fix it learnt the victim's SIM by bootstrapping again with that key, then
// replaced the victim's key through the Arc route and got the new private
// key: the whole group taken over with one stolen device.
func TestSharedAuthKeyCannotTakeOverSIM(t *testing.T) {
	ctx := context.Background()
	svc, base := arcServer(t, arcapi.Config{TokenSecret: testSecret})
	g, err := svc.CreateGroup(ctx, controlplane.System, "fleet", fleet.GroupSettings{})
	if err != nil {
		t.Fatal(err)
	}
	k, secret := newKey(t, svc, g.ID, 0)
	authKey := secret
	victimPriv, _ := wgkey.NewPrivate()
	victimPub := victimPriv.Public()
	victim, _, err := svc.Bootstrap(ctx, controlplane.BootstrapRequest{AuthKey: authKey, PublicKey: victimPub})
	if err != nil {
		t.Fatalf("victim bootstrap: %v", err)
	}

	// 1. The reveal: the same auth key and the victim's public key, no
	// proof, or a proof made with the attacker's own key.
	var fe *fleet.Error
	if sim, _, err := svc.Bootstrap(ctx, controlplane.BootstrapRequest{AuthKey: authKey, PublicKey: victimPub}); !errors.As(err, &fe) || fe.Code != fleet.CodeKeyProof {
		t.Fatalf("re-bootstrap with the victim's public key and no proof: %+v, %v; want %s", sim, err, fleet.CodeKeyProof)
	}
	attackerPriv, _ := wgkey.NewPrivate()
	ch, _ := svc.KeyProofChallenge(ctx)
	forged, _ := keyproof.Answer(ctx, keystore.NewMemory(attackerPriv), keyproof.Statement{Purpose: keyproof.Bootstrap, Nonce: ch.Nonce, ServerKey: ch.ServerKey})
	if _, _, err := svc.Bootstrap(ctx, controlplane.BootstrapRequest{AuthKey: authKey, PublicKey: victimPub, KeyProof: &keyproof.Reply{Nonce: ch.Nonce, Proof: forged}}); !errors.As(err, &fe) || fe.Code != fleet.CodeKeyProof {
		t.Fatalf("re-bootstrap with a proof of another key: %v", err)
	}

	// 2. The take-over: the attacker guessed or learnt the SIM id anyway.
	_, c := login(t, base, k.ID, secret)
	np, _ := wgkey.NewPrivate()
	if code := c.call("PUT", "/sims/"+victim.ID+"/credentials/arc", `{"arcClientPeerPublicKey":"`+np.Public().String()+`"}`, nil); code != 403 {
		t.Fatalf("re-key with the auth key alone: %d, want 403", code)
	}
	if code := c.call("PUT", "/sims/"+victim.ID+"/credentials/arc", ``, nil); code != 403 {
		t.Fatalf("re-key to a generated key with the auth key alone: %d, want 403", code)
	}
	if code := c.call("PUT", "/sims/"+victim.ID+"/credentials/arc", rekeyBody(t, svc, attackerPriv, victim.ID, np.Public()), nil); code != 403 {
		t.Fatalf("re-key with a proof made by another key: %d, want 403", code)
	}
	// A genuine proof of the victim is bound to its SIM, its new key and
	// its challenge: replayed for another key, or again, it fails.
	genuine := rekeyBody(t, svc, victimPriv, victim.ID, np.Public())
	var stolen map[string]any
	json.Unmarshal([]byte(genuine), &stolen)
	evil, _ := wgkey.NewPrivate()
	stolen["arcClientPeerPublicKey"] = evil.Public().String()
	swapped, _ := json.Marshal(stolen)
	if code := c.call("PUT", "/sims/"+victim.ID+"/credentials/arc", string(swapped), nil); code != 403 {
		t.Fatalf("a genuine proof with another new key: %d, want 403", code)
	}
	if sim, _ := svc.View().SIM(ctx, victim.ID); sim.PublicKey != victimPub {
		t.Fatalf("the victim's key was replaced: %s", sim.PublicKey)
	}

	// The device itself, holding its key, still can (once per challenge).
	var s struct {
		ArcClientPeerPublicKey string `json:"arcClientPeerPublicKey"`
	}
	if code := c.call("PUT", "/sims/"+victim.ID+"/credentials/arc", genuine, &s); code != 200 || s.ArcClientPeerPublicKey != np.Public().String() {
		t.Fatalf("the device's own re-key: %d %+v", code, s)
	}
	if code := c.call("PUT", "/sims/"+victim.ID+"/credentials/arc", genuine, nil); code != 403 {
		t.Fatalf("the same proof again: %d, want 403", code)
	}
	// And it can see its SIM again with a proof of the new key.
	ch, _ = svc.KeyProofChallenge(ctx)
	p, _ := keyproof.Answer(ctx, keystore.NewMemory(np), keyproof.Statement{Purpose: keyproof.Bootstrap, Nonce: ch.Nonce, ServerKey: ch.ServerKey})
	if sim, _, err := svc.Bootstrap(ctx, controlplane.BootstrapRequest{AuthKey: authKey, PublicKey: np.Public(), KeyProof: &keyproof.Reply{Nonce: ch.Nonce, Proof: p}}); err != nil || sim.ID != victim.ID {
		t.Fatalf("re-bootstrap with a proof: %+v %v", sim, err)
	}
}

// TestArcRekeyWithAuthKeySetting: a group that opts into SORACOM's weaker
// behaviour re-keys with the auth key alone, and the event says no proof
// was given.
func TestArcRekeyWithAuthKeySetting(t *testing.T) {
	ctx := context.Background()
	svc, base := arcServer(t, arcapi.Config{TokenSecret: testSecret})
	g, err := svc.CreateGroup(ctx, controlplane.System, "legacy", fleet.GroupSettings{ArcRekeyWithAuthKey: true})
	if err != nil {
		t.Fatal(err)
	}
	k, secret := newKey(t, svc, g.ID, 0)
	_, c := login(t, base, k.ID, secret)
	var vs virtualSIM
	if code := c.call("POST", "/sims", `{}`, &vs); code != 201 {
		t.Fatalf("create: %d", code)
	}
	np, _ := wgkey.NewPrivate()
	if code := c.call("PUT", "/sims/"+vs.SimID+"/credentials/arc", `{"arcClientPeerPublicKey":"`+np.Public().String()+`"}`, nil); code != 200 {
		t.Fatalf("re-key without proof in an opted-in group: %d", code)
	}
	evs, err := svc.ListEvents(ctx, controlplane.System, store.EventFilter{ObjectID: vs.SimID})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range evs.Items {
		if e.Action == "sim.set_key" && e.Details["keyProof"] == false {
			found = true
		}
	}
	if !found {
		t.Fatalf("no sim.set_key event recording the re-key without proof: %+v", evs.Items)
	}
}

// The Arc decoder refuses trailing data and bodies that are not an object
// (issue 14, item 10: it ignored what followed the first value).
func TestArcDecoderStrict(t *testing.T) {
	svc, base := arcServer(t, arcapi.Config{TokenSecret: testSecret})
	k, secret := newKey(t, svc, "", 0)
	c := &arcClient{t: t, base: base}
	for _, body := range []string{
		`{"authKeyId":"keyId-` + k.ID + `","authKey":"secret-` + secret + `"} {"x":1}`,
		`{"authKeyId":"keyId-` + k.ID + `","authKey":"secret-` + secret + `"}}`,
		`null`, `[]`, `"x"`,
	} {
		if code := c.call("POST", "/auth", body, nil); code != 400 {
			t.Errorf("auth body %q: %d, want 400", body, code)
		}
	}
}
