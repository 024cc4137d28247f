package provenance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"

	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	intoto "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// In-toto and SLSA identifiers.
const (
	StatementType  = intoto.StatementTypeUri
	PredicateSLSA1 = "https://slsa.dev/provenance/v1"
	// BuildType describes how to read ExternalParameters and
	// InternalParameters; docs/releasing.md documents it.
	BuildType = "https://torwrt.org/buildtypes/imgbuild/v1"
	// DefaultBuilderID names a local imgbuild run; CI passes the
	// workflow's identity instead.
	DefaultBuilderID = "https://torwrt.org/imgbuild/local"
	// PayloadType is the DSSE payload type of in-toto statements.
	PayloadType = "application/vnd.in-toto+json"
)

// StatementInput is what the SLSA v1 provenance of one build records.
type StatementInput struct {
	// Subjects are the images (and any other released files) the build
	// produced; their digests must equal the published files'.
	Subjects []Subject
	// BuilderID identifies the trusted builder (the CI workflow's URI).
	BuilderID string
	// Invocation is the exact command line that ran the build (argv),
	// with secrets removed by the caller.
	Invocation []string
	// Profile, Brand, Version and Simulated are the external parameters.
	Profile   string
	Brand     string
	Version   string
	Simulated bool
	// ImageBuilder is "registry/repo@sha256:<hex>".
	ImageBuilder string
	// LockSHA256 and ProfileSHA256 hash the lock and profile files.
	LockSHA256    string
	ProfileSHA256 string
	// GoVersion is the toolchain that built the daemon (go1.26.8).
	GoVersion string
	// DaemonSHA256 hashes the daemon binary put into the image;
	// DaemonArgv and DaemonEnv are how it was built.
	DaemonSHA256 string
	DaemonArgv   []string
	DaemonEnv    []string
	// SourceRepo and SourceCommit name the torwrt source tree.
	SourceRepo   string
	SourceCommit string
	// SourceDateEpoch is the build's fixed time.
	SourceDateEpoch int64
	// Engine is the container engine that ran the ImageBuilder.
	Engine string
	// Byproducts are files made alongside (SBOM, .manifest).
	Byproducts []Subject
}

// The statement and its predicate are the official in-toto Go types
// (github.com/in-toto/attestation: go/v1 and go/predicates/provenance/v1),
// checked with their own Validate methods. They are protobuf messages, and
// protojson deliberately varies its whitespace from build to build, so
// its output is never published as is: it is decoded and encoded again
// with encoding/json (objects' keys sorted, two-space indent), which makes
// the bytes a function of the JSON value alone (see canonicalJSON).
//
// The parameters below are torwrt's own buildType's (BuildType); the
// predicate holds them as google.protobuf.Struct, whose numbers are
// doubles, so an integer parameter must stay within ±2^53 (maxJSONInt).
type (
	externalParams struct {
		Profile    string   `json:"profile"`
		Brand      string   `json:"brand"`
		Version    string   `json:"version"`
		Simulated  bool     `json:"simulated"`
		Invocation []string `json:"invocation"`
		Source     *srcRef  `json:"source,omitempty"`
	}
	srcRef struct {
		Repository string `json:"repository"`
		Commit     string `json:"commit"`
	}
	internalParams struct {
		SourceDateEpoch int64       `json:"sourceDateEpoch"`
		Engine          string      `json:"engine,omitempty"`
		DaemonBuild     daemonBuild `json:"daemonBuild"`
	}
	daemonBuild struct {
		Argv []string `json:"argv"`
		Env  []string `json:"env"`
	}
	stmtSubj struct {
		Name   string            `json:"name"`
		Digest map[string]string `json:"digest"`
	}
)

// maxJSONInt is the largest integer a JSON number (a double, in
// google.protobuf.Struct) holds exactly.
const maxJSONInt = 1 << 53

var (
	commitRE   = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)
	goVersionR = regexp.MustCompile(`^go[0-9][0-9A-Za-z.+-]*$`)
)

// Statement returns the SLSA v1 provenance of one build as an in-toto
// Statement v1 (indented JSON, object keys sorted, final newline).
// Resolved dependencies are the ImageBuilder image by digest, the lock and
// profile files by hash, the Go toolchain, the daemon binary and, when
// known, the source commit.
func Statement(in StatementInput) ([]byte, error) {
	st, err := statementMessage(in)
	if err != nil {
		return nil, err
	}
	return canonicalJSON(st)
}

func statementMessage(in StatementInput) (*intoto.Statement, error) {
	if len(in.Subjects) == 0 {
		return nil, fmt.Errorf("%w: provenance needs at least one subject", ErrInput)
	}
	subjects := append([]Subject{}, in.Subjects...)
	sort.Slice(subjects, func(i, j int) bool { return subjects[i].Name < subjects[j].Name })
	var subj []*intoto.ResourceDescriptor
	for i, s := range subjects {
		if err := checkSubject(s); err != nil {
			return nil, err
		}
		if i > 0 && subjects[i-1].Name == s.Name {
			return nil, fmt.Errorf("%w: subject %s listed twice", ErrInput, s.Name)
		}
		subj = append(subj, &intoto.ResourceDescriptor{Name: s.Name, Digest: map[string]string{"sha256": s.SHA256}})
	}
	m := ibRefRE.FindStringSubmatch(in.ImageBuilder)
	if m == nil {
		return nil, fmt.Errorf("%w: ImageBuilder %q is not pinned as registry/repo@sha256:<64 hex>", ErrInput, in.ImageBuilder)
	}
	for name, h := range map[string]string{"lock": in.LockSHA256, "profile": in.ProfileSHA256, "daemon": in.DaemonSHA256} {
		if !sha256RE.MatchString(h) {
			return nil, fmt.Errorf("%w: %s sha256 %q is not 64 lowercase hex digits", ErrInput, name, h)
		}
	}
	if !goVersionR.MatchString(in.GoVersion) {
		return nil, fmt.Errorf("%w: Go version %q: want e.g. go1.26.8", ErrInput, in.GoVersion)
	}
	if in.SourceDateEpoch > maxJSONInt || in.SourceDateEpoch < -maxJSONInt {
		return nil, fmt.Errorf("%w: SOURCE_DATE_EPOCH %d is beyond what a JSON number holds exactly (±2^53)", ErrInput, in.SourceDateEpoch)
	}
	deps := []*intoto.ResourceDescriptor{
		{Name: "imagebuilder", Uri: "oci://" + in.ImageBuilder, Digest: map[string]string{"sha256": m[3]}},
		{Name: "lock", Uri: "file:profiles/" + in.Profile + "/lock.json", Digest: map[string]string{"sha256": in.LockSHA256}},
		{Name: "profile", Uri: "file:profiles/" + in.Profile + "/profile.yaml", Digest: map[string]string{"sha256": in.ProfileSHA256}},
		{Name: "go", Uri: "pkg:golang/toolchain@" + in.GoVersion},
		{Name: "daemon", Uri: "file:" + DaemonPath, Digest: map[string]string{"sha256": in.DaemonSHA256}},
	}
	ext := externalParams{
		Profile: in.Profile, Brand: in.Brand, Version: in.Version, Simulated: in.Simulated,
		Invocation: nonNil(in.Invocation),
	}
	if in.SourceCommit != "" {
		if !commitRE.MatchString(in.SourceCommit) {
			return nil, fmt.Errorf("%w: source commit %q: want a full 40-hex git commit", ErrInput, in.SourceCommit)
		}
		repo := in.SourceRepo
		if repo == "" {
			repo = "https://github.com/torwrt/torwrt"
		}
		ext.Source = &srcRef{Repository: repo, Commit: in.SourceCommit}
		src := &intoto.ResourceDescriptor{Name: "source", Uri: "git+" + repo + "@" + in.SourceCommit}
		if len(in.SourceCommit) == 40 {
			// A SHA-256 object-format commit (64 hex) is named by the
			// URI alone: the in-toto digest-set spec allows it under
			// gitCommit, but ResourceDescriptor.Validate (v1.2.0) only
			// accepts 20-byte gitCommit digests.
			src.Digest = map[string]string{"gitCommit": in.SourceCommit}
		}
		deps = append(deps, src)
	}
	builderID := in.BuilderID
	if builderID == "" {
		builderID = DefaultBuilderID
	}
	var byp []*intoto.ResourceDescriptor
	bps := append([]Subject{}, in.Byproducts...)
	sort.Slice(bps, func(i, j int) bool { return bps[i].Name < bps[j].Name })
	for _, b := range bps {
		if err := checkSubject(b); err != nil {
			return nil, err
		}
		byp = append(byp, &intoto.ResourceDescriptor{Name: b.Name, Digest: map[string]string{"sha256": b.SHA256}})
	}
	extStruct, err := toStruct(ext)
	if err != nil {
		return nil, err
	}
	intStruct, err := toStruct(internalParams{
		SourceDateEpoch: in.SourceDateEpoch, Engine: in.Engine,
		DaemonBuild: daemonBuild{Argv: nonNil(in.DaemonArgv), Env: nonNil(in.DaemonEnv)},
	})
	if err != nil {
		return nil, err
	}
	pred := &slsa.Provenance{
		BuildDefinition: &slsa.BuildDefinition{
			BuildType: BuildType, ExternalParameters: extStruct, InternalParameters: intStruct,
			ResolvedDependencies: deps,
		},
		RunDetails: &slsa.RunDetails{Builder: &slsa.Builder{Id: builderID}, Byproducts: byp},
	}
	if err := pred.Validate(); err != nil {
		return nil, fmt.Errorf("%w: SLSA provenance: %v", ErrInput, err)
	}
	predStruct, err := toStruct(pred)
	if err != nil {
		return nil, err
	}
	st := &intoto.Statement{
		Type: intoto.StatementTypeUri, Subject: subj, PredicateType: PredicateSLSA1, Predicate: predStruct,
	}
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("%w: in-toto statement: %v", ErrInput, err)
	}
	return st, nil
}

// toStruct turns a JSON-encodable value or a protobuf message into a
// google.protobuf.Struct (an in-toto predicate or SLSA parameters).
func toStruct(v any) (*structpb.Struct, error) {
	var b []byte
	var err error
	if msg, ok := v.(proto.Message); ok {
		b, err = protojson.Marshal(msg)
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		return nil, fmt.Errorf("provenance: encoding %T: %w", v, err)
	}
	s := &structpb.Struct{}
	if err := protojson.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("provenance: %T as a protobuf Struct: %w", v, err)
	}
	return s, nil
}

// canonicalJSON encodes a protobuf message as the same bytes on every
// build: protojson's output (valid JSON whose whitespace varies on
// purpose) is decoded into plain Go values and encoded by encoding/json,
// which sorts object keys; numbers come back as float64, exact for the
// integers statementMessage lets through (maxJSONInt).
func canonicalJSON(msg proto.Message) ([]byte, error) {
	b, err := protojson.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("provenance: encoding %T: %w", msg, err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("provenance: decoding protojson of %T: %w", msg, err)
	}
	return marshal(v)
}

func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("provenance: encoding: %w", err)
	}
	return buf.Bytes(), nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return append([]string{}, s...)
}

// Subjects returns the subjects of an in-toto statement, checking that it
// is one.
func Subjects(stmt []byte) ([]Subject, error) {
	var st struct {
		Type    string     `json:"_type"`
		Subject []stmtSubj `json:"subject"`
	}
	if err := json.Unmarshal(stmt, &st); err != nil {
		return nil, fmt.Errorf("%w: statement: %v", ErrInput, err)
	}
	if st.Type != StatementType {
		return nil, fmt.Errorf("%w: statement _type %q, want %q", ErrInput, st.Type, StatementType)
	}
	var out []Subject
	for _, s := range st.Subject {
		out = append(out, Subject{Name: s.Name, SHA256: s.Digest["sha256"]})
	}
	return out, nil
}
