//go:build cgo

package signer

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"sync"

	"github.com/miekg/pkcs11"
	"github.com/sigstore/sigstore/pkg/signature"
)

// PKCS#11 3.0 constants that github.com/miekg/pkcs11 (2.40) lacks.
const (
	ckkECEdwards = 0x00000040 // CKK_EC_EDWARDS
	ckmEdDSA     = 0x00001057 // CKM_EDDSA
)

var (
	oidP256    = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidEd25519 = asn1.ObjectIdentifier{1, 3, 101, 112}
)

// modules keeps one initialized context per PKCS#11 library: C_Initialize
// is per process, and finalizing while another key still uses the library
// would break it.
var modules = struct {
	sync.Mutex
	m map[string]*module
}{m: map[string]*module{}}

type module struct {
	ctx  *pkcs11.Ctx
	refs int
}

func loadModule(path string) (*pkcs11.Ctx, error) {
	modules.Lock()
	defer modules.Unlock()
	if m := modules.m[path]; m != nil {
		m.refs++
		return m.ctx, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: PKCS#11 module %s: %v (Debian's SoftHSM2 is at /usr/lib/softhsm/libsofthsm2.so, package softhsm2)", ErrBackend, path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: PKCS#11 module %s is not a regular file", ErrBackend, path)
	}
	p := pkcs11.New(path)
	if p == nil {
		return nil, fmt.Errorf("%w: cannot load PKCS#11 module %s (dlopen failed: not a shared library for this architecture, or its dependencies are missing)", ErrBackend, path)
	}
	if err := p.Initialize(); err != nil && !isCKR(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		p.Destroy()
		return nil, fmt.Errorf("%w: initializing PKCS#11 module %s: %v", ErrBackend, path, err)
	}
	modules.m[path] = &module{ctx: p, refs: 1}
	return p, nil
}

func releaseModule(path string) error {
	modules.Lock()
	defer modules.Unlock()
	m := modules.m[path]
	if m == nil {
		return nil
	}
	m.refs--
	if m.refs > 0 {
		return nil
	}
	delete(modules.m, path)
	err := m.ctx.Finalize()
	m.ctx.Destroy()
	return err
}

func isCKR(err error, code uint) bool {
	var e pkcs11.Error
	return errors.As(err, &e) && uint(e) == code
}

// p11Key is a private key in a token, as a sigstore SignerVerifier.
type p11Key struct {
	mu      sync.Mutex
	p       *pkcs11.Ctx
	session pkcs11.SessionHandle
	priv    pkcs11.ObjectHandle
	pub     crypto.PublicKey
	name    string
}

func openPKCS11(ctx context.Context, ref string, opt Options) (Signer, error) {
	u, err := parsePKCS11URI(ref)
	if err != nil {
		return nil, err
	}
	pin, err := u.resolvePIN(opt.Getenv)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := loadModule(u.ModulePath)
	if err != nil {
		return nil, err
	}
	k := &p11Key{p: p, name: u.keyName()}
	ok := false
	defer func() {
		if !ok {
			if k.session != 0 {
				p.CloseSession(k.session)
			}
			releaseModule(u.ModulePath)
		}
	}()
	slot, err := findSlot(p, u)
	if err != nil {
		return nil, err
	}
	if k.session, err = p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION); err != nil {
		return nil, fmt.Errorf("%w: opening a session on %s: %v", ErrBackend, u.keyName(), err)
	}
	if err := p.Login(k.session, pkcs11.CKU_USER, pin); err != nil && !isCKR(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
		switch {
		case isCKR(err, pkcs11.CKR_PIN_INCORRECT):
			return nil, fmt.Errorf("%w: wrong PIN for %s (the token counts failed logins and may lock)", ErrBackend, u.keyName())
		case isCKR(err, pkcs11.CKR_PIN_LOCKED):
			return nil, fmt.Errorf("%w: the PIN of %s is locked; the security officer must reset it", ErrBackend, u.keyName())
		default:
			return nil, fmt.Errorf("%w: logging in to %s: %v", ErrBackend, u.keyName(), err)
		}
	}
	if err := k.findKey(u); err != nil {
		return nil, err
	}
	s, err := newKey("pkcs11 "+Redact(ref), k.pub, k, "", func() error {
		k.mu.Lock()
		defer k.mu.Unlock()
		k.p.CloseSession(k.session)
		return releaseModule(u.ModulePath)
	})
	if err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

func findSlot(p *pkcs11.Ctx, u *pkcs11URI) (uint, error) {
	slots, err := p.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("%w: listing PKCS#11 slots: %v", ErrBackend, err)
	}
	var found []uint
	var labels []string
	for _, s := range slots {
		if u.SlotID != nil && *u.SlotID != s {
			continue
		}
		ti, err := p.GetTokenInfo(s)
		if err != nil {
			continue
		}
		labels = append(labels, fmt.Sprintf("%q", ti.Label))
		if (u.Token == "" || ti.Label == u.Token) && (u.Serial == "" || ti.SerialNumber == u.Serial) &&
			(u.Manufacturer == "" || ti.ManufacturerID == u.Manufacturer) && (u.Model == "" || ti.Model == u.Model) {
			found = append(found, s)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return 0, fmt.Errorf("%w: no PKCS#11 token matches %s; tokens present: %v", ErrBackend, u.keyName(), labels)
	default:
		return 0, fmt.Errorf("%w: %d PKCS#11 tokens match %s; add token=, serial= or slot-id= to the URI", ErrBackend, len(found), u.keyName())
	}
}

func (k *p11Key) find(class uint, u *pkcs11URI) ([]pkcs11.ObjectHandle, error) {
	tmpl := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, class)}
	if u.Object != "" {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.Object))
	}
	if len(u.ID) > 0 {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_ID, u.ID))
	}
	if err := k.p.FindObjectsInit(k.session, tmpl); err != nil {
		return nil, fmt.Errorf("%w: searching the token: %v", ErrBackend, err)
	}
	objs, _, err := k.p.FindObjects(k.session, 4)
	k.p.FindObjectsFinal(k.session)
	if err != nil {
		return nil, fmt.Errorf("%w: searching the token: %v", ErrBackend, err)
	}
	return objs, nil
}

func (k *p11Key) findKey(u *pkcs11URI) error {
	privs, err := k.find(pkcs11.CKO_PRIVATE_KEY, u)
	if err != nil {
		return err
	}
	switch len(privs) {
	case 0:
		return fmt.Errorf("%w: no private key %s in the token (wrong object label or id?)", ErrBackend, u.keyName())
	case 1:
	default:
		return fmt.Errorf("%w: %d private keys match %s; add id= to the URI", ErrBackend, len(privs), u.keyName())
	}
	k.priv = privs[0]
	attrs, err := k.p.GetAttributeValue(k.session, k.priv, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_ID, nil),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil),
	})
	if err != nil {
		return fmt.Errorf("%w: reading the private key's attributes: %v", ErrBackend, err)
	}
	keyType := attrUint(attrs[0].Value)
	// The public half lives in a separate object with the same id (and
	// label); PKCS#11 private key objects need not expose it.
	pu := &pkcs11URI{ID: attrs[1].Value, Object: string(attrs[2].Value)}
	if len(pu.ID) > 0 {
		pu.Object = ""
	}
	pubs, err := k.find(pkcs11.CKO_PUBLIC_KEY, pu)
	if err != nil {
		return err
	}
	if len(pubs) != 1 {
		return fmt.Errorf("%w: found %d public key objects for %s; the token must hold the public key next to the private key (same CKA_ID)", ErrBackend, len(pubs), u.keyName())
	}
	pattrs, err := k.p.GetAttributeValue(k.session, pubs[0], []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, nil),
		pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil),
	})
	if err != nil {
		return fmt.Errorf("%w: reading the public key of %s: %v", ErrBackend, u.keyName(), err)
	}
	k.pub, err = decodePublic(keyType, pattrs[0].Value, pattrs[1].Value)
	if err != nil {
		return fmt.Errorf("%s: %w", u.keyName(), err)
	}
	return nil
}

func attrUint(b []byte) uint {
	var v uint
	for i := len(b) - 1; i >= 0; i-- { // native little-endian CK_ULONG
		v = v<<8 | uint(b[i])
	}
	return v
}

func decodePublic(keyType uint, params, point []byte) (crypto.PublicKey, error) {
	// CKA_EC_POINT is a DER OCTET STRING; some tokens store it bare.
	var raw []byte
	if rest, err := asn1.Unmarshal(point, &raw); err != nil || len(rest) != 0 {
		raw = point
	}
	switch keyType {
	case ckkECEdwards:
		var oid asn1.ObjectIdentifier
		var name string
		isEd25519 := false
		if _, err := asn1.Unmarshal(params, &oid); err == nil {
			isEd25519 = oid.Equal(oidEd25519)
		} else if _, err := asn1.UnmarshalWithParams(params, &name, "printable"); err == nil {
			isEd25519 = name == "edwards25519"
		}
		if !isEd25519 || len(raw) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: Edwards-curve key is not Ed25519 (Ed448 is not supported)", ErrUnsupportedKey)
		}
		return ed25519.PublicKey(bytes.Clone(raw)), nil
	case pkcs11.CKK_EC:
		var oid asn1.ObjectIdentifier
		if _, err := asn1.Unmarshal(params, &oid); err != nil || !oid.Equal(oidP256) {
			return nil, fmt.Errorf("%w: ECDSA key is not on P-256", ErrUnsupportedKey)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
		if err != nil {
			return nil, fmt.Errorf("%w: ECDSA public point: %v", ErrUnsupportedKey, err)
		}
		return pub, nil
	default:
		return nil, fmt.Errorf("%w: PKCS#11 key type 0x%x; use an Ed25519 (CKK_EC_EDWARDS) or P-256 (CKK_EC) key", ErrUnsupportedKey, keyType)
	}
}

func (k *p11Key) sign(msg []byte) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	mech, data := uint(ckmEdDSA), msg
	if _, ok := k.pub.(*ecdsa.PublicKey); ok {
		sum := sha256.Sum256(msg)
		mech, data = pkcs11.CKM_ECDSA, sum[:]
	}
	if err := k.p.SignInit(k.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, k.priv); err != nil {
		return nil, fmt.Errorf("%w: %s: starting to sign: %v", ErrBackend, k.name, err)
	}
	sig, err := k.p.Sign(k.session, data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: signing: %v", ErrBackend, k.name, err)
	}
	if mech == pkcs11.CKM_ECDSA {
		// PKCS#11 returns r||s; cosign and Go want ASN.1 DER.
		if len(sig) != 64 {
			return nil, fmt.Errorf("%w: %s: ECDSA signature of %d bytes, want 64", ErrBackend, k.name, len(sig))
		}
		return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])})
	}
	return sig, nil
}

// SignMessage implements signature.Signer.
func (k *p11Key) SignMessage(message io.Reader, _ ...signature.SignOption) ([]byte, error) {
	msg, err := io.ReadAll(message)
	if err != nil {
		return nil, err
	}
	return k.sign(msg)
}

// PublicKey implements signature.PublicKeyProvider.
func (k *p11Key) PublicKey(...signature.PublicKeyOption) (crypto.PublicKey, error) { return k.pub, nil }

// VerifySignature implements signature.Verifier.
func (k *p11Key) VerifySignature(sig, message io.Reader, _ ...signature.VerifyOption) error {
	s, err := io.ReadAll(sig)
	if err != nil {
		return err
	}
	m, err := io.ReadAll(message)
	if err != nil {
		return err
	}
	return Verify(k.pub, m, s)
}

var _ signature.SignerVerifier = (*p11Key)(nil)
