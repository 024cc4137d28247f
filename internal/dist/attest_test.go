package dist

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/gobuild"
	"github.com/torwrt/torwrt/internal/pkgdb"
	"github.com/torwrt/torwrt/internal/profile"
	"github.com/torwrt/torwrt/internal/provenance"
	"github.com/torwrt/torwrt/internal/usign"
)

// The inputs follow internal/provenance's tests (testInput,
// statementInput); the daemon is this test binary, which carries Go build
// info as the router daemon does.

const testIBRef = "127.0.0.1:5000/openwrt/imagebuilder:ath79-generic-24.10.3@sha256:" +
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func testDaemon(t *testing.T) []byte {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func testReport() *Report {
	return &Report{
		Profile: "gl-ar150", Brand: "torwrt", Channel: "stable", Version: "0.1.0", Build: 1,
		SourceDateEpoch: 1735689600, ImageBuilder: testIBRef, Engine: "podman",
		LockSHA256: SHA256Hex([]byte("lock")), ProfileSHA256: SHA256Hex([]byte("profile")),
		Daemon: &gobuild.Result{
			SHA256: SHA256Hex([]byte("daemon")), GoVersion: "go1.26.8",
			Argv: []string{"go", "build", "-trimpath"}, Env: []string{"CGO_ENABLED=0"},
		},
		Image: ImageName("torwrt", "0.1.0", "gl-ar150", false), ImageSHA256: SHA256Hex([]byte("image")), ImageSize: 5,
		Board: "glinet,gl-ar150",
		// This run's fields: they must not change either document.
		DistDir: "/tmp/run-1/dist/gl-ar150", Timings: map[string]string{"run": "3s"}, Cached: []string{"compile"},
	}
}

func testSBOMInput(t *testing.T) SBOMInput {
	return SBOMInput{
		Manifest: []byte("tor - 0.4.8.13-r1\nbase-files - 1.0-r1\nkmod-ath9k - 6.6.1-r1\n"),
		Lock: &profile.Lock{
			LockVersion: 1, Profile: "gl-ar150", ProfileSHA256: SHA256Hex([]byte("profile")),
			Image: profile.LockedImage{Ref: testIBRef},
			Packages: []profile.LockedPackage{
				{Name: "base-files", Version: "1.0-r1", Arch: "mips_24kc", Filename: "base-files_1.0-r1_mips_24kc.ipk", Size: 100, SHA256: SHA256Hex([]byte("base-files"))},
				{Name: "kmod-ath9k", Version: "6.6.1-r1", Arch: "mips_24kc", Bundled: true},
				{Name: "tor", Version: "0.4.8.13-r1", Arch: "mips_24kc", Filename: "tor_0.4.8.13-r1_mips_24kc.ipk", Size: 200, SHA256: SHA256Hex([]byte("tor"))},
			},
		},
		Installed: &pkgdb.Installed{Manager: "opkg", Path: "usr/lib/opkg/status", Packages: []pkgdb.Package{
			{Name: "base-files", Version: "1.0-r1", Arch: "mips_24kc", License: "GPL-2.0"},
			{Name: "kmod-ath9k", Version: "6.6.1-r1", Arch: "mips_24kc"},
			{Name: "tor", Version: "0.4.8.13-r1", Arch: "mips_24kc", License: "BSD-3-Clause"},
		}},
		Daemon: testDaemon(t),
		Tool:   "test",
	}
}

func testStatementInput() StatementInput {
	return StatementInput{
		BuilderID:    "https://torwrt.org/imgbuild/local",
		Invocation:   []string{"imgbuild", "build", "--profile", "gl-ar150", "--key", "PATH"},
		SourceRepo:   "https://github.com/torwrt/torwrt",
		SourceCommit: strings.Repeat("ab", 20),
		Byproducts:   []provenance.Subject{{Name: SBOMFile, SHA256: SHA256Hex([]byte("sbom"))}},
	}
}

func TestSBOMDeterministic(t *testing.T) {
	in := testSBOMInput(t)
	a, err := SBOM(testReport(), in)
	if err != nil {
		t.Fatal(err)
	}
	// A second call, with a fresh report whose run-only fields differ.
	r2 := testReport()
	r2.DistDir, r2.Timings, r2.Cached = "/elsewhere", map[string]string{"compile": "1m"}, nil
	b, err := SBOM(r2, testSBOMInput(t))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("two SBOMs of the same inputs differ:\n%s\n---\n%s", a, b)
	}
	var doc struct {
		BOMFormat   string `json:"bomFormat"`
		SpecVersion string `json:"specVersion"`
		Metadata    struct {
			Component struct {
				Name   string `json:"name"`
				Hashes []struct {
					Content string `json:"content"`
				} `json:"hashes"`
			} `json:"component"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(a, &doc); err != nil {
		t.Fatalf("SBOM is not JSON: %v", err)
	}
	if doc.BOMFormat != "CycloneDX" || doc.SpecVersion != "1.5" {
		t.Errorf("SBOM format %q %q", doc.BOMFormat, doc.SpecVersion)
	}
	if !bytes.Contains(a, []byte(testReport().ImageSHA256)) || !bytes.Contains(a, []byte(testReport().Image)) {
		t.Errorf("SBOM does not name the report's image and its sha256")
	}
	for _, leak := range []string{"/tmp/run-1", "/elsewhere"} {
		if bytes.Contains(a, []byte(leak)) {
			t.Errorf("SBOM holds this run's %q", leak)
		}
	}
	// The report's image is what the SBOM describes: another image, another SBOM.
	r3 := testReport()
	r3.ImageSHA256 = SHA256Hex([]byte("another image"))
	c, err := SBOM(r3, testSBOMInput(t))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, c) || !bytes.Contains(c, []byte(r3.ImageSHA256)) {
		t.Errorf("the SBOM does not follow the report's image sha256")
	}
	// Bad input is refused with provenance's error, wrapped.
	bad := testSBOMInput(t)
	bad.Lock = nil
	if _, err := SBOM(testReport(), bad); err == nil || !strings.HasPrefix(err.Error(), "sbom: ") {
		t.Errorf("SBOM without a lock: %v", err)
	}
}

func TestStatementDeterministic(t *testing.T) {
	a, err := Statement(testReport(), testStatementInput())
	if err != nil {
		t.Fatal(err)
	}
	r2 := testReport()
	r2.DistDir, r2.Timings, r2.Cached = "/elsewhere", nil, []string{"run"}
	b, err := Statement(r2, testStatementInput())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("two statements of the same inputs differ:\n%s\n---\n%s", a, b)
	}
	var st struct {
		Type    string `json:"_type"`
		Subject []struct {
			Name   string            `json:"name"`
			Digest map[string]string `json:"digest"`
		} `json:"subject"`
		PredicateType string `json:"predicateType"`
	}
	if err := json.Unmarshal(a, &st); err != nil {
		t.Fatalf("statement is not JSON: %v", err)
	}
	r := testReport()
	if len(st.Subject) != 1 || st.Subject[0].Name != r.Image || st.Subject[0].Digest["sha256"] != r.ImageSHA256 {
		t.Errorf("statement subject %+v, want %s at %s", st.Subject, r.Image, r.ImageSHA256)
	}
	if st.PredicateType != "https://slsa.dev/provenance/v1" {
		t.Errorf("predicate type %q", st.PredicateType)
	}
	if !bytes.Contains(a, []byte(r.Daemon.SHA256)) || !bytes.Contains(a, []byte(r.LockSHA256)) || !bytes.Contains(a, []byte(SBOMFile)) {
		t.Errorf("statement lacks the daemon, lock or byproduct:\n%s", a)
	}
	if bytes.Contains(a, []byte("/tmp/run-1")) || bytes.Contains(a, []byte("/elsewhere")) {
		t.Errorf("statement holds this run's dist directory")
	}
	// Another commit, another statement.
	in := testStatementInput()
	in.SourceCommit = strings.Repeat("cd", 20)
	c, err := Statement(testReport(), in)
	if err != nil || bytes.Equal(a, c) {
		t.Errorf("the statement does not follow the source commit (%v)", err)
	}
	// A report without its daemon section cannot be attested.
	nd := testReport()
	nd.Daemon = nil
	if _, err := Statement(nd, testStatementInput()); err == nil || !strings.Contains(err.Error(), "no daemon section") {
		t.Errorf("statement without a daemon: %v", err)
	}
	bad := testReport()
	bad.ImageBuilder = "openwrt/imagebuilder:latest"
	if _, err := Statement(bad, testStatementInput()); err == nil || !strings.HasPrefix(err.Error(), "provenance: ") {
		t.Errorf("statement of an unpinned ImageBuilder: %v", err)
	}
}

// The cosign files verify with plain Ed25519 against the PEM key, and
// carry the same 64 signature bytes as the usign signature.
func TestCosignFiles(t *testing.T) {
	k, err := usign.GenerateKey(strings.NewReader(strings.Repeat("c", 64)), "test")
	if err != nil {
		t.Fatal(err)
	}
	image := []byte("signed image bytes")
	sig, err := k.Sign(image)
	if err != nil {
		t.Fatal(err)
	}
	name := ImageName("torwrt", "0.1.0", "gl-ar150", true)
	files, err := CosignFiles(name, sig, k.Public())
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("CosignFiles: %d files, want 2", len(files))
	}
	raw, err := base64.StdEncoding.DecodeString(string(files[name+CosignSuffix]))
	if err != nil || !bytes.Equal(raw, sig.Sig[:]) {
		t.Fatalf("%s%s is not the base64 of the usign signature (%v)", name, CosignSuffix, err)
	}
	block, _ := pem.Decode(files[CosignPubFile])
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("%s is not a PEM public key:\n%s", CosignPubFile, files[CosignPubFile])
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	edPub, ok := pub.(ed25519.PublicKey)
	if !ok || !edPub.Equal(k.Public().Key) {
		t.Fatalf("%s holds %T, not the signing key", CosignPubFile, pub)
	}
	if !ed25519.Verify(edPub, image, raw) {
		t.Fatal("the cosign signature does not verify over the image")
	}
	if ed25519.Verify(edPub, append(image, 'x'), raw) {
		t.Fatal("the cosign signature verifies over other bytes")
	}
}
