package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestImageBoardFailsClosed performs the attack on `verify image`: a
// genuinely signed image for glinet,gl-ar150 is checked on a router that
// names no board (no --board and no /tmp/sysinfo/board_name). The router
// binary, built as it ships, must refuse it rather than skip the board
// check; only an explicit --any-board skips it.
func TestImageBoardFailsClosed(t *testing.T) {
	if _, err := os.Stat("/tmp/sysinfo/board_name"); err == nil {
		t.Fatal("/tmp/sysinfo/board_name exists on this host (a router?): the no-board case cannot be tested here; run the tests on a build host")
	}
	dir := t.TempDir()
	imgFixtures(t, dir)
	keys, good := filepath.Join(dir, "keys"), filepath.Join(dir, "good.bin")
	cases := []struct {
		name     string
		args     []string
		wantCode int
		wantText string
	}{
		{"no board source", []string{"image", "--keys", keys, good}, exitUsage, "no board to check the image against"},
		{"no board source quiet", []string{"image", "-q", "--keys", keys, good}, exitUsage, "--any-board"},
		{"right board", []string{"image", "--keys", keys, "--board", "glinet,gl-ar150", good}, exitOK, ""},
		{"wrong board", []string{"image", "--keys", keys, "--board", "glinet,gl-mt300n-v2", good}, exitWrongBoard, "not for this board"},
		{"any board", []string{"image", "--keys", keys, "--any-board", good}, exitOK, ""},
		{"any board and a board", []string{"image", "--keys", keys, "--any-board", "--board", "glinet,gl-ar150", good}, exitUsage, "not both"},
	}
	arches := []string{runtime.GOARCH}
	if _, err := exec.LookPath("qemu-mips-static"); err == nil && !testing.Short() {
		arches = append(arches, "mips")
	}
	for _, arch := range arches {
		bin := buildVerify(t, arch)
		for _, tc := range cases {
			t.Run(arch+"/"+tc.name, func(t *testing.T) {
				argv := append(append(runner(t, arch), bin), tc.args...)
				cmd := exec.CommandContext(t.Context(), argv[0], argv[1:]...)
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				code, err := exitCode(cmd.Run())
				if err != nil {
					t.Fatal(err)
				}
				if code != tc.wantCode {
					t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, &stdout, &stderr)
				}
				if tc.wantCode != exitOK && (stdout.Len() != 0 || !strings.Contains(stderr.String(), tc.wantText)) {
					t.Errorf("stdout %q, stderr %q; want nothing on stdout and %q on stderr", &stdout, &stderr, tc.wantText)
				}
				// The in-process run agrees.
				var hout, herr bytes.Buffer
				if hc := run(t.Context(), &hout, &herr, tc.args); hc != code {
					t.Errorf("in-process exit %d, binary %d", hc, code)
				}
			})
		}
	}
}
