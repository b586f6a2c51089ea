// SPDX-License-Identifier: Apache-2.0

//go:build cgo

package pkcs11store

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/miekg/pkcs11"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

// PKCS#11 3.0 constants the binding (written against 2.40) does not define.
const (
	ckkECEdwards              = 0x40
	ckkECMontgomery           = 0x41
	ckmECEdwardsKeyPairGen    = 0x1055
	ckmECMontgomeryKeyPairGen = 0x1056
)

const (
	defaultSessions = 2
	// maxObjectsPerLabel bounds a search by label: a key pair is two
	// objects; more means the label is ambiguous, which Open refuses.
	maxObjectsPerLabel = 4
	x25519SecretLen    = 32
)

// DER tags of the encodings PKCS#11 uses for curve parameters and points.
const (
	derOctetStringTag      = 0x04
	derObjectIdentifierTag = 0x06
	derPrintableStringTag  = 0x13
)

// oidX25519 is the DER encoding of OID 1.3.101.110 (id-X25519, RFC 8410),
// the CKA_EC_PARAMS of an X25519 key.
var oidX25519 = []byte{derObjectIdentifierTag, 3, 0x2b, 0x65, 0x6e}

// curve25519Name is the other CKA_EC_PARAMS encoding PKCS#11 3.0 allows for
// Montgomery keys: PrintableString "curve25519".
var curve25519Name = append([]byte{derPrintableStringTag, byte(len("curve25519"))}, "curve25519"...)

// Token is an open, logged-in PKCS#11 token.
type Token struct {
	mod      *module
	slot     uint
	label    string
	delay    time.Duration
	pin      string
	sessions chan pkcs11.SessionHandle
	mechs    map[uint]bool
	// sessMu guards all, every session handle the pool owns, for Close.
	sessMu sync.Mutex
	all    map[pkcs11.SessionHandle]bool
	// mu serialises Generate and Delete so two callers cannot both find a
	// label free and create it twice.
	mu        sync.Mutex
	pooled    int           // sessions made for the pool; Close waits for all of them
	done      chan struct{} // closed by Close: no new calls
	closeOnce sync.Once
}

// module is one loaded PKCS#11 library. C_Initialize and C_Finalize are
// process-wide per library, so every Token on the same library shares one.
type module struct {
	path string
	ctx  *pkcs11.Ctx
	refs int
}

var modules struct {
	sync.Mutex
	m map[string]*module
}

func loadModule(path string) (*module, error) {
	modules.Lock()
	defer modules.Unlock()
	if m := modules.m[path]; m != nil {
		m.refs++
		return m, nil
	}
	ctx := pkcs11.New(path)
	if ctx == nil {
		return nil, fmt.Errorf("pkcs11store: cannot load PKCS#11 module %s", path)
	}
	if err := ctx.Initialize(); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		ctx.Destroy()
		return nil, fmt.Errorf("pkcs11store: C_Initialize %s: %w", path, err)
	}
	if modules.m == nil {
		modules.m = map[string]*module{}
	}
	m := &module{path: path, ctx: ctx, refs: 1}
	modules.m[path] = m
	return m, nil
}

func (m *module) release() {
	modules.Lock()
	defer modules.Unlock()
	if m.refs--; m.refs > 0 {
		return
	}
	delete(modules.m, m.path)
	m.ctx.Finalize()
	m.ctx.Destroy()
}

// OpenToken loads the module, finds the token by label and logs in.
func OpenToken(cfg Config) (*Token, error) {
	if cfg.Module == "" || cfg.Token == "" {
		return nil, errors.New("pkcs11store: Config.Module and Config.Token are required")
	}
	mod, err := loadModule(cfg.Module)
	if err != nil {
		return nil, err
	}
	t := &Token{mod: mod, label: cfg.Token, delay: cfg.DHDelay, pin: cfg.PIN, all: map[pkcs11.SessionHandle]bool{}, done: make(chan struct{})}
	if err := t.open(cfg); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

func (t *Token) open(cfg Config) error {
	c := t.mod.ctx
	slots, err := c.GetSlotList(true)
	if err != nil {
		return fmt.Errorf("pkcs11store: C_GetSlotList: %w", err)
	}
	found := 0
	for _, s := range slots {
		ti, err := c.GetTokenInfo(s)
		if err != nil {
			continue
		}
		if strings.TrimRight(ti.Label, " \x00") == cfg.Token {
			t.slot = s
			found++
		}
	}
	switch {
	case found == 0:
		return fmt.Errorf("pkcs11store: token %q in %s: %w", cfg.Token, cfg.Module, ErrNotFound)
	case found > 1:
		// Labels are not unique in PKCS#11; two tokens with one label
		// (a cloned card) must not be picked between by slot order.
		return fmt.Errorf("pkcs11store: %d tokens labelled %q in %s; refusing to guess", found, cfg.Token, cfg.Module)
	}
	mechs, err := c.GetMechanismList(t.slot)
	if err != nil {
		return fmt.Errorf("pkcs11store: C_GetMechanismList: %w", err)
	}
	t.mechs = map[uint]bool{}
	for _, m := range mechs {
		t.mechs[m.Mechanism] = true
	}
	if !t.mechs[pkcs11.CKM_ECDH1_DERIVE] {
		return fmt.Errorf("pkcs11store: token %q has no CKM_ECDH1_DERIVE: %w", cfg.Token, ErrUnsupported)
	}
	n := cfg.Sessions
	if n <= 0 {
		n = defaultSessions
	}
	t.sessions = make(chan pkcs11.SessionHandle, n)
	for i := 0; i < n; i++ {
		sh, err := t.openSession()
		if err != nil {
			return err
		}
		t.sessions <- sh
		t.pooled++
	}
	// Login state belongs to the application, not the session: one login
	// covers every session of the pool.
	return t.login(<-t.sessions, true)
}

// openSession opens a session for the pool. Read-write: DH creates a
// (session) object, Generate token objects.
func (t *Token) openSession() (pkcs11.SessionHandle, error) {
	sh, err := t.mod.ctx.OpenSession(t.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return 0, fmt.Errorf("pkcs11store: C_OpenSession: %w", err)
	}
	t.sessMu.Lock()
	t.all[sh] = true
	t.sessMu.Unlock()
	return sh, nil
}

// login logs the application in through sh, then returns sh to the pool
// when put is set.
func (t *Token) login(sh pkcs11.SessionHandle, put bool) error {
	err := t.mod.ctx.Login(sh, pkcs11.CKU_USER, t.pin)
	if put {
		t.release(sh)
	}
	switch {
	case err == nil, errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)):
		return nil
	case errors.Is(err, pkcs11.Error(pkcs11.CKR_PIN_INCORRECT)), errors.Is(err, pkcs11.Error(pkcs11.CKR_PIN_INVALID)),
		errors.Is(err, pkcs11.Error(pkcs11.CKR_PIN_LEN_RANGE)):
		return fmt.Errorf("pkcs11store: login to token %q: %w", t.label, ErrWrongPIN)
	case errors.Is(err, pkcs11.Error(pkcs11.CKR_PIN_LOCKED)):
		return fmt.Errorf("pkcs11store: login to token %q: the user PIN is locked: %w", t.label, ErrWrongPIN)
	}
	return fmt.Errorf("pkcs11store: login to token %q: %w", t.label, err)
}

// ensureLogin logs in again if sh's session is no longer logged in.
func (t *Token) ensureLogin(sh pkcs11.SessionHandle) error {
	info, err := t.mod.ctx.GetSessionInfo(sh)
	if err != nil {
		return fmt.Errorf("pkcs11store: C_GetSessionInfo: %w", err)
	}
	if info.State == pkcs11.CKS_RO_PUBLIC_SESSION || info.State == pkcs11.CKS_RW_PUBLIC_SESSION {
		return t.login(sh, false)
	}
	return nil
}

// brokenSession reports errors after which the session, or the login it
// relied on, is gone: the token was reset, reinserted, or logged out.
func brokenSession(err error) bool {
	for _, code := range []uint{pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED,
		pkcs11.CKR_USER_NOT_LOGGED_IN, pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_TOKEN_NOT_PRESENT} {
		if errors.Is(err, pkcs11.Error(code)) {
			return true
		}
	}
	return false
}

// staleHandle reports errors saying an object handle no longer names the
// object; tokens may renumber private objects after a new login.
func staleHandle(err error) bool {
	return errors.Is(err, pkcs11.Error(pkcs11.CKR_KEY_HANDLE_INVALID)) || errors.Is(err, pkcs11.Error(pkcs11.CKR_OBJECT_HANDLE_INVALID))
}

// renew replaces a broken session by a new, logged-in one. When no new
// session opens, the old handle goes back to the pool, to be renewed at
// its next use, so the pool never shrinks.
func (t *Token) renew(old pkcs11.SessionHandle) (pkcs11.SessionHandle, error) {
	t.mod.ctx.CloseSession(old) // most likely gone already; nothing to learn from the error
	sh, err := t.openSession()
	if err != nil {
		return old, err
	}
	t.sessMu.Lock()
	delete(t.all, old)
	t.sessMu.Unlock()
	return sh, t.login(sh, false)
}

// withSession runs fn with a pooled session, once more on a renewed
// session if the first one turns out broken.
func (t *Token) withSession(ctx context.Context, fn func(pkcs11.SessionHandle) error) error {
	sh, err := t.session(ctx)
	if err != nil {
		return err
	}
	defer func() { t.release(sh) }()
	err = fn(sh)
	if brokenSession(err) {
		var rerr error
		if sh, rerr = t.renew(sh); rerr != nil {
			return fmt.Errorf("%w (renewing the session: %v)", err, rerr)
		}
		err = fn(sh)
	}
	return err
}

// Close waits for calls in flight, closes the sessions (which logs out) and
// releases the module. Later calls on the token and its keys fail with
// ErrClosed.
func (t *Token) Close() error {
	t.closeOnce.Do(func() {
		close(t.done)
		// Calls in flight hold sessions; finalizing the module under them
		// would pull the library out from under a C call.
		for i := 0; i < t.pooled; i++ {
			<-t.sessions
		}
		t.sessMu.Lock()
		for sh := range t.all {
			t.mod.ctx.CloseSession(sh)
		}
		t.sessMu.Unlock()
		t.mod.release()
	})
	return nil
}

// Label is the token's label.
func (t *Token) Label() string { return t.label }

// session takes a session from the pool, waiting for one if all are busy.
func (t *Token) session(ctx context.Context) (pkcs11.SessionHandle, error) {
	select {
	case <-t.done:
		return 0, ErrClosed
	default:
	}
	select {
	case <-t.done:
		return 0, ErrClosed
	case sh := <-t.sessions:
		return sh, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (t *Token) release(sh pkcs11.SessionHandle) { t.sessions <- sh }

// find returns the objects matching tmpl.
func (t *Token) find(sh pkcs11.SessionHandle, tmpl []*pkcs11.Attribute) ([]pkcs11.ObjectHandle, error) {
	c := t.mod.ctx
	if err := c.FindObjectsInit(sh, tmpl); err != nil {
		return nil, fmt.Errorf("pkcs11store: C_FindObjectsInit: %w", err)
	}
	objs, _, err := c.FindObjects(sh, maxObjectsPerLabel)
	if ferr := c.FindObjectsFinal(sh); err == nil && ferr != nil {
		err = ferr
	}
	if err != nil {
		return nil, fmt.Errorf("pkcs11store: C_FindObjects: %w", err)
	}
	return objs, nil
}

func labelled(class uint, label string) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}
}

// Generate makes a new X25519 key pair on the token under label: a token
// object, private, sensitive and non-extractable, usable only for derive.
// It fails with ErrExists if any object already carries the label, so a key
// is never shadowed by a namesake.
func (t *Token) Generate(label string) (*Key, error) {
	if label == "" {
		return nil, errors.New("pkcs11store: empty key label")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var k *Key
	err := t.withSession(context.Background(), func(sh pkcs11.SessionHandle) (err error) {
		k, err = t.generateAny(sh, label)
		return err
	})
	return k, err
}

// generateAny generates with the first key type the token accepts.
func (t *Token) generateAny(sh pkcs11.SessionHandle, label string) (*Key, error) {
	if err := t.labelFree(sh, label); err != nil {
		return nil, err
	}
	var errs []error
	for _, kt := range []struct {
		mech, keyType uint
		name          string
	}{
		{ckmECMontgomeryKeyPairGen, ckkECMontgomery, "CKK_EC_MONTGOMERY"},
		{ckmECEdwardsKeyPairGen, ckkECEdwards, "CKK_EC_EDWARDS with the X25519 OID"},
	} {
		if !t.mechs[kt.mech] {
			errs = append(errs, fmt.Errorf("%s: mechanism not offered", kt.name))
			continue
		}
		k, err := t.generate(sh, label, kt.mech, kt.keyType)
		if err == nil {
			return k, nil
		}
		if brokenSession(err) {
			return nil, err // for withSession to renew, not a key-type failure
		}
		errs = append(errs, fmt.Errorf("%s: %w", kt.name, err))
	}
	return nil, fmt.Errorf("pkcs11store: generating %q on token %q: %w (%v)", label, t.label, ErrUnsupported, errors.Join(errs...))
}

func (t *Token) generate(sh pkcs11.SessionHandle, label string, mech, keyType uint) (*Key, error) {
	pubH, privH, err := t.newKeyPair(sh, label, mech, keyType, oidX25519, pkcs11.CKA_DERIVE)
	if err != nil {
		return nil, err
	}
	k, err := t.key(sh, label, privH, pubH)
	if err := t.keepNewPair(sh, privH, pubH, err); err != nil {
		return nil, err
	}
	return k, nil
}

// labelFree returns ErrExists when any object on the token carries label,
// so that a new key never shadows a namesake.
func (t *Token) labelFree(sh pkcs11.SessionHandle, label string) error {
	existing, err := t.find(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)})
	if err != nil {
		return err
	}
	if len(existing) > 0 {
		return fmt.Errorf("pkcs11store: %q on token %q: %w", label, t.label, ErrExists)
	}
	return nil
}

// newKeyPair makes a key pair of keyType (curve params) on the token under
// label with a fresh random CKA_ID. The private half is a private,
// sensitive, non-extractable token object allowed exactly one use:
// CKA_DERIVE (X25519) or CKA_SIGN (identity keys).
func (t *Token) newKeyPair(sh pkcs11.SessionHandle, label string, mech, keyType uint, params []byte, use uint) (pubH, privH pkcs11.ObjectHandle, err error) {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return 0, 0, err
	}
	sign := use == pkcs11.CKA_SIGN
	pubTmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, keyType),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
		pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, params),
	}
	if sign {
		pubTmpl = append(pubTmpl, pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true))
	}
	privTmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, keyType),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, !sign),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, sign),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}
	return t.mod.ctx.GenerateKeyPair(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, pubTmpl, privTmpl)
}

// keepNewPair destroys a new key pair when err (wrapping it failed) is
// set or the token made the private half extractable: a token may
// silently ignore template attributes, and a key it would let out is not
// the key we promised.
func (t *Token) keepNewPair(sh pkcs11.SessionHandle, privH, pubH pkcs11.ObjectHandle, err error) error {
	if err == nil {
		var ne bool
		if ne, err = t.nonExtractable(sh, privH); err == nil && !ne {
			err = errors.New("the token made the key extractable despite the template")
		}
	}
	if err != nil {
		t.mod.ctx.DestroyObject(sh, privH)
		t.mod.ctx.DestroyObject(sh, pubH)
	}
	return err
}

// Open finds the key pair labelled label.
func (t *Token) Open(label string) (*Key, error) {
	var k *Key
	err := t.withSession(context.Background(), func(sh pkcs11.SessionHandle) (err error) {
		k, err = t.open1(sh, label)
		return err
	})
	return k, err
}

func (t *Token) open1(sh pkcs11.SessionHandle, label string) (*Key, error) {
	priv, err := t.find(sh, labelled(pkcs11.CKO_PRIVATE_KEY, label))
	if err != nil {
		return nil, err
	}
	pub, err := t.find(sh, labelled(pkcs11.CKO_PUBLIC_KEY, label))
	if err != nil {
		return nil, err
	}
	switch {
	case len(priv) == 0:
		return nil, fmt.Errorf("pkcs11store: private key %q on token %q: %w", label, t.label, ErrNotFound)
	case len(pub) == 0:
		return nil, fmt.Errorf("pkcs11store: public key %q on token %q (needed for CKA_EC_POINT): %w", label, t.label, ErrNotFound)
	case len(priv) > 1 || len(pub) > 1:
		return nil, fmt.Errorf("pkcs11store: label %q on token %q names several keys; refusing to guess", label, t.label)
	}
	return t.key(sh, label, priv[0], pub[0])
}

// halves reads what Key and Signer need of a key pair: the private
// half's key type and CKA_ID, the public half's curve and point.
type halves struct {
	keyType       uint
	id            []byte
	params, point []byte
}

func (t *Token) readHalves(sh pkcs11.SessionHandle, label string, priv, pub pkcs11.ObjectHandle) (halves, error) {
	c := t.mod.ctx
	attrs, err := c.GetAttributeValue(sh, priv, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_ID, nil),
	})
	if err != nil {
		return halves{}, fmt.Errorf("pkcs11store: reading the key type of %q: %w", label, err)
	}
	h := halves{keyType: attrUint(attrs[0].Value), id: attrs[1].Value}
	attrs, err = c.GetAttributeValue(sh, pub, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, nil),
		pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil),
	})
	if err != nil {
		return halves{}, fmt.Errorf("pkcs11store: reading the public key %q: %w", label, err)
	}
	h.params, h.point = attrs[0].Value, attrs[1].Value
	return h, nil
}

// key reads and checks what Key needs from the two halves.
func (t *Token) key(sh pkcs11.SessionHandle, label string, priv, pub pkcs11.ObjectHandle) (*Key, error) {
	h, err := t.readHalves(sh, label, priv, pub)
	if err != nil {
		return nil, err
	}
	keyType, id := h.keyType, h.id
	if keyType != ckkECMontgomery && keyType != ckkECEdwards {
		return nil, fmt.Errorf("pkcs11store: %q has key type %#x, not an X25519 key", label, keyType)
	}
	// An Edwards-typed key may be Ed25519 (OID 1.3.101.112), which cannot
	// do X25519: only the X25519 curve is accepted.
	if p := h.params; !bytes.Equal(p, oidX25519) && !bytes.Equal(p, curve25519Name) {
		return nil, fmt.Errorf("pkcs11store: %q has CKA_EC_PARAMS %x, not X25519", label, p)
	}
	pk, err := parseECPoint(h.point)
	if err != nil {
		return nil, fmt.Errorf("pkcs11store: %q: %w", label, err)
	}
	return &Key{tok: t, label: label, id: id, priv: priv, pub: pk, keyType: keyType}, nil
}

// parseECPoint accepts CKA_EC_POINT both as the raw 32-byte u-coordinate
// (PKCS#11 3.0 for Montgomery keys) and wrapped in a DER OCTET STRING
// (PKCS#11 2.40 habit, and SoftHSM's).
func parseECPoint(b []byte) (wgkey.Public, error) {
	var pk wgkey.Public
	switch {
	case len(b) == 32:
		copy(pk[:], b)
	case len(b) == 34 && b[0] == derOctetStringTag && b[1] == 32:
		copy(pk[:], b[2:])
	default:
		return pk, fmt.Errorf("CKA_EC_POINT of %d bytes is neither a raw nor a DER-wrapped X25519 public key", len(b))
	}
	return pk, nil
}

// attrUint decodes a CK_ULONG attribute value: native byte order, and as
// wide as the platform's C unsigned long.
func attrUint(b []byte) uint {
	switch len(b) {
	case 8:
		return uint(binary.NativeEndian.Uint64(b))
	case 4:
		return uint(binary.NativeEndian.Uint32(b))
	}
	return ^uint(0) // matches no key type
}

func (t *Token) nonExtractable(sh pkcs11.SessionHandle, priv pkcs11.ObjectHandle) (bool, error) {
	attrs, err := t.mod.ctx.GetAttributeValue(sh, priv, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil),
	})
	if err != nil {
		return false, fmt.Errorf("pkcs11store: reading CKA_EXTRACTABLE/CKA_SENSITIVE: %w", err)
	}
	extractable := len(attrs[0].Value) == 1 && attrs[0].Value[0] != 0
	sensitive := len(attrs[1].Value) == 1 && attrs[1].Value[0] != 0
	return !extractable && sensitive, nil
}

// Delete destroys every object labelled label (the key pair), for rotation
// by slot: the old key goes once the new one is registered.
func (t *Token) Delete(label string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.withSession(context.Background(), func(sh pkcs11.SessionHandle) error {
		objs, err := t.find(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)})
		if err != nil {
			return err
		}
		if len(objs) == 0 {
			return fmt.Errorf("pkcs11store: %q on token %q: %w", label, t.label, ErrNotFound)
		}
		for _, o := range objs {
			if err := t.mod.ctx.DestroyObject(sh, o); err != nil {
				return fmt.Errorf("pkcs11store: destroying %q: %w", label, err)
			}
		}
		return nil
	})
}

// Key is an X25519 key pair on a token. It implements keystore.Store and is
// safe for concurrent use.
type Key struct {
	tok     *Token
	label   string
	id      []byte // CKA_ID: tells this key from a later one with the same label
	pub     wgkey.Public
	keyType uint

	mu   sync.Mutex
	priv pkcs11.ObjectHandle // valid in every session of this process, until a token logs out
}

var _ keystore.Store = (*Key)(nil)

// PublicKey implements keystore.Store.
func (k *Key) PublicKey() wgkey.Public { return k.pub }

// Label is the key's CKA_LABEL.
func (k *Key) Label() string { return k.label }

// URI names the key as a pkcs11: URI (without module or PIN source).
func (k *Key) URI() URI { return URI{Token: k.tok.label, Object: k.label} }

// KeyType says which PKCS#11 key type the token holds the key as:
// "CKK_EC_MONTGOMERY" or "CKK_EC_EDWARDS" (the SoftHSM 2.6 form).
func (k *Key) KeyType() string {
	if k.keyType == ckkECMontgomery {
		return "CKK_EC_MONTGOMERY"
	}
	return "CKK_EC_EDWARDS"
}

func (k *Key) handle() pkcs11.ObjectHandle {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.priv
}

// refind looks the private key up again by label and CKA_ID, after the
// token stopped recognising its handle (SoftHSM renumbers private objects
// after a new login). The ID makes sure a key deleted and replaced under
// the same label is not silently swapped in.
func (k *Key) refind(sh pkcs11.SessionHandle) error {
	h, err := k.tok.refindPrivate(sh, k.label, k.id)
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.priv = h
	k.mu.Unlock()
	return nil
}

// refindPrivate finds the one private key under label and id (any id when
// empty) once a handle went stale.
func (t *Token) refindPrivate(sh pkcs11.SessionHandle, label string, id []byte) (pkcs11.ObjectHandle, error) {
	// Handles usually go stale because the token logged us out; private
	// objects are invisible until we log in again.
	if err := t.ensureLogin(sh); err != nil {
		return 0, err
	}
	tmpl := labelled(pkcs11.CKO_PRIVATE_KEY, label)
	if len(id) > 0 {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_ID, id))
	}
	objs, err := t.find(sh, tmpl)
	if err != nil {
		return 0, err
	}
	if len(objs) != 1 {
		return 0, fmt.Errorf("pkcs11store: private key %q on token %q: %w", label, t.label, ErrNotFound)
	}
	return objs[0], nil
}

// withKey runs fn with a session and the private key's handle, renewing
// either once if the token no longer recognises it.
func (k *Key) withKey(ctx context.Context, fn func(pkcs11.SessionHandle, pkcs11.ObjectHandle) error) error {
	return k.tok.withSession(ctx, func(sh pkcs11.SessionHandle) error {
		err := fn(sh, k.handle())
		if staleHandle(err) {
			if rerr := k.refind(sh); rerr != nil {
				return rerr
			}
			err = fn(sh, k.handle())
		}
		return err
	})
}

// NonExtractable reports whether the token says the private key can never
// leave it (CKA_EXTRACTABLE false and CKA_SENSITIVE true), asking the
// token each time rather than trusting what Generate asked for.
func (k *Key) NonExtractable() (bool, error) {
	var ne bool
	err := k.withKey(context.Background(), func(sh pkcs11.SessionHandle, priv pkcs11.ObjectHandle) (err error) {
		ne, err = k.tok.nonExtractable(sh, priv)
		return err
	})
	return ne, err
}

// lowOrderProbe is a scalar the process knows, used to recognise low-order
// peer points before they reach the token (see DH).
var lowOrderProbe = func() *ecdh.PrivateKey {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		panic("pkcs11store: no randomness: " + err.Error())
	}
	return k
}()

// DH implements keystore.Store with CKM_ECDH1_DERIVE (CKD_NULL, the raw
// peer key) into a 32-byte generic secret that lives only in this session,
// is read, and is destroyed at once.
func (k *Key) DH(ctx context.Context, req keystore.DHRequest) ([32]byte, error) {
	var out [32]byte
	// A clamped scalar is a multiple of 8, so X25519 with any of them is zero
	// exactly when the peer point has low order. Checking here costs one
	// software scalar multiplication and gives ErrLowOrder the same way on
	// every token: some tokens fail the derive with a generic error, some
	// would hand back zeros.
	if _, err := keystore.X25519(lowOrderProbe, &req.Peer); err != nil {
		return out, keystore.ErrLowOrder
	}
	if k.tok.delay > 0 {
		timer := time.NewTimer(k.tok.delay)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return out, ctx.Err()
		}
	}
	err := k.withKey(ctx, func(sh pkcs11.SessionHandle, priv pkcs11.ObjectHandle) error {
		return k.derive(sh, priv, &req.Peer, &out)
	})
	if err != nil {
		return out, err
	}
	if out == ([32]byte{}) {
		return out, keystore.ErrLowOrder
	}
	return out, nil
}

func (k *Key) derive(sh pkcs11.SessionHandle, priv pkcs11.ObjectHandle, peer *wgkey.Public, out *[32]byte) error {
	c := k.tok.mod.ctx
	mech := pkcs11.NewMechanism(pkcs11.CKM_ECDH1_DERIVE, pkcs11.NewECDH1DeriveParams(pkcs11.CKD_NULL, nil, peer[:]))
	tmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, x25519SecretLen),
		// A session object: it vanishes with the session even if this
		// process dies between derive and destroy.
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
	}
	obj, err := c.DeriveKey(sh, []*pkcs11.Mechanism{mech}, priv, tmpl)
	if err != nil {
		return fmt.Errorf("pkcs11store: C_DeriveKey with %q: %w", k.label, err)
	}
	attrs, err := c.GetAttributeValue(sh, obj, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
	if derr := c.DestroyObject(sh, obj); err == nil && derr != nil {
		err = derr
	}
	if err != nil {
		return fmt.Errorf("pkcs11store: reading the derived secret: %w", err)
	}
	v := attrs[0].Value
	defer clear(v)
	if len(v) != x25519SecretLen {
		return fmt.Errorf("pkcs11store: derived secret of %d bytes, want %d", len(v), x25519SecretLen)
	}
	copy(out[:], v)
	return nil
}
