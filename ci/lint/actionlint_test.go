package lint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// actionlint is pinned in go.mod as a tool (`tool github.com/rhysd/actionlint/cmd/actionlint`,
// go.sum holds its hash) and run with `go tool actionlint`; bump it with
// `go get -tool github.com/rhysd/actionlint/cmd/actionlint@vX.Y.Z`. Tools are
// never linked into torwrt's binaries.
const actionlintTool = "github.com/rhysd/actionlint/cmd/actionlint"

// lintError is one finding of `actionlint -format '{{json .}}'`.
type lintError struct {
	Message  string `json:"message"`
	Filepath string `json:"filepath"`
	Line     int    `json:"line"`
	Column   int    `json:"column"`
	Kind     string `json:"kind"`
}

func (e lintError) String() string {
	return fmt.Sprintf("%s:%d:%d: %s [%s]", e.Filepath, e.Line, e.Column, e.Message, e.Kind)
}

// findShellcheck returns shellcheck's path. actionlint skips its script
// checks when shellcheck is missing, so the tests require it instead.
func findShellcheck() (string, error) {
	p, err := exec.LookPath("shellcheck")
	if err != nil {
		return "", fmt.Errorf("shellcheck not found on PATH: install Debian's shellcheck (scripts/install-deps.sh); actionlint needs it to check the workflows' scripts: %w", err)
	}
	return p, nil
}

// runActionlint runs the pinned actionlint, with shellcheck, on files and
// returns its findings. It fails the test unless actionlint ran (exit 0 with
// no findings, or exit 1 with some).
func runActionlint(t *testing.T, files ...string) []lintError {
	t.Helper()
	shellcheck, err := findShellcheck()
	if err != nil {
		t.Fatal(err)
	}
	// pyflakes is off: no workflow runs Python, and the result must not
	// depend on whether pyflakes happens to be installed.
	args := append([]string{"tool", "actionlint", "-no-color", "-shellcheck=" + shellcheck, "-pyflakes=", "-format", "{{json .}}"}, files...)
	cmd := exec.Command("go", args...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("go tool actionlint: %v", err)
	}
	if code != 0 && code != 1 {
		t.Fatalf("go tool actionlint (%s) exited %d:\n%s%s", actionlintTool, code, stderr.String(), stdout.String())
	}
	var found []lintError
	if out := bytes.TrimSpace(stdout.Bytes()); len(out) > 0 {
		if err := json.Unmarshal(out, &found); err != nil {
			t.Fatalf("actionlint output is not JSON: %v\n%s", err, out)
		}
	}
	if (code == 1) != (len(found) > 0) {
		t.Fatalf("actionlint exited %d with %d findings:\n%s%s", code, len(found), stderr.String(), stdout.String())
	}
	return found
}

func workflowPaths(t *testing.T) []string {
	t.Helper()
	var paths []string
	for _, w := range loadWorkflows(t) {
		paths = append(paths, w.path)
	}
	return paths
}

// TestActionlint runs actionlint (and shellcheck on every run: script) over
// .github/workflows and ci/github: wrong keys, expressions, contexts, action
// inputs, runner labels, permission scopes, job dependencies, script bugs.
func TestActionlint(t *testing.T) {
	paths := workflowPaths(t)
	for _, e := range runActionlint(t, paths...) {
		t.Error(e)
	}
	t.Logf("actionlint: %d workflow files clean: %s", len(paths), strings.Join(paths, ", "))
}

// TestActionlintFindsErrors breaks a copy of release.yml in one way at a
// time and requires actionlint to report exactly that, so TestActionlint
// passing means something. (actionlint checks action inputs only for
// actions it knows by tag; with every action pinned by SHA it cannot, so
// a misspelt `with:` key is not among the cases.)
func TestActionlintFindsErrors(t *testing.T) {
	orig, err := os.ReadFile(filepath.Join(repoRoot(t), ".github/workflows/release.yml"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, old, new string
		kind, message  string
	}{
		{"needs an unknown job", "needs: compare\n", "needs: compair\n", "job-needs", `"compair" which does not exist`},
		{"unquoted variable (shellcheck)", `--signature "$img.cosign.sig"`, `--signature $img.cosign.sig`, "shellcheck", "SC2086"},
		{"unknown matrix key", "${{ matrix.profile }}", "${{ matrix.profil }}", "expression", `"profil" is not defined`},
		{"unknown runner label", "runs-on: ubuntu-24.04\n", "runs-on: ubuntu-24.4\n", "runner-label", "ubuntu-24.4"},
		{"bad permission value", "      id-token: write", "      id-token: writ", "permissions", "writ"},
		{"unknown permission scope", "      contents: read\n", "      content: read\n", "permissions", "content"},
		{"unknown job key", "timeout-minutes: 30\n", "timeout-minute: 30\n", "syntax-check", "timeout-minute"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !bytes.Contains(orig, []byte(c.old)) {
				t.Fatalf("release.yml no longer contains %q: pick another line to break", c.old)
			}
			broken := bytes.Replace(orig, []byte(c.old), []byte(c.new), 1)
			dir := filepath.Join(t.TempDir(), ".github", "workflows")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, "release.yml")
			if err := os.WriteFile(file, broken, 0o644); err != nil {
				t.Fatal(err)
			}
			found := runActionlint(t, file)
			if len(found) == 0 {
				t.Fatalf("actionlint accepted release.yml with %q replaced by %q", c.old, c.new)
			}
			ok := false
			for _, e := range found {
				ok = ok || (e.Kind == c.kind && strings.Contains(e.Message, c.message))
			}
			if !ok {
				t.Errorf("no [%s] finding mentioning %q; got:", c.kind, c.message)
				for _, e := range found {
					t.Error("  ", e)
				}
			}
		})
	}
}

// TestShellcheckMissingIsAnError: without shellcheck the actionlint tests
// fail rather than lint the workflows without their scripts.
func TestShellcheckMissingIsAnError(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if p, err := findShellcheck(); err == nil {
		t.Fatalf("findShellcheck found %s on an empty PATH", p)
	} else if !strings.Contains(err.Error(), "install-deps.sh") {
		t.Errorf("the error does not say how to install shellcheck: %v", err)
	}
}

// TestScriptsPassShellcheck runs shellcheck on the CI scripts this package
// looks after.
func TestScriptsPassShellcheck(t *testing.T) {
	shellcheck, err := findShellcheck()
	if err != nil {
		t.Fatal(err)
	}
	scripts := []string{"ci/release.sh", "scripts/install-deps.sh", "scripts/install-cosign.sh"}
	cmd := exec.Command(shellcheck, append([]string{"--format=gcc"}, scripts...)...)
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("shellcheck %s: %v\n%s", strings.Join(scripts, " "), err, out)
	}
}
