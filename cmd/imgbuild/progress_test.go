package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/build"
)

// TestBuildProgressOutput runs a real build (the simulated ImageBuilder in
// podman; root, podman and runc needed, as for internal/build's end-to-end
// tests) and reads its stderr as a user would: every step ends in a line
// with its elapsed time, the profile ends with its total, the container run
// is one summary line, and no line carries the container's full command
// line (its ~600-character entry script) without --verbose. stdout keeps
// --json's one document.
func TestBuildProgressOutput(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "release")
	if code, _, stderr := runCLI(t, "keygen", "-o", key); code != exitOK {
		t.Fatalf("keygen: exit %d\n%s", code, stderr)
	}
	code, stdout, stderr := runCLI(t, "build", "--profile", "gl-ar150", "--simulated-ib", "--engine", "podman",
		"--key", key+".sec", "--release-keys", key+".pub", "--cache", filepath.Join(dir, "cache"), "--out", filepath.Join(dir, "dist"), "--json")
	if code != exitOK {
		t.Fatalf("build: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	var doc struct {
		OK     bool `json:"ok"`
		Result struct {
			Builds []json.RawMessage `json:"builds"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil || !doc.OK || len(doc.Result.Builds) != 1 {
		t.Errorf("stdout is not one successful --json document (%v):\n%s", err, stdout)
	}
	lines := strings.Split(stderr, "\n")
	for _, step := range build.Steps {
		re := regexp.MustCompile(`^\[gl-ar150\] ` + step + ` [0-9.]+(ms|s)$|^\[gl-ar150\] ` + step + ` [0-9]+m[0-9]{2}s$`)
		if !slices.ContainsFunc(lines, re.MatchString) {
			t.Errorf("no line %s on stderr:\n%s", re, stderr)
		}
	}
	total := regexp.MustCompile(`^\[gl-ar150\] built in [0-9.]+m?[0-9]*s \(resolve .*, write [0-9.]+m?s\)$`)
	if !slices.ContainsFunc(lines, total.MatchString) {
		t.Errorf("no summary line %s on stderr:\n%s", total, stderr)
	}
	summary := regexp.MustCompile(`^\[gl-ar150\] container: podman run torwrt-image-[0-9a-f]+: image sha256:[0-9a-f]{12}, network off, [0-9]+ mounts`)
	if !slices.ContainsFunc(lines, summary.MatchString) {
		t.Errorf("no container summary line %s on stderr:\n%s", summary, stderr)
	}
	for _, l := range lines {
		if len(l) > 300 {
			t.Errorf("a %d-character line on stderr without --verbose: %.200q…", len(l), l)
		}
		if strings.Contains(l, "--network none") || strings.Contains(l, "\r") || strings.Contains(l, "\x1b") {
			t.Errorf("stderr (not a terminal) has argv or escape codes: %q", l)
		}
	}
}
