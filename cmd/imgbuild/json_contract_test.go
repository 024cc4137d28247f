package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/cliout"
)

// jsonDoc checks r's stdout against the --json contract of docs/cli.md
// (cliout.Check: one document, strictly decoded into the documented type
// T, schema torwrt.imgbuild.<verb>/v1, ok/exit_code/error consistent with
// the exit code) and returns the document.
func jsonDoc[T any](t *testing.T, r fndResult, verb string) cliout.Document[T] {
	t.Helper()
	doc, err := cliout.Check[T]([]byte(r.stdout), cliout.Schema("imgbuild", strings.Fields(verb)...), r.code)
	if err != nil {
		t.Fatalf("%s --json: %v\nstdout: %s\nstderr: %s", verb, err, r.stdout, r.stderr)
	}
	return doc
}

// jsonFail runs a failing --json command line and checks its document's
// exit code and error code.
func jsonFail[T any](t *testing.T, verb string, exit int, code string, args ...string) cliout.Document[T] {
	t.Helper()
	r := fndRun(t, args...)
	doc := jsonDoc[T](t, r, verb)
	if r.code != exit || doc.Error == nil || doc.Error.Code != code {
		t.Errorf("%v: exit %d error %+v, want exit %d code %q\nstderr: %s", args, r.code, doc.Error, exit, code, r.stderr)
	}
	return doc
}

// A flag error with --json: one document on stdout, and on stderr the
// error once and the usage once.
func TestJSONFlagError(t *testing.T) {
	for _, args := range [][]string{
		{"inspect", "--json", "--filez", "x.bin"},
		{"inspect", "--filez", "x.bin", "--json"}, // --json after the bad flag
		{"release", "sign", "--detatched", "--json=true", "f"},
	} {
		r := fndRun(t, args...)
		verb := args[0]
		if verb == "release" {
			verb = "release sign"
		}
		doc := jsonDoc[any](t, r, verb)
		if r.code != exitUsage || doc.Error == nil || doc.Error.Code != cliout.CodeUsage || !strings.Contains(doc.Error.Message, "flag provided but not defined") {
			t.Errorf("%v: exit %d, %+v", args, r.code, doc.Error)
		}
		if n := strings.Count(r.stderr, "flag provided but not defined"); n != 1 {
			t.Errorf("%v: error on stderr %d times:\n%s", args, n, r.stderr)
		}
		if n := strings.Count(r.stderr, "Usage:"); n != 1 {
			t.Errorf("%v: usage on stderr %d times:\n%s", args, n, r.stderr)
		}
	}
	// --json=false is not JSON.
	r := fndRun(t, "inspect", "--filez", "--json=false", "x.bin")
	if r.code != exitUsage || r.stdout != "" {
		t.Errorf("--json=false: exit %d stdout %q", r.code, r.stdout)
	}
}

// Every verb with --json, on success and on failure, against the types
// docs/cli.md documents. Verbs that need podman, the network or a built
// dist/ are covered on failure here and on success by their own tests
// (build: TestJSONBuild, ib import: TestIBImport).
func TestJSONContract(t *testing.T) {
	f := fndMakeFixtures(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.bin")

	t.Run("version", func(t *testing.T) {
		doc := jsonDoc[versionInfo](t, fndMust(t, "version", "--json"), "version")
		if doc.Result.Version == "" || doc.Result.Platform == "" {
			t.Errorf("%+v", doc.Result)
		}
		jsonFail[versionInfo](t, "version", exitUsage, cliout.CodeUsage, "version", "--json", "extra")
	})

	t.Run("keygen", func(t *testing.T) {
		base := filepath.Join(dir, "kg")
		doc := jsonDoc[keygenResult](t, fndMust(t, "keygen", "-o", base, "--comment", "c1", "--json"), "keygen")
		if k := doc.Result.Key; len(k.Fingerprint) != 16 || k.Comment != "c1" || k.File != base+".pub" || doc.Result.SecretKey != base+".sec" {
			t.Errorf("%+v", doc.Result)
		}
		d := jsonFail[*keygenResult](t, "keygen", exitFailure, cliout.CodeFailed, "keygen", "-o", base, "--json")
		if d.Result != nil {
			t.Errorf("a failed keygen reports a key: %+v", d.Result)
		}
	})

	t.Run("inspect", func(t *testing.T) {
		doc := jsonDoc[*inspectReport](t, fndMust(t, "inspect", "--json", f.img["good"]), "inspect")
		rep := doc.Result
		if rep == nil || len(rep.Chunks) != 2 || rep.Signature == nil || rep.Signature.Verified || rep.Signature.Key == nil || rep.Signature.Key.Fingerprint != f.fp {
			t.Fatalf("%+v", rep)
		}
		if c := rep.Chunks[1]; c.Type != "signature" || c.TypeID != 0 || !c.CRCOK || !reflect.DeepEqual(c.Signature, rep.Signature) {
			t.Errorf("signature chunk %+v", c)
		}
		notImage := fndWrite(t, filepath.Join(dir, "text"), []byte("not firmware\n"), 0o644)
		jsonFail[*inspectReport](t, "inspect", exitFailure, cliout.CodeNotAnImage, "inspect", "--json", notImage)
		jsonFail[*inspectReport](t, "inspect", exitFailure, cliout.CodeNotFound, "inspect", "--json", missing)
		jsonFail[*inspectReport](t, "inspect", exitUsage, cliout.CodeUsage, "inspect", "--json")
	})

	t.Run("verify", func(t *testing.T) {
		doc := jsonDoc[verifyResult](t, fndMust(t, "verify", "--keys", f.keys, "--board", "glinet,gl-ar150", "--json", f.img["good"]), "verify")
		s := doc.Result.Signature
		if s == nil || !s.Verified || s.Key.Fingerprint != f.fp || s.ChainLength != 1 || doc.Result.Board != "glinet,gl-ar150" {
			t.Fatalf("%+v", doc.Result)
		}
		if c := doc.Result.Chunks[1].Signature; c == nil || !c.Verified {
			t.Errorf("the signature chunk is not marked verified: %+v", c)
		}
		// The shape of inspect's chunks, field for field.
		in := jsonDoc[*inspectReport](t, fndMust(t, "inspect", "--json", f.img["good"]), "inspect")
		if len(in.Result.Chunks) != len(doc.Result.Chunks) || !reflect.DeepEqual(in.Result.Chunks[0], doc.Result.Chunks[0]) {
			t.Errorf("inspect and verify show chunks differently:\n%+v\n%+v", in.Result.Chunks, doc.Result.Chunks)
		}
		jsonFail[verifyResult](t, "verify", exitRejected, cliout.CodeUnsigned, "verify", "--keys", f.keys, "--json", f.img["fake-cert"])
		jsonFail[verifyResult](t, "verify", exitRejected, cliout.CodeWrongBoard, "verify", "--keys", f.keys, "--board", "other,board", "--json", f.img["good"])
		jsonFail[verifyResult](t, "verify", exitFailure, cliout.CodeNotFound, "verify", "--keys", f.keys, "--json", missing)
		jsonFail[verifyResult](t, "verify", exitUsage, cliout.CodeUsage, "verify", "--json", f.img["good"])
	})

	t.Run("sign", func(t *testing.T) {
		base, fp, _ := fndKeygen(t, dir, "signer")
		img := fndWrite(t, filepath.Join(dir, "to-sign.bin"), fndUnsigned(5000), 0o644)
		doc := jsonDoc[signResult](t, fndMust(t, "sign", "--key", base+".sec", "--json", img), "sign")
		if s := doc.Result.Signature; s.Key == nil || s.Key.Fingerprint != fp || s.ChainLength != 1 || doc.Result.Detached != img+".sig" {
			t.Errorf("%+v", doc.Result)
		}
		doc = jsonDoc[signResult](t, fndMust(t, "sign", "--key", base+".sec", "--build-key-hours", "2", "--build-key-not-before", "1700000000", "--json", img), "sign")
		if s := doc.Result.Signature; s.ChainLength != 2 || s.Issuer == nil || s.Issuer.Fingerprint != fp || s.Key.Fingerprint == fp || s.ValidFrom != 1700000000 || s.ExpiresAt != 1700000000+7200 {
			t.Errorf("build key signature %+v", s)
		}
		jsonFail[signResult](t, "sign", exitFailure, cliout.CodeKeyType, "sign", "--key", base+".pub", "--json", img)
		jsonFail[signResult](t, "sign", exitUsage, cliout.CodeUsage, "sign", "--json", img)
	})

	t.Run("diff", func(t *testing.T) {
		// diff reads the root filesystem: images with a real squashfs.
		good, fake := jsonSquashfsImage(t, f.sec, "good"), jsonSquashfsImage(t, "", "fake-cert")
		f := &fndFixtures{fp: f.fp, img: map[string]string{"good": good, "fake-cert": fake}}
		r := fndRun(t, "diff", "--json", "--exit-code", f.img["good"], f.img["fake-cert"])
		doc := jsonDoc[*diffResult](t, r, "diff")
		if r.code != exitFailure || doc.Error.Code != cliout.CodeDiffer || doc.Result == nil || doc.Result.Identical || len(doc.Result.Images) != 2 {
			t.Fatalf("exit %d %+v %+v", r.code, doc.Error, doc.Result)
		}
		a, b := doc.Result.Images[0], doc.Result.Images[1]
		if a.Image != f.img["good"] || a.Signature == nil || a.Signature.Key.Fingerprint != f.fp || b.Signature == nil || !b.Signature.FakeCertificate || len(a.Chunks) != 2 {
			t.Errorf("images %+v", doc.Result.Images)
		}
		doc = jsonDoc[*diffResult](t, fndMust(t, "diff", "--json", f.img["good"], f.img["good"]), "diff")
		if !doc.Result.Identical {
			t.Errorf("an image differs from itself: %+v", doc.Result)
		}
		jsonFail[*diffResult](t, "diff", exitFailure, cliout.CodeNotFound, "diff", "--json", f.img["good"], missing)
		jsonFail[*diffResult](t, "diff", exitUsage, cliout.CodeUsage, "diff", "--json", f.img["good"])
	})

	t.Run("brand", func(t *testing.T) {
		root := brandTree(t)
		doc := jsonDoc[brandInitResult](t, fndMust(t, "brand", "init", "omega", "--root", root, "--key-out", filepath.Join(dir, "omega"), "--json"), "brand init")
		if k := doc.Result.ReleaseKey; len(k.Fingerprint) != 16 || k.File != filepath.Join(root, "brands", "omega", "omega.pub") || doc.Result.SecretKey != filepath.Join(dir, "omega.sec") {
			t.Errorf("%+v", doc.Result)
		}
		jsonFail[brandInitResult](t, "brand init", exitFailure, cliout.CodeFailed, "brand", "init", "omega", "--root", root, "--pub", filepath.Join(dir, "omega.pub"), "--json")

		chk := jsonDoc[brandCheckResult](t, fndMust(t, "brand", "check", "omega", "--root", root, "--json"), "brand check")
		if len(chk.Result.Brands) != 1 || chk.Result.Brands[0].Keys[0].Fingerprint != doc.Result.ReleaseKey.Fingerprint {
			t.Errorf("%+v", chk.Result)
		}
		os.Remove(filepath.Join(root, "brands", "omega", "logo.svg"))
		bad := jsonFail[brandCheckResult](t, "brand check", exitFailure, cliout.CodeInvalid, "brand", "check", "omega", "--root", root, "--json")
		if len(bad.Error.Details) != 1 || !strings.Contains(bad.Error.Details[0], "logo.svg") || len(bad.Result.Brands) != 0 {
			t.Errorf("problems %+v, result %+v", bad.Error, bad.Result)
		}
		jsonFail[brandCheckResult](t, "brand check", exitUsage, cliout.CodeNotFound, "brand", "check", "nope", "--root", root, "--json")
	})

	t.Run("lock", func(t *testing.T) {
		jsonFail[*lockResult](t, "lock", exitUsage, cliout.CodeUsage, "lock", "--root", brandTree(t), "--json")
		jsonFail[*lockResult](t, "lock", exitUsage, cliout.CodeNotFound, "lock", "--root", filepath.Join("..", ".."), "--profile", "no-such-profile", "--json")
	})

	t.Run("build", func(t *testing.T) {
		jsonFail[*buildResult](t, "build", exitUsage, cliout.CodeUsage, "build", "--root", filepath.Join("..", ".."), "--json")
		jsonFail[*buildResult](t, "build", exitUsage, cliout.CodeNotFound, "build", "--root", filepath.Join("..", ".."), "--profile", "no-such-profile", "--json")
	})

	t.Run("release", func(t *testing.T) {
		rdir := t.TempDir()
		pub, ks := relKeys(t, rdir, "alice", "bob", "carol")
		dist := relDist(t, ks[0].key)
		man := filepath.Join(dist, "release.json")

		prep := jsonDoc[releasePrepareResult](t, fndMust(t, "release", "prepare", "--dist", dist, "--sequence", "4", "--issued-at", "2025-06-01T00:00:00Z", "--json"), "release prepare")
		if prep.Result.File != man || len(prep.Result.PayloadSHA256) != 64 || prep.Result.Manifest == nil || len(prep.Result.Manifest.Releases) != 1 {
			t.Fatalf("%+v", prep.Result)
		}
		jsonFail[releasePrepareResult](t, "release prepare", exitUsage, cliout.CodeUsage, "release", "prepare", "--dist", dist, "--json")

		for i, k := range ks[:2] {
			doc := jsonDoc[releaseSignResult](t, fndMust(t, "release", "sign", "--key", k.sec, "--keys", pub, "--json", man), "release sign")
			if doc.Result.Key.Fingerprint != k.key.Fingerprint.String() || doc.Result.Signatures != i+1 || doc.Result.PayloadSHA256 != prep.Result.PayloadSHA256 || !slices.Equal(doc.Result.Wrote, []string{man}) {
				t.Errorf("%+v", doc.Result)
			}
		}
		jsonFail[releaseSignResult](t, "release sign", exitRejected, cliout.CodeMismatch, "release", "sign", "--key", ks[2].sec, "--expect-sha256", strings.Repeat("0", 64), "--json", man)

		ver := jsonDoc[releaseVerifyResult](t, fndMust(t, "release", "verify", "--keys", pub, "--threshold", "2", "--at", "2025-06-02T00:00:00Z", "--json", man), "release verify")
		if ver.Result.Kind != kindManifest || len(ver.Result.SignedBy) != 2 || ver.Result.Threshold != 2 || ver.Result.Sequence != 4 {
			t.Errorf("%+v", ver.Result)
		}
		jsonFail[releaseVerifyResult](t, "release verify", exitRejected, cliout.CodeThreshold, "release", "verify", "--keys", pub, "--threshold", "3", "--at", "2025-06-02T00:00:00Z", "--json", man)

		kl := filepath.Join(rdir, "keys.json")
		keys := jsonDoc[releaseKeyListResult](t, fndMust(t, "release", "keys", "--keys", pub, "--threshold", "2", "--out", kl, "--json"), "release keys")
		if keys.Result.File != kl || keys.Result.Version != 1 || len(keys.Result.Keys) != 3 || len(keys.Result.Revoked) != 0 {
			t.Errorf("%+v", keys.Result)
		}
		jsonFail[releaseKeyListResult](t, "release keys", exitUsage, cliout.CodeUsage, "release", "keys", "--keys", pub, "--json")
		jsonFail[releaseVerifyResult](t, "release verify", exitRejected, cliout.CodeThreshold, "release", "verify", "--json", kl)
		jsonFail[releaseKeyListResult](t, "release rotate", exitUsage, cliout.CodeUsage, "release", "rotate", "--root", kl, "--json")

		// attest needs a real build report (its daemon section): its
		// success is TestReleaseScriptEndToEnd's, through the same report.
		jsonFail[releaseAttestResult](t, "release attest", exitFailure, cliout.CodeFailed, "release", "attest", "--dist", dist, "--keys", pub, "--key", ks[0].sec, "--json")
		jsonFail[releaseAttestResult](t, "release attest", exitUsage, cliout.CodeUsage, "release", "attest", "--dist", dist, "--json")

		pk := jsonDoc[releasePubkeyResult](t, fndMust(t, "release", "pubkey", "--key", ks[0].sec, "--json"), "release pubkey")
		if pk.Result.Key.Fingerprint != ks[0].key.Fingerprint.String() || !strings.Contains(pk.Result.PEM, "PUBLIC KEY") || !strings.HasPrefix(pk.Result.Usign, "untrusted comment:") {
			t.Errorf("%+v", pk.Result)
		}
		jsonFail[releasePubkeyResult](t, "release pubkey", exitFailure, cliout.CodeKeyType, "release", "pubkey", "--key", filepath.Join(pub, "alice.pub"), "--json")
	})

	t.Run("ib import", func(t *testing.T) {
		jsonFail[*ibImportResult](t, "ib import", exitUsage, cliout.CodeUsage, "ib", "import", "--json", "x.tar.zst")
		jsonFail[*ibImportResult](t, "ib import", exitFailure, cliout.CodeNotFound, "ib", "import", "--json", "--sha256sums", missing, "--sig", missing, "x.tar.zst")
	})
}

// jsonSquashfsImage writes a sysupgrade image whose payload is a small
// squashfs, signed with sec, or with the fake certificate when sec is "".
func jsonSquashfsImage(t *testing.T, sec, name string) string {
	t.Helper()
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	fndWrite(t, filepath.Join(tree, "etc", "banner"), []byte("torwrt\n"), 0o644)
	sq := filepath.Join(dir, "root.squashfs")
	if out, err := exec.Command("mksquashfs", tree, sq, "-noappend", "-all-root", "-no-progress", "-quiet", "-mkfs-time", "0", "-all-time", "0").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs (Debian package squashfs-tools): %v\n%s", err, out)
	}
	payload := append(fndPayload(64<<10), fndRead(t, sq)...)
	for len(payload)%(64<<10) != 0 {
		payload = append(payload, 0xff)
	}
	img := fndAppend(payload, 1, append(make([]byte, 8), fndGLAR150...))
	if sec == "" {
		return fndWrite(t, filepath.Join(dir, name+".bin"), fndAppend(img, 0, []byte("# fake certificate")), 0o644)
	}
	p := fndWrite(t, filepath.Join(dir, name+".bin"), img, 0o644)
	fndMust(t, "sign", "--key", sec, p)
	return p
}
