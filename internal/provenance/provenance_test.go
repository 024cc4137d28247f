package provenance_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
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
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	ssldsse "github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/sigstore/sigstore/pkg/signature"
	sigdsse "github.com/sigstore/sigstore/pkg/signature/dsse"

	"github.com/torwrt/torwrt/internal/profile"
	"github.com/torwrt/torwrt/internal/provenance"
	"github.com/torwrt/torwrt/internal/signer"
	"github.com/torwrt/torwrt/internal/usign"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

var daemonOnce struct {
	sync.Once
	bin []byte
	err error
}

// daemonBinary builds the real router daemon (for the host: the build info
// is the same shape as the MIPS one's, and the build cache makes it quick).
func daemonBinary(t *testing.T) []byte {
	t.Helper()
	daemonOnce.Do(func() {
		out := filepath.Join(os.TempDir(), fmt.Sprintf("torwrt-provenance-test-verify-%d", os.Getpid()))
		cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-o", out, "./cmd/verify")
		cmd.Dir = filepath.Join("..", "..")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if o, err := cmd.CombinedOutput(); err != nil {
			daemonOnce.err = fmt.Errorf("go build ./cmd/verify: %v\n%s", err, o)
			return
		}
		daemonOnce.bin, daemonOnce.err = os.ReadFile(out)
		os.Remove(out)
	})
	if daemonOnce.err != nil {
		t.Fatal(daemonOnce.err)
	}
	return daemonOnce.bin
}

const ibRef = "127.0.0.1:5000/openwrt/imagebuilder:ath79-generic-24.10.3@sha256:" +
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func testInput(t *testing.T) provenance.SBOMInput {
	lock := &profile.Lock{
		LockVersion: 1, Profile: "gl-ar150", ProfileSHA256: sha([]byte("profile")),
		Image: profile.LockedImage{Ref: ibRef},
		Packages: []profile.LockedPackage{
			{Name: "base-files", Version: "1.0-r1", Arch: "mips_24kc", Filename: "base-files_1.0-r1_mips_24kc.ipk", Size: 100, SHA256: sha([]byte("base-files"))},
			{Name: "kmod-ath9k", Version: "6.6.1-r1", Arch: "mips_24kc", Bundled: true},
			{Name: "tor", Version: "0.4.8.13-r1", Arch: "mips_24kc", Filename: "tor_0.4.8.13-r1_mips_24kc.ipk", Size: 200, SHA256: sha([]byte("tor"))},
		},
	}
	return provenance.SBOMInput{
		Image:     provenance.Subject{Name: "torwrt-0.1.0-gl-ar150-squashfs-sysupgrade.bin", SHA256: sha([]byte("image"))},
		ImageSize: 5, Profile: "gl-ar150", Brand: "torwrt", Version: "0.1.0", Board: "glinet,gl-ar150",
		ImageBuilder: ibRef,
		Manifest:     []byte("tor - 0.4.8.13-r1\nbase-files - 1.0-r1\nkmod-ath9k - 6.6.1-r1\n"),
		Lock:         lock, Daemon: daemonBinary(t), SourceDateEpoch: 1735689600, Tool: "test",
	}
}

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	files := map[string]string{
		"bom-1.5.SNAPSHOT.schema.json":  "http://cyclonedx.org/schema/bom-1.5.schema.json",
		"spdx.SNAPSHOT.schema.json":     "http://cyclonedx.org/schema/spdx.SNAPSHOT.schema.json",
		"jsf-0.82.SNAPSHOT.schema.json": "http://cyclonedx.org/schema/jsf-0.82.SNAPSHOT.schema.json",
	}
	for file, url := range files {
		f, err := os.Open(filepath.Join("testdata", "schema", file))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if err := c.AddResource(url, doc); err != nil {
			t.Fatal(err)
		}
	}
	c.AssertFormat()
	s, err := c.Compile("http://cyclonedx.org/schema/bom-1.5.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func validate(t *testing.T, s *jsonschema.Schema, doc []byte) error {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	return s.Validate(v)
}

func TestSBOMValidatesAgainstCycloneDX15(t *testing.T) {
	schema := compileSchema(t)
	in := testInput(t)
	doc, err := provenance.SBOM(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(t, schema, doc); err != nil {
		t.Fatalf("SBOM does not validate against the CycloneDX 1.5 schema: %v\n%s", err, doc)
	}
	// The schema is really checking: a broken document is refused.
	var m map[string]any
	json.Unmarshal(doc, &m)
	m["specVersion"] = 15
	broken, _ := json.Marshal(m)
	if validate(t, schema, broken) == nil {
		t.Fatal("schema accepted a document with a numeric specVersion")
	}

	again, err := provenance.SBOM(in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(doc, again) {
		t.Fatal("SBOM is not deterministic")
	}

	var bom struct {
		SerialNumber string
		Metadata     struct {
			Timestamp string
			Component struct {
				Name   string
				Hashes []struct{ Alg, Content string }
			}
		}
		Components []struct {
			BOMRef     string `json:"bom-ref"`
			Name       string
			Version    string
			Hashes     []struct{ Alg, Content string }
			Components []struct{ Name, Version, PURL string }
		}
	}
	if err := json.Unmarshal(doc, &bom); err != nil {
		t.Fatal(err)
	}
	if bom.Metadata.Timestamp != "2025-01-01T00:00:00Z" {
		t.Errorf("timestamp %s, want SOURCE_DATE_EPOCH", bom.Metadata.Timestamp)
	}
	if h := bom.Metadata.Component.Hashes; len(h) != 1 || h[0].Content != in.Image.SHA256 {
		t.Errorf("image hash %v", h)
	}
	byRef := map[string]int{}
	for i, c := range bom.Components {
		byRef[c.BOMRef] = i
	}
	ib := bom.Components[byRef["imagebuilder"]]
	if ib.Version != "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" || ib.Hashes[0].Content != ibRef[len(ibRef)-64:] {
		t.Errorf("imagebuilder component %+v", ib)
	}
	tor := bom.Components[byRef["openwrt-package:tor"]]
	if tor.Version != "0.4.8.13-r1" || len(tor.Hashes) != 1 || tor.Hashes[0].Content != sha([]byte("tor")) {
		t.Errorf("tor component %+v", tor)
	}
	if k := bom.Components[byRef["openwrt-package:kmod-ath9k"]]; len(k.Hashes) != 0 {
		t.Errorf("bundled package got a hash: %+v", k)
	}
	d := bom.Components[byRef["daemon"]]
	if d.Hashes[0].Content != sha(in.Daemon) {
		t.Errorf("daemon hash %s", d.Hashes[0].Content)
	}
	var sawGo, sawModule bool
	for _, c := range d.Components {
		sawGo = sawGo || c.Name == "go"
		sawModule = sawModule || c.Name == "filippo.io/edwards25519"
	}
	if !sawGo || !sawModule {
		t.Errorf("daemon modules from build info missing (go %v, module %v): %+v", sawGo, sawModule, d.Components)
	}

	other := in
	other.Image.SHA256 = sha([]byte("other image"))
	doc2, _ := provenance.SBOM(other)
	var bom2 struct{ SerialNumber string }
	json.Unmarshal(doc2, &bom2)
	if bom2.SerialNumber == bom.SerialNumber {
		t.Error("different images share a serial number")
	}
}

func TestSBOMRefuses(t *testing.T) {
	cases := map[string]func(*provenance.SBOMInput){
		"unpinned imagebuilder": func(in *provenance.SBOMInput) { in.ImageBuilder = "openwrt/imagebuilder:latest" },
		"no lock":               func(in *provenance.SBOMInput) { in.Lock = nil },
		"unlocked package":      func(in *provenance.SBOMInput) { in.Manifest = append(in.Manifest, "curl - 8.0\n"...) },
		"version drift":         func(in *provenance.SBOMInput) { in.Manifest = []byte("tor - 0.4.9.1-r1\n") },
		"not a go binary":       func(in *provenance.SBOMInput) { in.Daemon = []byte("#!/bin/sh\n") },
		"bad image digest":      func(in *provenance.SBOMInput) { in.Image.SHA256 = "abc" },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			in := testInput(t)
			mutate(&in)
			if _, err := provenance.SBOM(in); !errors.Is(err, provenance.ErrInput) {
				t.Fatalf("SBOM: %v, want ErrInput", err)
			}
		})
	}
}

func statementInput(images map[string][]byte) provenance.StatementInput {
	in := provenance.StatementInput{
		BuilderID:  "https://github.com/torwrt/torwrt/.github/workflows/release.yml@refs/tags/v0.1.0",
		Invocation: []string{"imgbuild", "build", "--profile", "gl-ar150", "--key", "pkcs11:token=torwrt;object=release"},
		Profile:    "gl-ar150", Brand: "torwrt", Version: "0.1.0",
		ImageBuilder: ibRef, LockSHA256: sha([]byte("lock")), ProfileSHA256: sha([]byte("profile")),
		GoVersion: "go1.26.8", DaemonSHA256: sha([]byte("daemon")),
		DaemonArgv: []string{"go", "build", "-trimpath"}, DaemonEnv: []string{"CGO_ENABLED=0"},
		SourceCommit: strings.Repeat("ab", 20), SourceDateEpoch: 1735689600, Engine: "podman",
	}
	for name, data := range images {
		in.Subjects = append(in.Subjects, provenance.Subject{Name: name, SHA256: sha(data)})
	}
	return in
}

func TestStatementSubjectsAreImageDigests(t *testing.T) {
	dir := t.TempDir()
	images := map[string][]byte{
		"torwrt-0.1.0-gl-ar150-squashfs-sysupgrade.bin":  []byte("ar150 image"),
		"torwrt-0.1.0-gl-mt300a-squashfs-sysupgrade.bin": []byte("mt300a image"),
	}
	for n, d := range images {
		os.WriteFile(filepath.Join(dir, n), d, 0o644)
	}
	stmt, err := provenance.Statement(statementInput(images))
	if err != nil {
		t.Fatal(err)
	}
	subjects, err := provenance.Subjects(stmt)
	if err != nil {
		t.Fatal(err)
	}
	if len(subjects) != len(images) {
		t.Fatalf("%d subjects, want %d", len(subjects), len(images))
	}
	for _, s := range subjects {
		data, err := os.ReadFile(filepath.Join(dir, s.Name))
		if err != nil {
			t.Fatalf("subject %s is not an image: %v", s.Name, err)
		}
		if s.SHA256 != sha(data) {
			t.Errorf("subject %s digest %s, image digest %s", s.Name, s.SHA256, sha(data))
		}
	}
	again, _ := provenance.Statement(statementInput(images))
	if !bytes.Equal(stmt, again) {
		t.Fatal("statement is not deterministic")
	}
	var st struct {
		Predicate struct {
			BuildDefinition struct {
				ResolvedDependencies []struct {
					Name, URI string
					Digest    map[string]string
				}
			}
			RunDetails struct{ Builder struct{ ID string } }
		}
		PredicateType string
	}
	json.Unmarshal(stmt, &st)
	if st.PredicateType != provenance.PredicateSLSA1 {
		t.Errorf("predicate type %s", st.PredicateType)
	}
	deps := map[string]string{}
	for _, d := range st.Predicate.BuildDefinition.ResolvedDependencies {
		deps[d.Name] = d.URI + " " + d.Digest["sha256"] + d.Digest["gitCommit"]
	}
	for _, want := range []string{"imagebuilder", "lock", "go", "source", "daemon", "profile"} {
		if deps[want] == "" {
			t.Errorf("resolved dependency %s missing: %v", want, deps)
		}
	}
	if !strings.Contains(deps["go"], "go1.26.8") || !strings.Contains(deps["lock"], sha([]byte("lock"))) {
		t.Errorf("dependencies %v", deps)
	}

	bad := statementInput(images)
	bad.SourceCommit = "main"
	if _, err := provenance.Statement(bad); !errors.Is(err, provenance.ErrInput) {
		t.Errorf("branch name as commit: %v", err)
	}
	bad = statementInput(nil)
	if _, err := provenance.Statement(bad); !errors.Is(err, provenance.ErrInput) {
		t.Errorf("no subjects: %v", err)
	}
}

func TestPAE(t *testing.T) {
	// The example from the DSSE specification.
	got := string(provenance.PAE("http://example.com/HelloWorld", []byte("hello world")))
	if want := "DSSEv1 29 http://example.com/HelloWorld 11 hello world"; got != want {
		t.Fatalf("PAE = %q, want %q", got, want)
	}
}

func TestDSSE(t *testing.T) {
	dir := t.TempDir()
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ecPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer.WritePEMPrivateKey(filepath.Join(dir, "ed.pem"), edPriv)
	signer.WritePEMPrivateKey(filepath.Join(dir, "ec.pem"), ecPriv)
	ed, err := signer.Open(t.Context(), filepath.Join(dir, "ed.pem"), signer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ec, err := signer.Open(t.Context(), filepath.Join(dir, "ec.pem"), signer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	uk, _ := usign.GenerateKey(rand.Reader, "image key")
	img, err := signer.FromUsign(uk)
	if err != nil {
		t.Fatal(err)
	}

	stmt, err := provenance.Statement(statementInput(map[string][]byte{"a.bin": []byte("a")}))
	if err != nil {
		t.Fatal(err)
	}
	env, err := provenance.SignDSSE(t.Context(), provenance.PayloadType, stmt, ed, img)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := provenance.SignDSSE(t.Context(), provenance.PayloadType, stmt, ed, img)
	if !bytes.Equal(env, again) {
		t.Fatal("Ed25519 DSSE envelope is not deterministic")
	}
	if bytes.Count(env, []byte("\n")) != 1 {
		t.Fatal("envelope is not one JSON line")
	}
	env, err = provenance.AddDSSESignature(t.Context(), env, ec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provenance.AddDSSESignature(t.Context(), env, ec); err == nil {
		t.Fatal("a key countersigned twice")
	}
	keys := map[string]crypto.PublicKey{
		ed.KeyID(): ed.Public(), ec.KeyID(): ec.Public(),
		uk.Fingerprint.String(): uk.Public().Key,
	}
	v, err := provenance.VerifyDSSE(env, keys, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(v.Payload, stmt) || v.PayloadType != provenance.PayloadType || len(v.KeyIDs) != 3 {
		t.Fatalf("verified %+v", v)
	}
	// go-securesystemslib's DSSE verifier (what sigstore and in-toto use)
	// accepts it too: the PAE and envelope are the standard ones.
	var ssl ssldsse.Envelope
	if err := json.Unmarshal(env, &ssl); err != nil {
		t.Fatal(err)
	}
	for _, s := range []signer.Signer{ed, ec} {
		ver, err := signature.LoadVerifier(s.Public(), crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := ssldsse.NewEnvelopeVerifier(&sigdsse.VerifierAdapter{SignatureVerifier: ver, Pub: s.Public(), PubKeyID: s.KeyID()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ev.Verify(t.Context(), &ssl); err != nil {
			t.Fatalf("go-securesystemslib refuses the %s signature: %v", s, err)
		}
	}
	// Tampering with the payload breaks every signature.
	var e provenance.Envelope
	json.Unmarshal(env, &e)
	e.Payload = e.Payload[:len(e.Payload)-4] + "AAAA"
	tampered, _ := json.Marshal(e)
	if _, err := provenance.VerifyDSSE(tampered, keys, 1); !errors.Is(err, provenance.ErrDSSE) {
		t.Fatalf("tampered envelope: %v", err)
	}
	// An untrusted key does not count.
	delete(keys, ec.KeyID())
	if _, err := provenance.VerifyDSSE(env, keys, 3); !errors.Is(err, provenance.ErrDSSE) {
		t.Fatalf("threshold met with an untrusted key: %v", err)
	}
}
