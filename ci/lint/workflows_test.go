// Package lint checks the GitHub Actions workflows: actionlint (with
// shellcheck) finds nothing, every action pinned to a full commit SHA, no Go
// run through sudo's secure_path, minimal permissions declared per job, a
// timeout on every job, no untrusted expressions spliced into scripts, a
// workflow that runs the test suite, the optional keyless signing job, and
// ci/github/release.yml identical to .github/workflows/release.yml. It also
// checks scripts/install-deps.sh's choice of packages per OS.
package lint

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// unpinnedAllowed lists `uses:` values that may stay unpinned, each with the
// reason. Every entry is a known gap: keep it empty unless a SHA cannot be
// verified, and then say so here and in a `# TODO: pin` comment.
var unpinnedAllowed = map[string]string{}

// writeAllowed lists the write scopes a job may hold ("file/job" -> scopes),
// each with the reason in a comment. Top-level permissions are read-only.
var writeAllowed = map[string][]string{
	// Keyless cosign: the job's OIDC token is what Fulcio certifies.
	"release.yml/sign-keyless": {"id-token"},
}

var (
	shaPin     = regexp.MustCompile(`^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$`)
	tagComment = regexp.MustCompile(`^#\s*v\d+\.\d+\.\d+\b`)
	// sudo, any options, then go: sudo's secure_path drops setup-go's Go.
	sudoGo = regexp.MustCompile(`\bsudo(\s+-{1,2}[A-Za-z][A-Za-z-]*(=\S+)?)*\s+go\b`)
	// Expressions an outsider or a dispatcher controls must reach a script
	// through env:, never spliced into its text.
	untrustedExpr = regexp.MustCompile(`\$\{\{[^}]*\b(github\.event\.|inputs\.|github\.head_ref)`)
)

type workflow struct {
	path string // relative to the repository root
	raw  []byte
	root *yaml.Node // the top-level mapping
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

func loadWorkflows(t *testing.T) []workflow {
	t.Helper()
	root := repoRoot(t)
	var paths []string
	for _, pat := range []string{".github/workflows/*.yml", ".github/workflows/*.yaml", "ci/github/*.yml", "ci/github/*.yaml"} {
		m, err := filepath.Glob(filepath.Join(root, pat))
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, m...)
	}
	sort.Strings(paths)
	if len(paths) == 0 {
		t.Fatal("no workflow files found")
	}
	var out []workflow
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		// Decoding into a map also rejects duplicate keys.
		var m map[string]any
		if err := yaml.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
			t.Fatalf("%s: not a YAML mapping", rel)
		}
		out = append(out, workflow{path: rel, raw: raw, root: doc.Content[0]})
	}
	return out
}

// get returns the value of key in mapping m, or nil.
func get(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// each calls fn for every key/value pair in mapping m, in order.
func each(m *yaml.Node, fn func(k, v *yaml.Node)) {
	if m == nil || m.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		fn(m.Content[i], m.Content[i+1])
	}
}

// walk calls fn for every key/value pair anywhere below n.
func walk(n *yaml.Node, fn func(k, v *yaml.Node)) {
	if n == nil {
		return
	}
	if n.Kind == yaml.MappingNode {
		each(n, fn)
	}
	for _, c := range n.Content {
		walk(c, fn)
	}
}

func jobs(t *testing.T, w workflow) map[string]*yaml.Node {
	t.Helper()
	js := get(w.root, "jobs")
	if js == nil || js.Kind != yaml.MappingNode || len(js.Content) == 0 {
		t.Fatalf("%s: no jobs", w.path)
	}
	out := map[string]*yaml.Node{}
	each(js, func(k, v *yaml.Node) { out[k.Value] = v })
	return out
}

func TestActionsPinnedToCommitSHA(t *testing.T) {
	seen := map[string]bool{}
	for _, w := range loadWorkflows(t) {
		walk(w.root, func(k, v *yaml.Node) {
			if k.Value != "uses" || v.Kind != yaml.ScalarNode {
				return
			}
			u := v.Value
			switch {
			case strings.HasPrefix(u, "./"):
				return // an action in this repository
			case strings.HasPrefix(u, "docker://"):
				if !strings.Contains(u, "@sha256:") {
					t.Errorf("%s:%d: %s: pin the image by digest", w.path, v.Line, u)
				}
				return
			}
			if reason, ok := unpinnedAllowed[u]; ok {
				seen[u] = true
				t.Logf("%s:%d: %s left unpinned: %s", w.path, v.Line, u, reason)
				return
			}
			if !shaPin.MatchString(u) {
				t.Errorf("%s:%d: %s: pin to a full 40-hex commit SHA", w.path, v.Line, u)
				return
			}
			if !tagComment.MatchString(v.LineComment) {
				t.Errorf("%s:%d: %s: add a `# vX.Y.Z` comment naming the pinned tag (have %q)", w.path, v.Line, u, v.LineComment)
			}
		})
	}
	for u := range unpinnedAllowed {
		if !seen[u] {
			t.Errorf("unpinnedAllowed lists %s, which no workflow uses: drop it", u)
		}
	}
}

func TestNoGoUnderSudo(t *testing.T) {
	for _, w := range loadWorkflows(t) {
		walk(w.root, func(k, v *yaml.Node) {
			if k.Value != "run" || v.Kind != yaml.ScalarNode {
				return
			}
			if loc := sudoGo.FindString(v.Value); loc != "" {
				t.Errorf("%s:%d: %q: sudo's secure_path loses setup-go's Go; build as the runner and sudo the binary by path, or use sudo env \"PATH=$PATH\"", w.path, v.Line, loc)
			}
		})
	}
}

func TestNoUntrustedExpressionsInScripts(t *testing.T) {
	for _, w := range loadWorkflows(t) {
		if get(get(w.root, "on"), "pull_request_target") != nil {
			t.Errorf("%s: pull_request_target runs untrusted code with secrets", w.path)
		}
		walk(w.root, func(k, v *yaml.Node) {
			if k.Value != "run" || v.Kind != yaml.ScalarNode {
				return
			}
			if m := untrustedExpr.FindString(v.Value); m != "" {
				t.Errorf("%s:%d: %q in a script: pass it through env: instead", w.path, v.Line, m)
			}
		})
	}
}

// checkPermissions checks one permissions: value and returns its write scopes.
func checkPermissions(t *testing.T, where string, p *yaml.Node) []string {
	t.Helper()
	if p.Kind == yaml.ScalarNode {
		// read-all and write-all grant every scope; name the ones needed.
		t.Errorf("%s: permissions: %s; list the scopes needed instead", where, p.Value)
		return nil
	}
	if p.Kind != yaml.MappingNode {
		t.Errorf("%s: permissions is not a mapping", where)
		return nil
	}
	var writes []string
	each(p, func(k, v *yaml.Node) {
		switch v.Value {
		case "read", "none":
		case "write":
			writes = append(writes, k.Value)
		default:
			t.Errorf("%s: permissions %s: %q", where, k.Value, v.Value)
		}
	})
	return writes
}

func TestPermissionsMinimal(t *testing.T) {
	used := map[string]bool{}
	for _, w := range loadWorkflows(t) {
		top := get(w.root, "permissions")
		if top == nil {
			t.Errorf("%s: no top-level permissions (the default token may write)", w.path)
		} else if writes := checkPermissions(t, w.path, top); len(writes) > 0 {
			t.Errorf("%s: top-level permissions write %v; grant writes in the one job that needs them", w.path, writes)
		}
		for name, job := range jobs(t, w) {
			where := w.path + " job " + name
			p := get(job, "permissions")
			if p == nil {
				// Each job names what it needs, so a new job starts from
				// the top level's nothing, not from another job's scopes.
				t.Errorf("%s: no permissions: name the scopes this job needs (usually contents: read)", where)
				continue
			}
			key := filepath.Base(w.path) + "/" + name
			allowed := writeAllowed[key]
			for _, scope := range checkPermissions(t, where, p) {
				ok := false
				for _, a := range allowed {
					ok = ok || a == scope
				}
				if !ok {
					t.Errorf("%s: %s: write is not in writeAllowed", where, scope)
				}
				used[key+"/"+scope] = true
			}
		}
	}
	for key, scopes := range writeAllowed {
		for _, scope := range scopes {
			if !used[key+"/"+scope] {
				t.Errorf("writeAllowed grants %s %s: write, which no job holds: drop it", key, scope)
			}
		}
	}
}

// TestKeylessSigningJob checks the optional keyless job in release.yml: it
// alone holds id-token: write, runs only when asked, uses no secret, signs
// every image with a Rekor bundle and verifies each bundle against this
// workflow's identity and GitHub's OIDC issuer before uploading the bundles.
func TestKeylessSigningJob(t *testing.T) {
	var release *workflow
	for _, w := range loadWorkflows(t) {
		if w.path == ".github/workflows/release.yml" {
			release = &w
		}
	}
	if release == nil {
		t.Fatal(".github/workflows/release.yml not found")
	}
	job := jobs(t, *release)["sign-keyless"]
	if job == nil {
		t.Fatal("release.yml has no sign-keyless job")
	}
	if get(get(job, "permissions"), "id-token") == nil || get(get(job, "permissions"), "id-token").Value != "write" {
		t.Error("sign-keyless: no id-token: write; cosign cannot get an OIDC token without it")
	}
	if c := get(job, "if"); c == nil || !strings.Contains(c.Value, "vars.") {
		t.Error("sign-keyless: no `if: vars.…`: the keyless job is optional, run only when the repository asks for it")
	}
	var script strings.Builder
	walk(job, func(k, v *yaml.Node) {
		if k.Value == "run" {
			script.WriteString(v.Value + "\n")
		}
		if v.Kind == yaml.ScalarNode && strings.Contains(v.Value, "secrets.") {
			t.Errorf("sign-keyless:%d: uses a secret (%s); keyless signing needs only the OIDC token", v.Line, v.Value)
		}
	})
	for _, want := range []string{
		"cosign sign-blob --yes --bundle \"$img.cosign.bundle\"",
		"cosign verify-blob --bundle \"$img.cosign.bundle\"",
		"--certificate-identity-regexp",
		"--certificate-oidc-issuer https://token.actions.githubusercontent.com",
	} {
		if !strings.Contains(script.String(), want) {
			t.Errorf("sign-keyless: no %q in its scripts", want)
		}
	}
	sign := strings.Index(script.String(), "cosign sign-blob")
	verify := strings.Index(script.String(), "cosign verify-blob")
	if sign < 0 || verify < sign {
		t.Error("sign-keyless: verify-blob must run after sign-blob")
	}
	uploads := false
	walk(job, func(k, v *yaml.Node) {
		uploads = uploads || (k.Value == "path" && strings.HasSuffix(v.Value, ".cosign.bundle"))
	})
	if !uploads {
		t.Error("sign-keyless: the bundles are not uploaded (upload-artifact with path …cosign.bundle)")
	}
}

func TestEveryJobHasTimeout(t *testing.T) {
	for _, w := range loadWorkflows(t) {
		for name, job := range jobs(t, w) {
			if get(job, "uses") != nil {
				continue // a reusable workflow: its own jobs carry the timeouts
			}
			if get(job, "timeout-minutes") == nil {
				t.Errorf("%s job %s: no timeout-minutes (the default is 6 hours)", w.path, name)
			}
		}
	}
}

func TestReleaseWorkflowCopiesIdentical(t *testing.T) {
	root := repoRoot(t)
	a, errA := os.ReadFile(filepath.Join(root, ".github/workflows/release.yml"))
	b, errB := os.ReadFile(filepath.Join(root, "ci/github/release.yml"))
	switch {
	case os.IsNotExist(errA) && os.IsNotExist(errB):
		t.Fatal("no release workflow: neither .github/workflows/release.yml nor ci/github/release.yml exists")
	case os.IsNotExist(errA) || os.IsNotExist(errB):
		return // one copy only: nothing to keep in step
	case errA != nil:
		t.Fatal(errA)
	case errB != nil:
		t.Fatal(errB)
	}
	if !bytes.Equal(a, b) {
		t.Error("ci/github/release.yml differs from .github/workflows/release.yml; copy the latter over the former")
	}
}

func TestSomeWorkflowRunsTheTestSuite(t *testing.T) {
	for _, w := range loadWorkflows(t) {
		if !strings.HasPrefix(w.path, ".github/") {
			continue
		}
		on := get(w.root, "on")
		if get(on, "push") == nil || get(on, "pull_request") == nil {
			continue
		}
		runsSuite := false
		walk(w.root, func(k, v *yaml.Node) {
			runsSuite = runsSuite || (k.Value == "run" && strings.Contains(v.Value, ".ci/run"))
		})
		if !runsSuite {
			continue
		}
		if c := get(w.root, "concurrency"); get(c, "cancel-in-progress") == nil || get(c, "cancel-in-progress").Value != "true" {
			t.Errorf("%s: runs the tests without concurrency cancel-in-progress: true", w.path)
		}
		return
	}
	t.Error("no workflow under .github/workflows runs .ci/run on push and pull_request")
}
