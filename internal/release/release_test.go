package release_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/torwrt/torwrt/internal/dist"
	"github.com/torwrt/torwrt/internal/fwimage"
	"github.com/torwrt/torwrt/internal/imagesig/imagesign"
	"github.com/torwrt/torwrt/internal/manifest"
	"github.com/torwrt/torwrt/internal/provenance"
	"github.com/torwrt/torwrt/internal/release"
	"github.com/torwrt/torwrt/internal/signer"
	"github.com/torwrt/torwrt/internal/usign"
)

const meta = `{  "metadata_version": "1.1", "compat_version": "1.0",   "supported_devices":["glinet,gl-ar150","gl-ar150"], "version": { "dist": "OpenWrt", "version": "24.10.3", "revision": "r28872-daca7c049b", "target": "ath79/generic", "board": "glinet_gl-ar150" } }
`

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

type holder struct {
	path string
	key  *usign.SecretKey
	s    signer.Signer
}

func newHolder(t *testing.T, dir, name string) *holder {
	t.Helper()
	k, err := usign.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".sec")
	if err := os.WriteFile(path, k.Marshal(), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := signer.Open(t.Context(), path, signer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &holder{path: path, key: k, s: s}
}

func keyring(t *testing.T, hs ...*holder) *usign.Keyring {
	var pubs []*usign.PublicKey
	for _, h := range hs {
		pubs = append(pubs, h.key.Public())
	}
	kr, err := usign.NewKeyring(pubs...)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// makeDist writes distDir/gl-ar150 as the build does: signed image, .sig,
// .manifest and build report.
func makeDist(t *testing.T, imageKey *holder) string {
	t.Helper()
	distDir := t.TempDir()
	dir := filepath.Join(distDir, "gl-ar150")
	os.MkdirAll(dir, 0o755)
	name := "torwrt-0.1.0-gl-ar150-squashfs-sysupgrade.bin"
	var unsigned bytes.Buffer
	fwimage.AppendChunk(&unsigned, bytes.NewReader(bytes.Repeat([]byte("kernel+rootfs "), 3000)), fwimage.TypeMetadata, fwimage.MetadataChunk([]byte(meta)))
	img := filepath.Join(dir, name)
	os.WriteFile(img, unsigned.Bytes(), 0o644)
	res, err := imagesign.SignFile(t.Context(), img, img, imageKey.s)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(img)
	os.WriteFile(filepath.Join(dir, "torwrt-0.1.0-gl-ar150.manifest"), []byte("base-files - 1.0-r1\ntor - 0.4.8.13-r1\n"), 0o644)
	rep := map[string]any{
		"profile": "gl-ar150", "brand": "torwrt", "channel": "stable", "version": "0.1.0", "source_date_epoch": 1735689600,
		"imagebuilder_image": "127.0.0.1:5000/imagebuilder@sha256:" + strings.Repeat("ab", 32),
		"lock_sha256":        sha([]byte("lock")), "profile_sha256": sha([]byte("profile")),
		"packages": []string{"base-files 1.0-r1", "tor 0.4.8.13-r1"}, "image": name, "image_sha256": res.SHA256,
		"image_size": len(data), "signed_by": res.Key, "board": "glinet,gl-ar150",
		"daemon": map[string]any{"sha256": sha([]byte("daemon")), "go_version": "go1.26.8", "argv": []string{"go", "build"}, "env": []string{"CGO_ENABLED=0"}},
	}
	b, _ := json.MarshalIndent(rep, "", "  ")
	os.WriteFile(filepath.Join(dir, dist.ReportFile), b, 0o644)
	return distDir
}

func prepare(t *testing.T, distDir string, seq uint64) []byte {
	t.Helper()
	_, env, err := release.Prepare(t.Context(), release.PrepareOptions{
		Dist: distDir, Channel: "stable", Sequence: seq, IssuedAt: now, Lifetime: 720 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func sign(t *testing.T, env []byte, h *holder, trusted *usign.Keyring) []byte {
	t.Helper()
	out, _, err := release.Sign(t.Context(), env, h.s, release.SignOptions{Trusted: trusted})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestThresholdRelease(t *testing.T) {
	dir := t.TempDir()
	a, b, c := newHolder(t, dir, "alice"), newHolder(t, dir, "bob"), newHolder(t, dir, "carol")
	kr := keyring(t, a, b, c)
	distDir := makeDist(t, a)
	env := prepare(t, distDir, 7)

	in, err := release.Inspect(env)
	if err != nil {
		t.Fatal(err)
	}
	r := in.Manifest.Releases[0]
	if in.Kind != release.KindManifest || r.TorVersion != "0.4.8.13-r1" || r.Build != 7 || r.Board[0] != "glinet,gl-ar150" {
		t.Fatalf("prepared manifest %+v", in.Manifest)
	}
	verify := func(env []byte) error {
		_, err := release.Verify(t.Context(), env, release.VerifyOptions{Keys: kr, Threshold: 2, Now: now, Dist: distDir})
		return err
	}
	one := sign(t, env, a, kr)
	if err := verify(one); !errors.Is(err, manifest.ErrThreshold) {
		t.Fatalf("1-of-3 accepted: %v", err)
	}
	two := sign(t, one, c, kr)
	if err := verify(two); err != nil {
		t.Fatalf("2-of-3 refused: %v", err)
	}

	// The same signature twice counts once.
	e1, _ := manifest.Decode(one, 0)
	e1.Signatures = append(e1.Signatures, e1.Signatures[0])
	dup, _ := e1.Marshal()
	if err := verify(dup); !errors.Is(err, manifest.ErrThreshold) {
		t.Fatalf("duplicate signature counted twice: %v", err)
	}
	// Signing twice with one key is refused.
	if _, _, err := release.Sign(t.Context(), one, a.s, release.SignOptions{Trusted: kr}); err == nil {
		t.Fatal("key signed twice")
	}
	// A 1-of-3 with an untrusted second key does not reach 2.
	stranger := newHolder(t, dir, "mallory")
	withStranger := sign(t, one, stranger, keyring(t, a, stranger))
	if err := verify(withStranger); !errors.Is(err, manifest.ErrThreshold) {
		t.Fatalf("untrusted key counted: %v", err)
	}

	// distDir must match: a changed image is refused.
	img := filepath.Join(distDir, "gl-ar150", r.Image)
	data, _ := os.ReadFile(img)
	data[100] ^= 1
	os.WriteFile(img, data, 0o644)
	if err := verify(two); !errors.Is(err, release.ErrDist) {
		t.Fatalf("altered image accepted: %v", err)
	}
}

func TestSignRefusesAlteredManifest(t *testing.T) {
	dir := t.TempDir()
	a, b := newHolder(t, dir, "alice"), newHolder(t, dir, "bob")
	kr := keyring(t, a, b)
	env := prepare(t, makeDist(t, a), 3)
	one := sign(t, env, a, kr)

	// Someone swaps the payload after alice signed (a higher build
	// number), keeping her signature.
	e, _ := manifest.Decode(one, 0)
	m, _ := manifest.DecodeManifest(e.Signed)
	m.Releases[0].Build = 99
	e.Signed, _ = manifest.Encode(m)
	altered, _ := e.Marshal()
	_, _, err := release.Sign(t.Context(), altered, b.s, release.SignOptions{Trusted: kr})
	if !errors.Is(err, release.ErrAltered) {
		t.Fatalf("second signer signed an altered manifest: %v", err)
	}
	// Without alice's public key bob cannot check, and refuses too.
	_, _, err = release.Sign(t.Context(), one, b.s, release.SignOptions{Trusted: keyring(t, b)})
	if !errors.Is(err, release.ErrUnverifiable) {
		t.Fatalf("signed without checking: %v", err)
	}
	// The digest given out of band must match.
	in, _ := release.Inspect(one)
	if _, _, err := release.Sign(t.Context(), one, b.s, release.SignOptions{Trusted: kr, ExpectSHA256: in.Digest}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := release.Sign(t.Context(), one, b.s, release.SignOptions{Trusted: kr, ExpectSHA256: sha([]byte("x"))}); !errors.Is(err, release.ErrDigest) {
		t.Fatalf("wrong expected digest: %v", err)
	}
}

func TestKeyRotation(t *testing.T) {
	dir := t.TempDir()
	a, b, c, d := newHolder(t, dir, "alice"), newHolder(t, dir, "bob"), newHolder(t, dir, "carol"), newHolder(t, dir, "dave")
	pubs := func(hs ...*holder) []*usign.PublicKey {
		var out []*usign.PublicKey
		for _, h := range hs {
			out = append(out, h.key.Public())
		}
		return out
	}
	v1, err := release.NewKeyList(1, 2, pubs(a, b, c), map[string]string{a.key.Fingerprint.String(): "alice"})
	if err != nil {
		t.Fatal(err)
	}
	rootEnv, _ := release.NewKeyListEnvelope(v1)
	root := sign(t, sign(t, rootEnv, a, nil), b, nil)
	if _, err := release.VerifyRootKeyList(root); err != nil {
		t.Fatal(err)
	}
	if _, err := release.VerifyRootKeyList(sign(t, rootEnv, a, nil)); !errors.Is(err, release.ErrThreshold) {
		t.Fatalf("root with one signature: %v", err)
	}

	// Rotation: carol's key leaked; replace it by dave's.
	next, v2, err := release.Rotate(v1, pubs(a, b, d), 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Version != 2 {
		t.Fatalf("version %d", v2.Version)
	}
	old := keyring(t, a, b, c)
	// Signed by the old threshold (alice, bob) and dave: accepted.
	rot := sign(t, sign(t, sign(t, next, a, old), b, old), d, old)
	got, err := release.VerifyKeyChain(root, rot)
	if err != nil {
		t.Fatalf("rotation refused: %v", err)
	}
	// Carol (revoked) and dave alone cannot rotate: only one old key.
	bad := sign(t, sign(t, next, c, old), d, old)
	if _, err := release.VerifyKeyChain(root, bad); !errors.Is(err, release.ErrRotation) {
		t.Fatalf("rotation without the old threshold: %v", err)
	}
	// Version 3 cannot be applied directly to version 1.
	skip, _, _ := release.Rotate(v2, pubs(a, b, d), 2, nil)
	skip = sign(t, sign(t, skip, a, nil), b, nil)
	if _, err := release.VerifyKeyChain(root, skip); !errors.Is(err, release.ErrRotation) {
		t.Fatalf("skipped version: %v", err)
	}

	// After rotation the revoked key no longer counts.
	kr, _ := got.Keyring()
	env := prepare(t, makeDist(t, a), 5)
	withRevoked := sign(t, sign(t, env, a, old), c, old)
	if _, err := release.Verify(t.Context(), withRevoked, release.VerifyOptions{Keys: kr, Threshold: got.Threshold, Now: now}); !errors.Is(err, manifest.ErrThreshold) {
		t.Fatalf("revoked key counted after rotation: %v", err)
	}
	if _, err := release.Verify(t.Context(), withRevoked, release.VerifyOptions{Keys: old, Threshold: 2, Now: now}); err != nil {
		t.Fatalf("before rotation the same manifest verified: %v", err)
	}
	good := sign(t, sign(t, env, a, kr), d, kr)
	if _, err := release.Verify(t.Context(), good, release.VerifyOptions{Keys: kr, Threshold: got.Threshold, Now: now}); err != nil {
		t.Fatal(err)
	}
}

func needCosign(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("cosign")
	if err != nil {
		t.Fatal("cosign not found on PATH; install it with scripts/install-cosign.sh (go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5) and put its directory on PATH")
	}
	return p
}

func TestAttestAndCosign(t *testing.T) {
	cosign := needCosign(t)
	dir := t.TempDir()
	a := newHolder(t, dir, "alice")
	ecPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer.WritePEMPrivateKey(filepath.Join(dir, "attest.pem"), ecPriv)
	ec, err := signer.Open(t.Context(), filepath.Join(dir, "attest.pem"), signer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	distDir := makeDist(t, a)
	res, err := release.Attest(t.Context(), release.AttestOptions{
		Dist: distDir, Keys: keyring(t, a), Signers: []signer.Signer{a.s, ec},
		SourceCommit: strings.Repeat("c", 40),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || len(res[0].Notes) != 1 || !strings.Contains(res[0].Notes[0], "no SBOM") {
		t.Fatalf("attest result %+v", res)
	}
	p := filepath.Join(distDir, "gl-ar150")
	img := filepath.Join(p, res[0].Image)
	cosignVerify := func(key, sig, blob string) error {
		cmd := exec.Command(cosign, "verify-blob", "--offline=true", "--key", key, "--signature", sig, "--insecure-ignore-tlog=true", blob)
		// cosign looks for its TUF mirror even when a key is given; a proxy
		// on a closed loopback port keeps that attempt on this machine.
		cmd.Env = append(os.Environ(), "TUF_ROOT="+t.TempDir(), "SIGSTORE_NO_CACHE=1",
			"HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9", "NO_PROXY=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
		return nil
	}
	if err := cosignVerify(filepath.Join(p, dist.CosignPubFile), img+dist.CosignSuffix, img); err != nil {
		t.Fatalf("cosign verify-blob refuses the image signature: %v", err)
	}
	// A flipped byte is refused by cosign too (the check is real).
	data, _ := os.ReadFile(img)
	bad := filepath.Join(dir, "bad.bin")
	data[len(data)/2] ^= 1
	os.WriteFile(bad, data, 0o644)
	if cosignVerify(filepath.Join(p, dist.CosignPubFile), img+dist.CosignSuffix, bad) == nil {
		t.Fatal("cosign accepted a modified image")
	}

	// Provenance: DSSE by both keys, subject digest = image digest.
	envData, err := os.ReadFile(filepath.Join(p, dist.ProvenanceFile))
	if err != nil {
		t.Fatal(err)
	}
	v, err := provenance.VerifyDSSE(envData, map[string]crypto.PublicKey{a.s.KeyID(): a.s.Public(), ec.KeyID(): ec.Public()}, 2)
	if err != nil {
		t.Fatal(err)
	}
	subjects, _ := provenance.Subjects(v.Payload)
	img0, _ := os.ReadFile(img)
	if len(subjects) != 1 || subjects[0].Name != res[0].Image || subjects[0].SHA256 != sha(img0) {
		t.Fatalf("subjects %+v, image sha256 %s", subjects, sha(img0))
	}
	sums, _ := os.ReadFile(filepath.Join(p, dist.SumsFile))
	for _, f := range []string{dist.ProvenanceFile, dist.CosignPubFile, res[0].Image + dist.CosignSuffix} {
		if !strings.Contains(string(sums), "*"+f+"\n") {
			t.Errorf("sha256sums lacks %s:\n%s", f, sums)
		}
	}

	// A manifest's detached ECDSA signature verifies with cosign too.
	env := sign(t, prepare(t, distDir, 1), a, nil)
	det, _, err := release.SignDetached(t.Context(), env, ec, release.SignOptions{Trusted: keyring(t, a)})
	if err != nil {
		t.Fatal(err)
	}
	payload, sigFile, pubFile := filepath.Join(dir, "release.payload.json"), filepath.Join(dir, "release.sig"), filepath.Join(dir, "attest.pub")
	os.WriteFile(payload, det.Payload, 0o644)
	os.WriteFile(sigFile, det.Signature, 0o644)
	pemKey, _ := signer.PublicKeyPEM(ec.Public())
	os.WriteFile(pubFile, pemKey, 0o644)
	if err := cosignVerify(pubFile, sigFile, payload); err != nil {
		t.Fatalf("cosign refuses the detached P-256 manifest signature: %v", err)
	}
	// A P-256 key cannot add a router-countable signature.
	if _, _, err := release.Sign(t.Context(), env, ec, release.SignOptions{Trusted: keyring(t, a)}); !errors.Is(err, signer.ErrNotEd25519) {
		t.Fatalf("P-256 key signed the envelope: %v", err)
	}

	// Provenance whose subject is not the image is refused.
	os.WriteFile(filepath.Join(p, dist.StatementFile), []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"other.bin","digest":{"sha256":"`+strings.Repeat("0", 64)+`"}}]}`), 0o644)
	if _, err := release.Attest(t.Context(), release.AttestOptions{Dist: distDir, Keys: keyring(t, a)}); !errors.Is(err, release.ErrDist) {
		t.Fatalf("provenance about another file accepted: %v", err)
	}
}
