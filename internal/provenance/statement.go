package provenance

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
)

// In-toto and SLSA identifiers.
const (
	StatementType  = "https://in-toto.io/Statement/v1"
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

// Statement shapes (in-toto v1, SLSA provenance v1).
type (
	statement struct {
		Type          string       `json:"_type"`
		Subject       []stmtSubj   `json:"subject"`
		PredicateType string       `json:"predicateType"`
		Predicate     slsaPredicat `json:"predicate"`
	}
	stmtSubj struct {
		Name   string            `json:"name"`
		Digest map[string]string `json:"digest"`
	}
	slsaPredicat struct {
		BuildDefinition buildDefinition `json:"buildDefinition"`
		RunDetails      runDetails      `json:"runDetails"`
	}
	buildDefinition struct {
		BuildType            string         `json:"buildType"`
		ExternalParameters   externalParams `json:"externalParameters"`
		InternalParameters   internalParams `json:"internalParameters"`
		ResolvedDependencies []resourceDesc `json:"resolvedDependencies"`
	}
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
	resourceDesc struct {
		Name   string            `json:"name"`
		URI    string            `json:"uri"`
		Digest map[string]string `json:"digest,omitempty"`
	}
	runDetails struct {
		Builder    builder      `json:"builder"`
		Byproducts []stmtSubjRD `json:"byproducts,omitempty"`
	}
	builder struct {
		ID string `json:"id"`
	}
	stmtSubjRD struct {
		Name   string            `json:"name"`
		Digest map[string]string `json:"digest"`
	}
)

var (
	commitRE   = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)
	goVersionR = regexp.MustCompile(`^go[0-9][0-9A-Za-z.+-]*$`)
)

// Statement returns the SLSA v1 provenance of one build as an in-toto
// Statement v1 (indented JSON, final newline). Resolved dependencies are
// the ImageBuilder image by digest, the lock and profile files by hash, the
// Go toolchain, the daemon binary and, when known, the source commit.
func Statement(in StatementInput) ([]byte, error) {
	if len(in.Subjects) == 0 {
		return nil, fmt.Errorf("%w: provenance needs at least one subject", ErrInput)
	}
	subjects := append([]Subject{}, in.Subjects...)
	sort.Slice(subjects, func(i, j int) bool { return subjects[i].Name < subjects[j].Name })
	var subj []stmtSubj
	for i, s := range subjects {
		if err := checkSubject(s); err != nil {
			return nil, err
		}
		if i > 0 && subjects[i-1].Name == s.Name {
			return nil, fmt.Errorf("%w: subject %s listed twice", ErrInput, s.Name)
		}
		subj = append(subj, stmtSubj{Name: s.Name, Digest: map[string]string{"sha256": s.SHA256}})
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
	deps := []resourceDesc{
		{Name: "imagebuilder", URI: "oci://" + in.ImageBuilder, Digest: map[string]string{"sha256": m[3]}},
		{Name: "lock", URI: "file:profiles/" + in.Profile + "/lock.json", Digest: map[string]string{"sha256": in.LockSHA256}},
		{Name: "profile", URI: "file:profiles/" + in.Profile + "/profile.yaml", Digest: map[string]string{"sha256": in.ProfileSHA256}},
		{Name: "go", URI: "pkg:golang/toolchain@" + in.GoVersion},
		{Name: "daemon", URI: "file:" + DaemonPath, Digest: map[string]string{"sha256": in.DaemonSHA256}},
	}
	ext := externalParams{
		Profile: in.Profile, Brand: in.Brand, Version: in.Version, Simulated: in.Simulated,
		Invocation: append([]string{}, in.Invocation...),
	}
	if ext.Invocation == nil {
		ext.Invocation = []string{}
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
		deps = append(deps, resourceDesc{Name: "source", URI: "git+" + repo + "@" + in.SourceCommit, Digest: map[string]string{"gitCommit": in.SourceCommit}})
	}
	builderID := in.BuilderID
	if builderID == "" {
		builderID = DefaultBuilderID
	}
	var byp []stmtSubjRD
	bps := append([]Subject{}, in.Byproducts...)
	sort.Slice(bps, func(i, j int) bool { return bps[i].Name < bps[j].Name })
	for _, b := range bps {
		if err := checkSubject(b); err != nil {
			return nil, err
		}
		byp = append(byp, stmtSubjRD{Name: b.Name, Digest: map[string]string{"sha256": b.SHA256}})
	}
	st := statement{
		Type: StatementType, Subject: subj, PredicateType: PredicateSLSA1,
		Predicate: slsaPredicat{
			BuildDefinition: buildDefinition{
				BuildType: BuildType, ExternalParameters: ext,
				InternalParameters: internalParams{
					SourceDateEpoch: in.SourceDateEpoch, Engine: in.Engine,
					DaemonBuild: daemonBuild{Argv: nonNil(in.DaemonArgv), Env: nonNil(in.DaemonEnv)},
				},
				ResolvedDependencies: deps,
			},
			RunDetails: runDetails{Builder: builder{ID: builderID}, Byproducts: byp},
		},
	}
	return marshal(st)
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
