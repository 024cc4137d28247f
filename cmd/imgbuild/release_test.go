package main

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/dist"
	"github.com/torwrt/torwrt/internal/fwimage"
	"github.com/torwrt/torwrt/internal/imagesig/imagesign"
	"github.com/torwrt/torwrt/internal/manifest"
	"github.com/torwrt/torwrt/internal/provenance"
	"github.com/torwrt/torwrt/internal/release"
	"github.com/torwrt/torwrt/internal/signer"
	"github.com/torwrt/torwrt/internal/signer/signertest"
	"github.com/torwrt/torwrt/internal/usign"
)

// relRun runs the CLI in-process with extra environment for getenv.
func relRun(t *testing.T, envv map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string {
		if v, ok := envv[k]; ok {
			return v
		}
		return os.Getenv(k)
	}}
	code := run(t.Context(), e, args)
	return code, out.String(), errb.String()
}

type relKey struct {
	sec string
	key *usign.SecretKey
}

func relKeys(t *testing.T, dir string, names ...string) (string, []relKey) {
	t.Helper()
	pubDir := filepath.Join(dir, "pub-"+strings.Join(names, "-"))
	os.MkdirAll(pubDir, 0o755)
	var out []relKey
	for _, n := range names {
		sec := filepath.Join(dir, n+".sec")
		var k *usign.SecretKey
		if data, err := os.ReadFile(sec); err == nil {
			k, _ = usign.ParseSecretKey(data)
		} else {
			k, _ = usign.GenerateKey(rand.Reader, n)
			os.WriteFile(sec, k.Marshal(), 0o600)
		}
		os.WriteFile(filepath.Join(pubDir, n+".pub"), k.Public().Marshal(), 0o644)
		out = append(out, relKey{sec, k})
	}
	return pubDir, out
}

// relDist writes one built profile as internal/build does.
func relDist(t *testing.T, imageKey *usign.SecretKey) string {
	t.Helper()
	distDir := t.TempDir()
	dir := filepath.Join(distDir, "gl-ar150")
	os.MkdirAll(dir, 0o755)
	name := "torwrt-0.1.0-gl-ar150-squashfs-sysupgrade.bin"
	meta := `{"metadata_version":"1.1","compat_version":"1.0","supported_devices":["glinet,gl-ar150"],"version":{"dist":"OpenWrt","version":"24.10.3","revision":"r1","target":"ath79/generic","board":"glinet_gl-ar150"}}` + "\n"
	var unsigned bytes.Buffer
	fwimage.AppendChunk(&unsigned, bytes.NewReader(bytes.Repeat([]byte("image "), 5000)), fwimage.TypeMetadata, fwimage.MetadataChunk([]byte(meta)))
	img := filepath.Join(dir, name)
	os.WriteFile(img, unsigned.Bytes(), 0o644)
	sg, err := signer.FromUsign(imageKey)
	if err != nil {
		t.Fatal(err)
	}
	res, err := imagesign.SignFile(t.Context(), img, img, sg)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(img)
	rep, _ := json.Marshal(map[string]any{
		"profile": "gl-ar150", "channel": "stable", "version": "0.1.0", "image": name, "image_sha256": res.SHA256, "image_size": fi.Size(),
		"board": "glinet,gl-ar150", "packages": []string{"tor 0.4.8.13-r1"}, "signed_by": res.Key,
	})
	os.WriteFile(filepath.Join(dir, dist.ReportFile), rep, 0o644)
	return distDir
}

func mustRun(t *testing.T, envv map[string]string, args ...string) {
	t.Helper()
	code, out, errs := relRun(t, envv, args...)
	mustOK(t, code, out, errs)
}

func mustOK(t *testing.T, code int, out, errs string) {
	t.Helper()
	if code != exitOK {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
}

func TestReleaseCLI(t *testing.T) {
	dir := t.TempDir()
	pub, ks := relKeys(t, dir, "alice", "bob", "carol")
	distDir := relDist(t, ks[0].key)
	man := filepath.Join(distDir, "release.json")
	at := []string{"--at", "2025-06-02T00:00:00Z"}

	code, out, errs := relRun(t, nil, "release", "prepare", "--dist", distDir, "--sequence", "4", "--issued-at", "2025-06-01T00:00:00Z")
	mustOK(t, code, out, errs)
	if !strings.Contains(out, "payload sha256 ") {
		t.Fatalf("prepare output: %s", out)
	}
	mustRun(t, nil, "release", "sign", "--key", ks[0].sec, "--keys", pub, man)
	if code, _, errs := relRun(t, nil, append([]string{"release", "verify", "--threshold", "2", "--keys", pub, "--dist", distDir, man}, at...)...); code != exitRejected {
		t.Fatalf("1-of-3 verify: exit %d, want %d (%s)", code, exitRejected, errs)
	}
	signedOnce, _ := os.ReadFile(man)

	t.Run("bad keys leave the manifest unchanged", func(t *testing.T) {
		loose := filepath.Join(dir, "loose.sec")
		data, _ := os.ReadFile(ks[1].sec)
		os.WriteFile(loose, data, 0o644)
		os.Chmod(loose, 0o644)
		t.Setenv("VAULT_ADDR", "http://127.0.0.1:1")
		t.Setenv("VAULT_TOKEN", "not-a-real-token")
		cases := []struct{ key, text string }{
			{loose, "chmod 600"},
			{"vault://transit/release", "unknown scheme"},
			{"hashivault://torwrt-release", "hashivault://torwrt-release"},
			{"pkcs11:token=torwrt;object=release?module-path=/nonexistent/lib.so&pin-value=123456", "/nonexistent/lib.so"},
		}
		for _, tc := range cases {
			code, _, errs := relRun(t, nil, "release", "sign", "--key", tc.key, "--keys", pub, man)
			if code == exitOK || !strings.Contains(errs, tc.text) {
				t.Errorf("sign --key %s: exit %d, stderr %q, want it to mention %q", tc.key, code, errs, tc.text)
			}
			if strings.Contains(errs, "123456") || strings.Contains(errs, "not-a-real-token") {
				t.Errorf("secret in the error: %s", errs)
			}
			if now, _ := os.ReadFile(man); !bytes.Equal(now, signedOnce) {
				t.Fatalf("a failed sign with %s changed the manifest", tc.key)
			}
		}
	})

	t.Run("altered manifest is refused by the second signer", func(t *testing.T) {
		in, _ := release.Inspect(signedOnce)
		in.Manifest.Releases[0].Build = 40
		in.Manifest.Releases[0].MinVersion = 40
		env := in.Envelope
		enc, err := manifest.Encode(in.Manifest)
		if err != nil {
			t.Fatal(err)
		}
		env.Signed = enc
		alt := filepath.Join(dir, "altered.json")
		b, _ := env.Marshal()
		os.WriteFile(alt, b, 0o644)
		code, _, errs := relRun(t, nil, "release", "sign", "--key", ks[1].sec, "--keys", pub, alt)
		if code != exitRejected || !strings.Contains(errs, "altered") {
			t.Fatalf("exit %d: %s", code, errs)
		}
		if now, _ := os.ReadFile(alt); !bytes.Equal(now, b) {
			t.Fatal("the refused sign wrote the file")
		}
	})

	// Bob checks the digest announced by prepare and signs: 2-of-3.
	in, _ := release.Inspect(signedOnce)
	mustRun(t, nil, "release", "sign", "--key", ks[1].sec, "--keys", pub, "--expect-sha256", in.Digest, man)
	code, out, errs = relRun(t, nil, append([]string{"release", "verify", "--threshold", "2", "--keys", pub, "--dist", distDir, man}, at...)...)
	mustOK(t, code, out, errs)
	if code, _, _ := relRun(t, nil, append([]string{"release", "verify", "--threshold", "3", "--keys", pub, man}, at...)...); code != exitRejected {
		t.Fatalf("2 signatures met threshold 3: exit %d", code)
	}

	t.Run("rotation revokes a key", func(t *testing.T) {
		root := filepath.Join(dir, "keys-v1.json")
		mustRun(t, nil, "release", "keys", "--keys", pub, "--threshold", "2", "--out", root)
		for _, k := range ks[:2] {
			mustRun(t, nil, "release", "sign", "--key", k.sec, root)
		}
		mustRun(t, nil, "release", "verify", root)
		// carol leaves; dave joins.
		newPub, nk := relKeys(t, dir, "alice", "bob", "dave")
		v2 := filepath.Join(dir, "keys-v2.json")
		code, out, errs := relRun(t, nil, "release", "rotate", "--root", root, "--new-keys", newPub, "--new-threshold", "2", "--out", v2)
		mustOK(t, code, out, errs)
		if !strings.Contains(out, "revoking keys: "+ks[2].key.Fingerprint.String()) {
			t.Fatalf("rotate output: %s", out)
		}
		// Signed by carol and dave only: not enough old keys.
		bad := filepath.Join(dir, "keys-v2-bad.json")
		data, _ := os.ReadFile(v2)
		os.WriteFile(bad, data, 0o644)
		for _, k := range []string{ks[2].sec, nk[2].sec} {
			mustRun(t, nil, "release", "sign", "--key", k, "--root", root, bad)
		}
		if code, _, _ := relRun(t, nil, "release", "verify", "--root", root, bad); code != exitRejected {
			t.Fatalf("rotation signed by one old key accepted: exit %d", code)
		}
		for _, k := range []string{ks[0].sec, ks[1].sec, nk[2].sec} {
			mustRun(t, nil, "release", "sign", "--key", k, "--root", root, v2)
		}
		mustRun(t, nil, "release", "verify", "--root", root, v2)
		// A manifest signed by alice and the revoked carol: accepted by
		// the old list, refused by the rotated one.
		m2 := filepath.Join(distDir, "release-2.json")
		mustRun(t, nil, "release", "prepare", "--dist", distDir, "--sequence", "5", "--out", m2, "--issued-at", "2025-06-01T00:00:00Z")
		for _, k := range []string{ks[0].sec, ks[2].sec} {
			mustRun(t, nil, "release", "sign", "--key", k, "--keys", pub, m2)
		}
		mustRun(t, nil, append([]string{"release", "verify", "--root", root, m2}, at...)...)
		code, _, errs = relRun(t, nil, append([]string{"release", "verify", "--root", root, "--key-list", v2, m2}, at...)...)
		if code != exitRejected || !strings.Contains(errs, "not enough valid signatures") {
			t.Fatalf("revoked key counted after rotation: exit %d %s", code, errs)
		}
	})
}

func TestReleaseSignWithSoftHSM(t *testing.T) {
	hsm := signertest.NewSoftHSM(t)
	hsm.GenerateKey(t, "release", "0a", "EC:edwards25519")
	hsm.GenerateKey(t, "attest", "0b", "EC:prime256v1")
	dir := t.TempDir()
	pinEnv := map[string]string{signer.PINEnv: hsm.PIN}
	uri := hsm.URI("release")

	// The HSM key's usign public key goes into the trusted keys.
	pub := filepath.Join(dir, "pub")
	code, out, errs := relRun(t, pinEnv, "release", "pubkey", "--key", uri, "--out", pub)
	mustOK(t, code, out, errs)
	if strings.Contains(out+errs, hsm.PIN) {
		t.Fatal("PIN printed")
	}
	_, ks := relKeys(t, dir, "alice")
	os.WriteFile(filepath.Join(pub, "alice.pub"), ks[0].key.Public().Marshal(), 0o644)
	distDir := relDist(t, ks[0].key)
	man := filepath.Join(distDir, "release.json")
	mustRun(t, nil, "release", "prepare", "--dist", distDir, "--sequence", "1")
	before, _ := os.ReadFile(man)

	if code, _, errs := relRun(t, map[string]string{signer.PINEnv: "0000"}, "release", "sign", "--key", uri, "--keys", pub, man); code == exitOK || !strings.Contains(errs, "wrong PIN") {
		t.Fatalf("wrong PIN: exit %d %s", code, errs)
	}
	if now, _ := os.ReadFile(man); !bytes.Equal(now, before) {
		t.Fatal("a failed HSM sign changed the manifest")
	}
	mustRun(t, pinEnv, "release", "sign", "--key", uri, "--keys", pub, man)
	mustRun(t, nil, "release", "sign", "--key", ks[0].sec, "--keys", pub, man)
	mustRun(t, nil, "release", "verify", "--threshold", "2", "--keys", pub, "--dist", distDir, man)

	// The P-256 HSM key adds a detached signature, never a router one.
	if code, _, errs := relRun(t, pinEnv, "release", "sign", "--key", hsm.URI("attest"), "--keys", pub, man); code == exitOK || !strings.Contains(errs, "not Ed25519") {
		t.Fatalf("P-256 key in the envelope: exit %d %s", code, errs)
	}
	mustRun(t, pinEnv, "release", "sign", "--detached", "--key", hsm.URI("attest"), "--keys", pub, man)
}

// TestReleaseScriptEndToEnd runs ci/release.sh against the simulated
// ImageBuilder in podman with throwaway keys, then checks its distDir/ with
// `imgbuild release verify` and the provenance against the images.
func TestReleaseScriptEndToEnd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("ci/release.sh builds in podman as root; run this test as root (CI does)")
	}
	signertest.Need(t, "podman", "signify-openbsd", "cosign")
	work := t.TempDir()
	distDir := filepath.Join(work, "dist")
	cmd := exec.CommandContext(t.Context(), "bash", "ci/release.sh")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "WORK="+work, "DIST="+distDir, "CACHE="+filepath.Join(work, "cache"), "SEQUENCE=42")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ci/release.sh: %v\n%s", err, tail(out, 60))
	}
	if bytes.Contains(out, []byte("-----BEGIN PRIVATE")) || bytes.Contains(out, []byte("private key")) {
		t.Fatal("the release log shows secret key material")
	}
	pub := filepath.Join(distDir, "release-keys")
	code, o, errs := relRun(t, nil, "release", "verify", "--threshold", "2", "--keys", pub, "--dist", distDir, filepath.Join(distDir, "release.json"))
	mustOK(t, code, o, errs)
	mustRun(t, nil, "release", "verify", filepath.Join(distDir, "keys.json"))

	kr, err := readKeysDir(pub)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]crypto.PublicKey{}
	for _, k := range kr.Keys() {
		keys[k.Fingerprint.String()] = k.Key
	}
	profiles, err := dist.FindProfiles(distDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range profiles {
		env, err := os.ReadFile(filepath.Join(p.Dir, dist.ProvenanceFile))
		if err != nil {
			t.Fatal(err)
		}
		v, err := provenance.VerifyDSSE(env, keys, 1)
		if err != nil {
			t.Fatalf("%s: %v", p.Report.Profile, err)
		}
		subjects, _ := provenance.Subjects(v.Payload)
		img, _ := os.ReadFile(p.ImagePath())
		sum := sha256.Sum256(img)
		if len(subjects) != 1 || subjects[0].Name != p.Report.Image || subjects[0].SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: provenance subjects %+v do not match the image", p.Report.Profile, subjects)
		}
		if _, err := os.Stat(p.ImagePath() + dist.CosignSuffix); err != nil {
			t.Errorf("%s: %v", p.Report.Profile, err)
		}
	}
}

func tail(b []byte, n int) string {
	lines := strings.Split(string(b), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
