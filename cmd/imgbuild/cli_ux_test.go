package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionStampsBuildInfo(t *testing.T) {
	saved := readBuildInfo
	t.Cleanup(func() { readBuildInfo = saved })
	readBuildInfo = func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{
			GoVersion: "go1.26.8",
			Main:      debug.Module{Path: "github.com/torwrt/torwrt", Version: "v1.2.3"},
			Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
				{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"},
				{Key: "vcs.modified", Value: "true"},
			},
		}, true
	}
	r := fndMust(t, "version")
	for _, want := range []string{"imgbuild v1.2.3\n", "commit   0123456789abcdef0123456789abcdef01234567 (modified)", "time     2026-01-02T03:04:05Z", "go1.26.8"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("version output lacks %q:\n%s", want, r.stdout)
		}
	}
	v := jsonDoc[versionInfo](t, fndMust(t, "version", "--json"), "version").Result
	want := versionInfo{Version: "v1.2.3", Module: "github.com/torwrt/torwrt", Commit: "0123456789abcdef0123456789abcdef01234567",
		CommitTime: "2026-01-02T03:04:05Z", Modified: true, GoVersion: "go1.26.8", Platform: v.Platform}
	if v != want || v.Platform == "" {
		t.Errorf("version --json = %+v, want %+v", v, want)
	}

	// A build from a checkout without a module version says devel, never
	// "(devel)", and still names its commit.
	readBuildInfo = func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "false"}}}, true
	}
	r = fndMust(t, "--version")
	if strings.Contains(r.stdout, "(devel)") || !strings.Contains(r.stdout, "imgbuild devel\ncommit   abc\n") {
		t.Errorf("--version:\n%s", r.stdout)
	}
}

// version --json works with the test binary's real build info too.
func TestVersionJSON(t *testing.T) {
	r := fndMust(t, "version", "--json")
	m := jsonDoc[map[string]any](t, r, "version").Result
	for _, k := range []string{"version", "modified", "go_version", "platform"} {
		if _, ok := m[k]; !ok {
			t.Errorf("version --json lacks %q: %s", k, r.stdout)
		}
	}
}

func TestLevenshtein(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{
		{"", "", 0}, {"build", "build", 0}, {"biuld", "build", 2}, {"profle", "profile", 1},
		{"", "abc", 3}, {"kitten", "sitting", 3}, {"ünï", "uni", 2},
	} {
		if d := levenshtein(tc.a, tc.b); d != tc.d {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", tc.a, tc.b, d, tc.d)
		}
		if d := levenshtein(tc.b, tc.a); d != tc.d {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", tc.b, tc.a, d, tc.d)
		}
	}
}

// Misspelled verbs and flags get a suggestion. The error is printed once,
// to stderr, with usage after it; stdout stays empty.
func TestDidYouMean(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    []string
		notWant string
	}{
		{"verb", []string{"biuld"}, []string{`unknown command "biuld"; did you mean "build"?`, "Commands:"}, ""},
		{"verb too far", []string{"frobnicate"}, []string{`unknown command "frobnicate"`}, "did you mean"},
		{"flag", []string{"build", "--profle", "gl-ar150"}, []string{"flag provided but not defined: -profle; did you mean \"--profile\"?", "Usage: imgbuild build [flags]", "Run `imgbuild build --help`"}, ""},
		{"flag after argument", []string{"inspect", "x.bin", "--file"}, []string{`did you mean "--files"?`, "Usage: imgbuild inspect [flags] IMAGE"}, ""},
		{"subverb flag", []string{"release", "sign", "--detatched"}, []string{`did you mean "--detached"?`, "Usage: imgbuild release sign"}, ""},
		{"short flag", []string{"keygen", "-x"}, []string{"flag provided but not defined: -x"}, "did you mean"},
		{"bad value", []string{"release", "keys", "--threshold", "many"}, []string{`invalid value "many" for flag -threshold`}, "did you mean"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := fndRun(t, tc.args...)
			if r.code != exitUsage || r.stdout != "" {
				t.Errorf("exit %d, stdout %q; want exit 2 and empty stdout", r.code, r.stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			if tc.notWant != "" && strings.Contains(r.stderr, tc.notWant) {
				t.Errorf("stderr has %q:\n%s", tc.notWant, r.stderr)
			}
			for _, once := range []string{"flag provided but not defined", "invalid value", "unknown command"} {
				if n := strings.Count(r.stderr, once); n > 1 {
					t.Errorf("%q printed %d times:\n%s", once, n, r.stderr)
				}
			}
			if strings.Count(r.stderr, "Usage:") > 1 {
				t.Errorf("usage printed twice:\n%s", r.stderr)
			}
		})
	}
	// --help is not an error: usage on stdout, nothing on stderr.
	r := fndRun(t, "inspect", "--help")
	if r.code != exitOK || !strings.Contains(r.stdout, "Usage: imgbuild inspect [flags] IMAGE") || !strings.Contains(r.stdout, "-files") || r.stderr != "" {
		t.Errorf("inspect --help: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
}

func TestCompletion(t *testing.T) {
	cmds, err := completionCommands(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	scripts := map[string]string{}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		scripts[sh] = fndMust(t, "completion", sh).stdout
	}
	for sh, s := range scripts {
		for _, v := range verbs() {
			if !strings.Contains(s, v.name) {
				t.Errorf("%s script lacks verb %s", sh, v.name)
			}
			for _, sub := range v.subs {
				if !strings.Contains(s, sub) {
					t.Errorf("%s script lacks %s %s", sh, v.name, sub)
				}
			}
		}
		// Every flag of every verb, so a new flag cannot be forgotten.
		for _, c := range cmds {
			for _, f := range c.flags {
				if !strings.Contains(s, f.name) {
					t.Errorf("%s script lacks %s's flag %s", sh, c.key, f.name)
				}
			}
		}
	}
	for _, f := range []string{"--profile", "--sha256sums", "--detached", "--files", "--key-out"} {
		if !strings.Contains(scripts["bash"], f) || !strings.Contains(scripts["zsh"], f) || !strings.Contains(scripts["fish"], "-l "+f[2:]) {
			t.Errorf("a script lacks %s", f)
		}
	}
	if !strings.Contains(scripts["fish"], "-s o -r") {
		t.Errorf("fish script lacks keygen's -o")
	}
	r := fndRun(t, "completion", "fsh")
	if r.code != exitUsage || !strings.Contains(r.stderr, `did you mean "fish"?`) {
		t.Errorf("completion fsh: exit %d, stderr %s", r.code, r.stderr)
	}

	dir := t.TempDir()
	for sh, flag := range map[string]string{"bash": "-n", "zsh": "-n", "fish": "--no-execute"} {
		path := filepath.Join(dir, "imgbuild."+sh)
		if err := os.WriteFile(path, []byte(scripts[sh]), 0o644); err != nil {
			t.Fatal(err)
		}
		bin, err := exec.LookPath(sh)
		if err != nil {
			if sh == "bash" {
				t.Fatalf("bash is required for this test: %v", err)
			}
			t.Logf("%s is not installed: its script was checked as text only", sh)
			continue
		}
		if out, err := exec.Command(bin, flag, path).CombinedOutput(); err != nil {
			t.Errorf("%s %s rejects the script: %v\n%s", sh, flag, err, out)
		}
	}

	// Run the bash function on a few command lines.
	driver := `source "$1"
t() { COMP_WORDS=("${@:2}"); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); COMPREPLY=(); _imgbuild; echo "$1: ${COMPREPLY[*]}"; }
t top imgbuild bu
t flag imgbuild build --pro
t sub imgbuild release si
t subflag imgbuild release sign --det
t value imgbuild sign --key ''
t shell imgbuild completion z
`
	out, err := exec.Command("bash", "-c", driver, "bash", filepath.Join(dir, "imgbuild.bash")).CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	want := "top: build\nflag: --profile\nsub: sign\nsubflag: --detached\nvalue: \nshell: zsh\n"
	if string(out) != want {
		t.Errorf("bash completions:\n%s\nwant:\n%s", out, want)
	}
}

// A file without fwtool chunks is not a sysupgrade image: inspect says so
// and fails, in text and JSON mode (where stdout has the error document).
func TestInspectNotAnImage(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string][]byte{
		"text":  []byte("hello, this is not firmware\n"),
		"empty": nil,
		"zeros": make([]byte, 64<<10),
	} {
		t.Run(name, func(t *testing.T) {
			p := fndWrite(t, filepath.Join(dir, name), data, 0o644)
			r := fndRun(t, "inspect", p)
			fndExpect(t, r, exitFailure, p+": not a sysupgrade image")
			if r.stdout != "" {
				t.Errorf("stdout %q", r.stdout)
			}
			r = fndRun(t, "inspect", "--json", p)
			fndExpect(t, r, exitFailure, p+": not a sysupgrade image")
			if doc := jsonDoc[*inspectReport](t, r, "inspect"); doc.Result != nil || doc.Error == nil || doc.Error.Code != "not_an_image" {
				t.Errorf("inspect --json: %s", r.stdout)
			}
		})
	}
}

// The CLI passes the signer's advice through: a .pub given as --key.
func TestPublicKeyAsSigningKey(t *testing.T) {
	base, _, _ := fndKeygen(t, t.TempDir(), "release")
	r := fndRun(t, "release", "pubkey", "--key", base+".pub")
	fndExpect(t, r, exitFailure, "is a usign public key; signing needs the secret key: pass "+base+".sec")
	if strings.Contains(r.stderr, "chmod") {
		t.Errorf("advice to chmod a public key: %s", r.stderr)
	}
	// imgbuild sign reads usign key files itself.
	img := filepath.Join(t.TempDir(), "image.bin")
	os.WriteFile(img, []byte("not signed yet"), 0o644)
	r = fndRun(t, "sign", "--key", base+".pub", img)
	fndExpect(t, r, exitFailure, "is a usign public key; signing needs the secret key: pass "+base+".sec")
	if strings.Contains(r.stderr, "chmod") {
		t.Errorf("sign: advice to chmod a public key: %s", r.stderr)
	}
}
