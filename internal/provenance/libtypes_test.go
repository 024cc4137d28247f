package provenance_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"
	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	intoto "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/torwrt/torwrt/internal/pkgdb"
	"github.com/torwrt/torwrt/internal/profile"
	"github.com/torwrt/torwrt/internal/provenance"
)

// apkInput is testInput for an apk ImageBuilder (OpenWrt 25.12), with the
// image's own package database; one license has characters encoding/json
// escapes by default.
func apkInput(t *testing.T) provenance.SBOMInput {
	in := testInput(t)
	l := *in.Lock
	l.PackageManager = profile.APK
	in.Lock = &l
	in.Installed = &pkgdb.Installed{Manager: "apk", Path: "lib/apk/db/installed", Packages: []pkgdb.Package{
		{Name: "base-files", Version: "1.0-r1", Arch: "mips_24kc", License: "GPL-2.0"},
		{Name: "kmod-ath9k", Version: "6.6.1-r1", Arch: "mips_24kc", License: "GPL-2.0 & <ISC>"},
		{Name: "tor", Version: "0.4.8.13-r1", Arch: "mips_24kc", License: "BSD-3-Clause"},
	}}
	return in
}

// reencode decodes doc into plain values and encodes it again the way
// encoding/json does with sorted keys: equal bytes mean doc's bytes are a
// function of its JSON value alone (no whitespace or key order of a
// particular encoder build, such as protojson's deliberate randomness).
func reencode(t *testing.T, doc []byte) []byte {
	t.Helper()
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSBOMAndProvenanceEncodingsReproducible(t *testing.T) {
	for name, in := range map[string]provenance.SBOMInput{"opkg": testInput(t), "apk": apkInput(t)} {
		a, err := provenance.SBOM(in)
		if err != nil {
			t.Fatal(err)
		}
		// The same input again, with the .manifest in another order: the
		// package list is sorted, so the bytes do not change.
		in2 := in
		lines := strings.Split(strings.TrimSpace(string(in.Manifest)), "\n")
		for i, j := 0, len(lines)-1; i < j; i, j = i+1, j-1 {
			lines[i], lines[j] = lines[j], lines[i]
		}
		in2.Manifest = []byte(strings.Join(lines, "\n") + "\n")
		b, err := provenance.SBOM(in2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("%s: two SBOM encodings of the same input differ:\n%s\n---\n%s", name, a, b)
		}
		if !bytes.HasSuffix(a, []byte("}\n")) || bytes.Contains(a, []byte("\t")) {
			t.Errorf("%s: SBOM is not two-space indented JSON with a final newline", name)
		}
	}

	images := map[string][]byte{"b.bin": []byte("b"), "a.bin": []byte("a"), "c.bin": []byte("c")}
	in := statementInput(images)
	in.Byproducts = []provenance.Subject{{Name: "z.cdx.json", SHA256: sha([]byte("z"))}, {Name: "a.manifest", SHA256: sha([]byte("m"))}}
	a, err := provenance.Statement(in)
	if err != nil {
		t.Fatal(err)
	}
	// Subjects and byproducts in the reverse order give the same bytes.
	in2 := in
	in2.Subjects = append([]provenance.Subject{}, in.Subjects...)
	for i, j := 0, len(in2.Subjects)-1; i < j; i, j = i+1, j-1 {
		in2.Subjects[i], in2.Subjects[j] = in2.Subjects[j], in2.Subjects[i]
	}
	in2.Byproducts = []provenance.Subject{in.Byproducts[1], in.Byproducts[0]}
	b, err := provenance.Statement(in2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("two statement encodings of the same input differ:\n%s\n---\n%s", a, b)
	}
	// The statement goes through protojson, whose whitespace changes from
	// one build of the program to the next; what is published must be
	// the canonical encoding of the value instead.
	if c := reencode(t, a); !bytes.Equal(a, c) {
		t.Fatalf("statement is not in canonical form:\n%s\n---\n%s", a, c)
	}
	if !bytes.HasPrefix(a, []byte("{\n  \"_type\": \"https://in-toto.io/Statement/v1\",\n")) {
		t.Errorf("statement does not start with its _type:\n%.200s", a)
	}
}

func TestSBOMDecodesWithCycloneDX(t *testing.T) {
	in := apkInput(t)
	doc, err := provenance.SBOM(in)
	if err != nil {
		t.Fatal(err)
	}
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(doc), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatal(err)
	}
	if bom.BOMFormat != cdx.BOMFormat || bom.SpecVersion != cdx.SpecVersion1_5 || bom.Version != 1 {
		t.Errorf("bomFormat %q specVersion %v version %d", bom.BOMFormat, bom.SpecVersion, bom.Version)
	}
	if bom.JSONSchema != "http://cyclonedx.org/schema/bom-1.5.schema.json" {
		t.Errorf("$schema %q", bom.JSONSchema)
	}
	if !strings.HasPrefix(bom.SerialNumber, "urn:uuid:") || len(bom.SerialNumber) != len("urn:uuid:")+36 {
		t.Errorf("serial number %q", bom.SerialNumber)
	}
	md := bom.Metadata
	if md == nil || md.Timestamp != "2025-01-01T00:00:00Z" || md.Component == nil {
		t.Fatalf("metadata %+v", md)
	}
	if md.Lifecycles == nil || len(*md.Lifecycles) != 1 || (*md.Lifecycles)[0].Phase != cdx.LifecyclePhaseBuild {
		t.Errorf("lifecycles %+v", md.Lifecycles)
	}
	if md.Tools == nil || md.Tools.Components == nil || len(*md.Tools.Components) != 1 || (*md.Tools.Components)[0].Name != "imgbuild" || (*md.Tools.Components)[0].Version != "test" {
		t.Errorf("tools %+v", md.Tools)
	}
	img := md.Component
	if img.Type != cdx.ComponentTypeFirmware || img.Name != in.Image.Name || img.Supplier == nil || img.Supplier.Name != "torwrt" ||
		img.Hashes == nil || (*img.Hashes)[0] != (cdx.Hash{Algorithm: cdx.HashAlgoSHA256, Value: in.Image.SHA256}) {
		t.Errorf("image component %+v", img)
	}
	props := map[string]string{}
	for _, p := range *img.Properties {
		props[p.Name] = p.Value
	}
	if props["torwrt:board"] != "glinet,gl-ar150" || props["torwrt:size"] != "5" || !strings.Contains(props["torwrt:packages"], "lib/apk/db/installed") {
		t.Errorf("image properties %v", props)
	}

	if bom.Components == nil {
		t.Fatal("no components")
	}
	type want struct {
		typ             cdx.ComponentType
		version, purl   string
		sha256, license string
	}
	wants := map[string]want{
		"imagebuilder": {cdx.ComponentTypeContainer, "sha256:" + ibRef[len(ibRef)-64:],
			"pkg:oci/imagebuilder@sha256:" + ibRef[len(ibRef)-64:] + "?repository_url=127.0.0.1%3A5000%2Fopenwrt%2Fimagebuilder", ibRef[len(ibRef)-64:], ""},
		"openwrt-package:base-files": {cdx.ComponentTypeLibrary, "1.0-r1", "pkg:apk/openwrt/base-files@1.0-r1?arch=mips_24kc", sha([]byte("base-files")), "GPL-2.0"},
		"openwrt-package:kmod-ath9k": {cdx.ComponentTypeLibrary, "6.6.1-r1", "pkg:apk/openwrt/kmod-ath9k@6.6.1-r1?arch=mips_24kc", "", "GPL-2.0 & <ISC>"},
		"openwrt-package:tor":        {cdx.ComponentTypeLibrary, "0.4.8.13-r1", "pkg:apk/openwrt/tor@0.4.8.13-r1?arch=mips_24kc", sha([]byte("tor")), "BSD-3-Clause"},
		"daemon":                     {cdx.ComponentTypeApplication, "", "", sha(in.Daemon), ""},
	}
	var refs []string
	for _, c := range *bom.Components {
		refs = append(refs, c.BOMRef)
		w, ok := wants[c.BOMRef]
		if !ok {
			t.Errorf("unexpected component %s", c.BOMRef)
			continue
		}
		if c.Type != w.typ || (c.BOMRef != "daemon" && (c.Version != w.version || c.PackageURL != w.purl)) {
			t.Errorf("%s: type %s version %s purl %s, want %+v", c.BOMRef, c.Type, c.Version, c.PackageURL, w)
		}
		var hash string
		if c.Hashes != nil {
			if len(*c.Hashes) != 1 || (*c.Hashes)[0].Algorithm != cdx.HashAlgoSHA256 {
				t.Errorf("%s: hashes %+v", c.BOMRef, *c.Hashes)
			}
			hash = (*c.Hashes)[0].Value
		}
		if hash != w.sha256 {
			t.Errorf("%s: sha256 %q, want %q", c.BOMRef, hash, w.sha256)
		}
		var lic string
		if c.Licenses != nil && len(*c.Licenses) == 1 && (*c.Licenses)[0].License != nil {
			lic = (*c.Licenses)[0].License.Name
		}
		if lic != w.license {
			t.Errorf("%s: license %q, want %q", c.BOMRef, lic, w.license)
		}
		if c.BOMRef == "daemon" {
			if c.Components == nil || len(*c.Components) < 2 || (*c.Components)[0].Name != "go" {
				t.Errorf("daemon: Go toolchain and modules missing: %+v", c.Components)
			}
		}
	}
	if got := strings.Join(refs, " "); got != "imagebuilder openwrt-package:base-files openwrt-package:kmod-ath9k openwrt-package:tor daemon" {
		t.Errorf("components in order %s", got)
	}
	if bom.Dependencies == nil || len(*bom.Dependencies) != 2 {
		t.Fatalf("dependencies %+v", bom.Dependencies)
	}
	imgDeps := (*bom.Dependencies)[0]
	if imgDeps.Ref != img.BOMRef || imgDeps.Dependencies == nil ||
		strings.Join(*imgDeps.Dependencies, " ") != "daemon imagebuilder openwrt-package:base-files openwrt-package:kmod-ath9k openwrt-package:tor" {
		t.Errorf("image dependencies %+v", imgDeps)
	}
	if d := (*bom.Dependencies)[1]; d.Ref != "daemon" || d.Dependencies == nil || len(*d.Dependencies) < 2 {
		t.Errorf("daemon dependencies %+v", d)
	}

	// cyclonedx-go's own encoder gives back the very bytes SBOM wrote.
	var buf bytes.Buffer
	if err := cdx.NewBOMEncoder(&buf, cdx.BOMFileFormatJSON).SetPretty(true).SetEscapeHTML(false).EncodeVersion(&bom, cdx.SpecVersion1_5); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), doc) {
		t.Fatalf("decode and encode with cyclonedx-go changed the SBOM:\n%s\n---\n%s", doc, buf.Bytes())
	}
}

// decodeStatement reads a statement with the in-toto Go types.
func decodeStatement(t *testing.T, doc []byte) (*intoto.Statement, *slsa.Provenance) {
	t.Helper()
	var st intoto.Statement
	if err := protojson.Unmarshal(doc, &st); err != nil {
		t.Fatalf("statement: %v", err)
	}
	pb, err := protojson.Marshal(st.GetPredicate())
	if err != nil {
		t.Fatal(err)
	}
	var pred slsa.Provenance
	if err := protojson.Unmarshal(pb, &pred); err != nil {
		t.Fatalf("predicate is not SLSA provenance v1: %v", err)
	}
	return &st, &pred
}

func TestProvenanceValidatesWithInToto(t *testing.T) {
	in := statementInput(map[string][]byte{"a.bin": []byte("a"), "b.bin": []byte("b")})
	in.Byproducts = []provenance.Subject{{Name: "a.cdx.json", SHA256: sha([]byte("sbom"))}}
	doc, err := provenance.Statement(in)
	if err != nil {
		t.Fatal(err)
	}
	st, pred := decodeStatement(t, doc)
	if err := st.Validate(); err != nil {
		t.Fatalf("in-toto Statement.Validate: %v", err)
	}
	if err := pred.Validate(); err != nil {
		t.Fatalf("SLSA Provenance.Validate: %v", err)
	}
	if st.GetType() != intoto.StatementTypeUri || st.GetPredicateType() != provenance.PredicateSLSA1 || len(st.GetSubject()) != 2 ||
		st.GetSubject()[0].GetName() != "a.bin" || st.GetSubject()[0].GetDigest()["sha256"] != sha([]byte("a")) {
		t.Errorf("statement %v", st)
	}
	bd := pred.GetBuildDefinition()
	if bd.GetBuildType() != provenance.BuildType || pred.GetRunDetails().GetBuilder().GetId() != in.BuilderID {
		t.Errorf("build type %s builder %s", bd.GetBuildType(), pred.GetRunDetails().GetBuilder().GetId())
	}
	ext := bd.GetExternalParameters().AsMap()
	if ext["profile"] != "gl-ar150" || ext["simulated"] != false || len(ext["invocation"].([]any)) != len(in.Invocation) {
		t.Errorf("external parameters %v", ext)
	}
	internal := bd.GetInternalParameters().AsMap()
	if internal["sourceDateEpoch"] != float64(1735689600) || internal["engine"] != "podman" {
		t.Errorf("internal parameters %v", internal)
	}
	if !bytes.Contains(doc, []byte(`"sourceDateEpoch": 1735689600`)) {
		t.Error("sourceDateEpoch is not written as a plain integer")
	}
	deps := map[string]*intoto.ResourceDescriptor{}
	for _, d := range bd.GetResolvedDependencies() {
		deps[d.GetName()] = d
	}
	if deps["source"].GetDigest()["gitCommit"] != in.SourceCommit || deps["imagebuilder"].GetDigest()["sha256"] != ibRef[len(ibRef)-64:] || len(deps) != 6 {
		t.Errorf("resolved dependencies %v", bd.GetResolvedDependencies())
	}
	if b := pred.GetRunDetails().GetByproducts(); len(b) != 1 || b[0].GetName() != "a.cdx.json" {
		t.Errorf("byproducts %v", b)
	}

	// Validate really checks: a subject digest of the wrong length fails.
	st.GetSubject()[0].Digest["sha256"] = "abcd"
	if err := st.Validate(); !errors.Is(err, intoto.ErrIncorrectDigestLength) {
		t.Fatalf("Validate of a short digest: %v", err)
	}

	// A SHA-256 object-format commit is named by the source URI; the
	// in-toto validator only takes 20-byte gitCommit digests.
	in.SourceCommit = strings.Repeat("cd", 32)
	doc, err = provenance.Statement(in)
	if err != nil {
		t.Fatal(err)
	}
	st, pred = decodeStatement(t, doc)
	if err := st.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := pred.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, d := range pred.GetBuildDefinition().GetResolvedDependencies() {
		if d.GetName() == "source" && (d.GetUri() != "git+https://github.com/torwrt/torwrt@"+in.SourceCommit || len(d.GetDigest()) != 0) {
			t.Errorf("source of a SHA-256 commit %v", d)
		}
	}

	// An epoch a JSON number cannot hold exactly is refused, not rounded.
	in.SourceDateEpoch = 1<<53 + 1
	if _, err := provenance.Statement(in); !errors.Is(err, provenance.ErrInput) {
		t.Errorf("epoch 2^53+1: %v, want ErrInput", err)
	}
}
