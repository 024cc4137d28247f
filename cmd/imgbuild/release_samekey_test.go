package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/manifest"
	"github.com/torwrt/torwrt/internal/usign"
)

// TestReleaseVerifyOneKeyTwice performs the attack on `imgbuild release
// verify`: one key pair is written into the trusted key directory twice,
// under two fingerprints, and signs the manifest as both. A 2-of-N check
// must refuse it, and so must `release keys`, which would pin such a set.
func TestReleaseVerifyOneKeyTwice(t *testing.T) {
	dir := t.TempDir()
	pub, ks := relKeys(t, dir, "alice")
	alice := ks[0].key
	twin := *alice
	twin.Fingerprint = usign.Fingerprint{0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee}
	twin.Comment = "twin of alice"
	if err := os.WriteFile(filepath.Join(pub, "twin.pub"), twin.Public().Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}

	dist := relDist(t, alice)
	man := filepath.Join(dist, "release.json")
	mustRun(t, nil, "release", "prepare", "--dist", dist, "--sequence", "4", "--issued-at", "2025-06-01T00:00:00Z")
	data, err := os.ReadFile(man)
	if err != nil {
		t.Fatal(err)
	}
	env, err := manifest.Decode(data, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []*usign.SecretKey{alice, &twin} {
		sig, err := k.Sign(env.Signed)
		if err != nil {
			t.Fatal(err)
		}
		if err := env.AddSignature(sig); err != nil {
			t.Fatal(err)
		}
	}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(man, b, 0o644); err != nil {
		t.Fatal(err)
	}

	code, out, errs := relRun(t, nil, "release", "verify", "--threshold", "2", "--keys", pub, "--dist", dist, "--at", "2025-06-02T00:00:00Z", man)
	if code == exitOK {
		t.Fatalf("one key signing under two fingerprints met 2-of-2:\n%s", out)
	}
	if !strings.Contains(errs, "same Ed25519 public key") {
		t.Errorf("exit %d, stderr %q does not name the duplicate key", code, errs)
	}

	code, out, errs = relRun(t, nil, "release", "keys", "--keys", pub, "--threshold", "2", "--out", filepath.Join(dir, "keys.json"))
	if code == exitOK || !strings.Contains(errs, "same Ed25519 public key") {
		t.Errorf("release keys with one key listed twice: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
}
