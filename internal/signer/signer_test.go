package signer_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/fwimage"
	"github.com/torwrt/torwrt/internal/imagesig"
	"github.com/torwrt/torwrt/internal/imagesig/imagesign"
	"github.com/torwrt/torwrt/internal/signer"
	"github.com/torwrt/torwrt/internal/signer/signertest"
	"github.com/torwrt/torwrt/internal/usign"
)

const glAR150JSON = `{  "metadata_version": "1.1", "compat_version": "1.0",   "supported_devices":["glinet,gl-ar150","gl-ar150"], "version": { "dist": "OpenWrt", "version": "24.10.3", "revision": "r28872-daca7c049b", "target": "ath79/generic", "board": "glinet_gl-ar150" } }
`

func noEnv(string) string { return "" }

func writeUsignKey(t *testing.T, dir string) (string, *usign.SecretKey) {
	t.Helper()
	k, err := usign.GenerateKey(rand.Reader, "test key")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "k.sec")
	if err := os.WriteFile(path, k.Marshal(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, k
}

func writePEMKey(t *testing.T, dir, name string, priv any) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := signer.WritePEMPrivateKey(path, priv); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFileKeys(t *testing.T) {
	dir := t.TempDir()
	secPath, usk := writeUsignKey(t, dir)
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ecPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPEM := writePEMKey(t, dir, "ed.pem", edPriv)
	ecPEM := writePEMKey(t, dir, "ec.pem", ecPriv)

	cases := []struct {
		name, ref string
		alg       signer.Algorithm
		keyID     string
	}{
		{"usign", secPath, signer.Ed25519, usk.Fingerprint.String()},
		{"usign file URI", "file://" + secPath, signer.Ed25519, usk.Fingerprint.String()},
		{"ed25519 pem", edPEM, signer.Ed25519, derivedEd(edPriv.Public().(ed25519.PublicKey))},
		{"p256 pem", "file://" + ecPEM, signer.ECDSAP256, ""},
	}
	msg := []byte("release manifest bytes\n")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := signer.Open(t.Context(), tc.ref, signer.Options{Getenv: noEnv})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if alg, err := signer.AlgorithmOf(s.Public()); err != nil || alg != tc.alg {
				t.Fatalf("algorithm %s (%v), want %s", alg, err, tc.alg)
			}
			if tc.keyID != "" && s.KeyID() != tc.keyID {
				t.Fatalf("key id %s, want %s", s.KeyID(), tc.keyID)
			}
			if len(s.KeyID()) != 16 {
				t.Fatalf("key id %q is not 16 hex digits", s.KeyID())
			}
			sig, err := s.Sign(t.Context(), msg)
			if err != nil {
				t.Fatal(err)
			}
			if err := signer.Verify(s.Public(), msg, sig); err != nil {
				t.Fatal(err)
			}
			if signer.Verify(s.Public(), append(msg, 'x'), sig) == nil {
				t.Fatal("signature verified over another message")
			}
			us, err := signer.SignUsign(t.Context(), s, msg)
			if tc.alg != signer.Ed25519 {
				if !errors.Is(err, signer.ErrNotEd25519) {
					t.Fatalf("SignUsign with a %s key: %v, want ErrNotEd25519", tc.alg, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			pub, err := signer.UsignPublicKey(s)
			if err != nil {
				t.Fatal(err)
			}
			if err := pub.Verify(msg, us); err != nil {
				t.Fatal(err)
			}
			if tc.name == "usign" {
				want, _ := usk.Sign(msg)
				if want.Sig != us.Sig {
					t.Fatal("signature differs from the usign key's own")
				}
			}
		})
	}
}

func derivedEd(pub ed25519.PublicKey) string {
	id, _ := signer.DerivedKeyID(pub)
	return id
}

func TestDerivedKeyID(t *testing.T) {
	pub := ed25519.PublicKey(bytes.Repeat([]byte{7}, 32))
	sum := sha256.Sum256(pub)
	id, err := signer.DerivedKeyID(pub)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.ToLower(strings.TrimSpace(hexs(sum[:8]))); id != want {
		t.Fatalf("derived key id %s, want %s", id, want)
	}
}

func hexs(b []byte) string {
	const digits = "0123456789abcdef"
	var s strings.Builder
	for _, c := range b {
		s.WriteByte(digits[c>>4])
		s.WriteByte(digits[c&15])
	}
	return s.String()
}

func TestBadReferences(t *testing.T) {
	dir := t.TempDir()
	secPath, _ := writeUsignKey(t, dir)
	loose := filepath.Join(dir, "loose.sec")
	data, _ := os.ReadFile(secPath)
	os.WriteFile(loose, data, 0o644)
	os.Chmod(loose, 0o644)
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	loosePEM := writePEMKey(t, dir, "loose.pem", edPriv)
	os.Chmod(loosePEM, 0o640)
	junk := filepath.Join(dir, "junk.key")
	os.WriteFile(junk, []byte("hello"), 0o600)

	cases := []struct {
		name, ref string
		want      error
		text      string
	}{
		{"empty", "", signer.ErrBadURI, "empty key reference"},
		{"unknown scheme", "vault://transit/keys/x", signer.ErrBadURI, `unknown scheme "vault://"`},
		{"kms provider not linked", "awskms:///alias/torwrt", signer.ErrBadURI, "github.com/sigstore/sigstore/pkg/signature/kms/aws"},
		{"world-readable usign key", loose, signer.ErrInsecureKeyFile, "chmod 600"},
		{"group-readable pem key", loosePEM, signer.ErrInsecureKeyFile, "chmod 600"},
		{"missing file", filepath.Join(dir, "nope.sec"), nil, "no such file"},
		{"not a key", junk, signer.ErrBadURI, "neither a usign secret key nor a PEM"},
		{"pkcs11 without module", "pkcs11:token=t;object=k", signer.ErrBadURI, "module-path is required"},
		{"pkcs11 unknown attribute", "pkcs11:token=t;objekt=k?module-path=/x.so", signer.ErrBadURI, `unknown path attribute "objekt"`},
		{"pkcs11 no key name", "pkcs11:token=t?module-path=/x.so", signer.ErrBadURI, "object=LABEL"},
		{"pkcs11 no pin", "pkcs11:token=t;object=k?module-path=/x.so", signer.ErrBadURI, signer.PINEnv},
		{"pkcs11 missing module", "pkcs11:token=t;object=k?module-path=/nonexistent/libnope.so&pin-value=1234", signer.ErrBackend, "/nonexistent/libnope.so"},
		{"pkcs11 module not a library", "pkcs11:token=t;object=k?module-path=" + junk + "&pin-value=1234", signer.ErrBackend, "cannot load PKCS#11 module"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := signer.Open(t.Context(), tc.ref, signer.Options{Getenv: noEnv})
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded", tc.ref)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("error %q does not mention %q", err, tc.text)
			}
			if strings.Contains(err.Error(), "1234") {
				t.Fatalf("error leaks the PIN: %v", err)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"pkcs11:token=a;object=b?module-path=/m.so&pin-value=secret": "pkcs11:token=a;object=b?module-path=/m.so&pin-value=REDACTED",
		"pkcs11:object=b;pin-value=x&pin=y":                          "pkcs11:object=b;pin-value=REDACTED&pin=REDACTED",
		"hashivault://release":                                       "hashivault://release",
		"pkcs11:object=spin-value=1?module-path=/m.so":               "pkcs11:object=spin-value=1?module-path=/m.so",
	} {
		if got := signer.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSoftHSM signs through a real PKCS#11 token (SoftHSM2, keys generated
// inside it): an image signed end to end with the token's Ed25519 key, and
// a P-256 key for manifests and provenance.
func TestSoftHSM(t *testing.T) {
	hsm := signertest.NewSoftHSM(t)
	hsm.GenerateKey(t, "release-ed25519", "01", "EC:edwards25519")
	hsm.GenerateKey(t, "attest-p256", "02", "EC:prime256v1")
	t.Setenv(signer.PINEnv, hsm.PIN)
	opt := signer.Options{Getenv: os.Getenv}

	t.Run("ed25519 image", func(t *testing.T) {
		signertest.Need(t, "signify-openbsd")
		s, err := signer.Open(t.Context(), hsm.URI("release-ed25519"), opt)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if alg, _ := signer.AlgorithmOf(s.Public()); alg != signer.Ed25519 {
			t.Fatalf("algorithm %s", alg)
		}
		if strings.Contains(fmt.Sprint(s), hsm.PIN) {
			t.Fatal("String leaks the PIN")
		}
		pub, err := signer.UsignPublicKey(s)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		img := filepath.Join(dir, "test-sysupgrade.bin")
		raw := append(bytes.Repeat([]byte("rootfs"), 4000), 0)
		var unsigned bytes.Buffer
		if err := fwimage.AppendChunk(&unsigned, bytes.NewReader(raw), fwimage.TypeMetadata, fwimage.MetadataChunk([]byte(glAR150JSON))); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(img, unsigned.Bytes(), 0o644)
		res, err := imagesign.SignFile(t.Context(), img, img, s)
		if err != nil {
			t.Fatal(err)
		}
		kr, _ := usign.NewKeyring(pub)
		vr, err := imagesig.VerifyFile(img, kr, imagesig.Options{Board: "glinet,gl-ar150"})
		if err != nil {
			t.Fatalf("imagesig refuses the HSM-signed image: %v", err)
		}
		if vr.Key != s.KeyID() || res.Key != s.KeyID() {
			t.Fatalf("signed by %s/%s, want %s", vr.Key, res.Key, s.KeyID())
		}
		pubFile := filepath.Join(dir, "release.pub")
		os.WriteFile(pubFile, pub.Marshal(), 0o644)
		out, err := exec.Command("signify-openbsd", "-V", "-p", pubFile, "-x", img+".sig", "-m", img).CombinedOutput()
		if err != nil {
			t.Fatalf("signify-openbsd -V refuses the HSM signature: %v\n%s", err, out)
		}
		// The raw signature bytes are the cosign-style detached signature.
		sig, _ := usign.ReadSignatureFile(img + ".sig")
		final, _ := os.ReadFile(img)
		if err := signer.Verify(s.Public(), final, sig.Sig[:]); err != nil {
			t.Fatal(err)
		}
		if base64.StdEncoding.EncodeToString(sig.Sig[:]) == "" {
			t.Fatal("empty")
		}
	})

	t.Run("p256 manifest key", func(t *testing.T) {
		s, err := signer.Open(t.Context(), hsm.URI("attest-p256"), opt)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if alg, _ := signer.AlgorithmOf(s.Public()); alg != signer.ECDSAP256 {
			t.Fatalf("algorithm %s", alg)
		}
		msg := []byte("provenance")
		sig, err := s.Sign(t.Context(), msg)
		if err != nil {
			t.Fatal(err)
		}
		if err := signer.Verify(s.Public(), msg, sig); err != nil {
			t.Fatal(err)
		}
		if _, err := signer.SignUsign(t.Context(), s, msg); !errors.Is(err, signer.ErrNotEd25519) {
			t.Fatalf("a P-256 HSM key must not sign images: %v", err)
		}
	})

	t.Run("two keys of one module at once", func(t *testing.T) {
		a, err := signer.Open(t.Context(), hsm.URI("release-ed25519"), opt)
		if err != nil {
			t.Fatal(err)
		}
		b, err := signer.Open(t.Context(), hsm.URI("attest-p256"), opt)
		if err != nil {
			t.Fatal(err)
		}
		a.Close()
		if _, err := b.Sign(t.Context(), []byte("x")); err != nil {
			t.Fatalf("closing one key broke the other: %v", err)
		}
		b.Close()
	})

	t.Run("bad input", func(t *testing.T) {
		cases := []struct {
			name, ref, pin, text string
		}{
			{"wrong pin", hsm.URI("release-ed25519"), "000000", "wrong PIN"},
			{"unknown object", hsm.URI("no-such-key"), hsm.PIN, "no private key"},
			{"unknown token", strings.Replace(hsm.URI("release-ed25519"), "token=torwrt", "token=other", 1), hsm.PIN, "no PKCS#11 token matches"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				s, err := signer.Open(t.Context(), tc.ref, signer.Options{Getenv: func(k string) string {
					if k == signer.PINEnv {
						return tc.pin
					}
					return ""
				}})
				if err == nil {
					s.Close()
					t.Fatal("Open succeeded")
				}
				if !errors.Is(err, signer.ErrBackend) || !strings.Contains(err.Error(), tc.text) {
					t.Fatalf("error %q, want ErrBackend mentioning %q", err, tc.text)
				}
				if strings.Contains(err.Error(), tc.pin) {
					t.Fatal("error leaks the PIN")
				}
			})
		}
		// The token still works after the failures above.
		s, err := signer.Open(t.Context(), hsm.URI("release-ed25519"), opt)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	})
}
