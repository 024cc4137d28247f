package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/build"
	"github.com/torwrt/torwrt/internal/cliout"
	"github.com/torwrt/torwrt/internal/dist"
)

// simBuildArgs are a simulated build's flags (podman, root and runc
// needed, as for TestBuildProgressOutput) with a throwaway key made by
// `imgbuild keygen` in dir.
func simBuildArgs(t *testing.T, dir, cache string) []string {
	t.Helper()
	key := filepath.Join(dir, "release")
	if _, err := os.Stat(key + ".sec"); err != nil {
		fndMust(t, "keygen", "-o", key)
	}
	return []string{"build", "--simulated-ib", "--engine", "podman", "--key", key + ".sec", "--release-keys", key + ".pub", "--cache", cache}
}

// --until and --jobs are checked before any work: no key, no podman.
func TestBuildUntilJobsRefusals(t *testing.T) {
	stepList := strings.Join(build.Steps, ", ")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--until", "link"}, `--until "link": want one of ` + stepList},
		{[]string{"--until", "RENDER"}, `--until "RENDER": want one of ` + stepList},
		{[]string{"--jobs", "0"}, "--jobs 0: want at least 1"},
		{[]string{"--jobs", "-3"}, "--jobs -3: want at least 1"},
		{[]string{"--jobs", "two"}, `invalid value "two" for flag -jobs`},
	} {
		args := append([]string{"build", "--profile", "gl-ar150"}, c.args...)
		r := fndRun(t, args...)
		fndExpect(t, r, exitUsage, c.want)
		if r.stdout != "" {
			t.Errorf("%v: stdout %q", c.args, r.stdout)
		}
		// The same refusal as a --json document.
		doc := jsonFail[any](t, "build", exitUsage, cliout.CodeUsage, append(args, "--json")...)
		if doc.Error != nil && !strings.Contains(doc.Error.Message, strings.TrimPrefix(c.want, "invalid value ")) {
			t.Errorf("%v --json: message %q, want %q", c.args, doc.Error.Message, c.want)
		}
	}
	// Every step is named in the usage error, in pipeline order.
	if !strings.Contains(stepList, "resolve, compile, render, fetch, run, check, normalize, sign, write") {
		t.Errorf("steps %q", stepList)
	}
}

// `build --until render` stops after render: exit 0, nothing in dist/, and
// the work directory kept, named on stdout (and in --json as work_dir with
// stopped_after), holding the rendered overlay.
func TestBuildUntilRender(t *testing.T) {
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	out := filepath.Join(dir, "dist")
	base := append(simBuildArgs(t, dir, cache), "--profile", "gl-ar150", "--out", out, "--until", "render")

	checkStopped := func(t *testing.T, stderr, work string) {
		t.Helper()
		if _, err := os.Stat(filepath.Join(out, "gl-ar150")); !os.IsNotExist(err) {
			t.Errorf("--until render made %s/gl-ar150 (%v)", out, err)
		}
		if es, _ := os.ReadDir(out); len(es) != 0 {
			t.Errorf("--until render left %d entries in dist/ (a staging dir?)", len(es))
		}
		for _, f := range []string{"etc/torwrt/firewall.nft", "etc/tor/torrc", "usr/sbin/torwrt-verify"} {
			fi, err := os.Stat(filepath.Join(work, "files", f))
			if err != nil || fi.Size() == 0 {
				t.Errorf("work dir lacks render's %s: %v", f, err)
			}
		}
		nft, _ := os.ReadFile(filepath.Join(work, "files", "etc/torwrt/firewall.nft"))
		if !strings.Contains(string(nft), "table") {
			t.Errorf("firewall.nft is not a ruleset: %.200q", nft)
		}
		// Later steps did not run: no feed, no ImageBuilder output.
		for _, later := range []string{"feed", "bin", "unsigned.bin"} {
			if _, err := os.Stat(filepath.Join(work, later)); !os.IsNotExist(err) {
				t.Errorf("work dir has %s after --until render (%v)", later, err)
			}
		}
		lines := strings.Split(stderr, "\n")
		for i, step := range build.Steps {
			re := regexp.MustCompile(`^\[gl-ar150\] ` + step + ` [0-9]`)
			ran := slices.ContainsFunc(lines, re.MatchString)
			if want := i <= slices.Index(build.Steps, "render"); ran != want {
				t.Errorf("step %s ran: %v, want %v\n%s", step, ran, want, stderr)
			}
		}
		if !strings.Contains(stderr, "[gl-ar150] stopped after render in ") || !strings.Contains(stderr, work) {
			t.Errorf("stderr does not say where it stopped and where the outputs are:\n%s", stderr)
		}
	}

	t.Run("text", func(t *testing.T) {
		// No --work-dir: a fresh temporary one, kept and named.
		r := fndMust(t, base...)
		m := regexp.MustCompile(`^gl-ar150: stopped after render; its outputs are in (\S+)\n$`).FindStringSubmatch(r.stdout)
		if m == nil {
			t.Fatalf("stdout %q does not name the kept work directory", r.stdout)
		}
		work := m[1]
		if !strings.HasPrefix(filepath.Base(work), "torwrt-build-") {
			t.Errorf("work dir %s", work)
		}
		t.Cleanup(func() { os.RemoveAll(work) })
		checkStopped(t, r.stderr, work)
	})

	t.Run("json", func(t *testing.T) {
		work := filepath.Join(dir, "work")
		r := fndMust(t, append(base, "--work-dir", work, "--json")...)
		doc := jsonDoc[buildResult](t, r, "build")
		if !doc.OK || len(doc.Result.Builds) != 1 {
			t.Fatalf("document: %+v", doc)
		}
		b := doc.Result.Builds[0]
		if b.StoppedAfter != "render" || b.WorkDir != work || b.DistDir != "" || b.Profile != "gl-ar150" {
			t.Errorf("stopped_after %q work_dir %q dist_dir %q profile %q", b.StoppedAfter, b.WorkDir, b.DistDir, b.Profile)
		}
		for _, step := range []string{"resolve", "compile", "render"} {
			if b.Timings[step] == "" {
				t.Errorf("no timing for %s: %v", step, b.Timings)
			}
		}
		if b.Timings["fetch"] != "" || b.Image != "" || b.ImageSHA256 != "" {
			t.Errorf("steps after render reported: timings %v, image %q", b.Timings, b.Image)
		}
		// The second build of the same inputs replays compile.
		if !slices.Contains(b.Cached, "compile") {
			t.Errorf("cached %v: compile not replayed from the step cache", b.Cached)
		}
		if len(b.OverlaySHA256) != 64 {
			t.Errorf("overlay_sha256 %q", b.OverlaySHA256)
		}
		checkStopped(t, r.stderr, work)
	})
}

// `build --all --jobs 2` builds both primary profiles (not the -24.10
// variants), each with its own prefixed progress, into dist/<profile>/,
// which dist.FindProfiles reads back with sums that match.
func TestBuildAllJobs2(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "dist")
	args := append(simBuildArgs(t, dir, filepath.Join(dir, "cache")), "--all", "--jobs", "2", "--out", out)
	r := fndMust(t, args...)
	want := []string{"gl-ar150", "gl-mt300a"}
	for _, id := range want {
		if !regexp.MustCompile(`(?m)^` + id + ` \[SIMULATED ImageBuilder\]: \S+/` + id + `/torwrt-0\.1\.0-` + id + `-SIMULATED-squashfs-sysupgrade\.bin$`).MatchString(r.stdout) {
			t.Errorf("stdout does not report %s:\n%s", id, r.stdout)
		}
	}
	lines := strings.Split(r.stderr, "\n")
	for _, id := range want {
		for _, step := range build.Steps {
			re := regexp.MustCompile(`^\[` + id + `\] ` + step + ` [0-9]`)
			if !slices.ContainsFunc(lines, re.MatchString) {
				t.Errorf("no line %s on stderr", re)
			}
		}
		if !slices.ContainsFunc(lines, regexp.MustCompile(`^\[`+id+`\] built in `).MatchString) {
			t.Errorf("no [%s] built in … line", id)
		}
	}
	// Each line is one profile's: a prefix never appears mid-line (two
	// builds writing at once do not interleave within a line).
	prefix := regexp.MustCompile(`\[gl-(ar150|mt300a)(-24\.10)?\] `)
	for _, l := range lines {
		if locs := prefix.FindAllStringIndex(l, -1); len(locs) > 1 || (len(locs) == 1 && locs[0][0] != 0) {
			t.Errorf("interleaved progress line: %q", l)
		}
		if strings.Contains(l, "[gl-ar150-24.10]") || strings.Contains(l, "[gl-mt300a-24.10]") {
			t.Errorf("--all built a non-primary profile: %q", l)
		}
	}

	ps, err := dist.FindProfiles(out)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.Report.Profile)
		sums, err := os.ReadFile(p.Path(dist.SumsFile))
		if err != nil {
			t.Fatal(err)
		}
		names := 0
		for _, l := range strings.Split(strings.TrimSuffix(string(sums), "\n"), "\n") {
			sum, name, ok := strings.Cut(l, " *")
			data, err := os.ReadFile(p.Path(name))
			if !ok || err != nil || dist.SHA256Hex(data) != sum {
				t.Errorf("%s: sha256sums line %q does not match (%v)", p.Report.Profile, l, err)
			}
			names++
		}
		if img, err := os.ReadFile(p.ImagePath()); err != nil || dist.SHA256Hex(img) != p.Report.ImageSHA256 {
			t.Errorf("%s: image does not match its report (%v)", p.Report.Profile, err)
		}
		if names < 5 || !strings.Contains(string(sums), " *"+p.Report.Image+"\n") {
			t.Errorf("%s: sha256sums has %d lines and must list the image:\n%s", p.Report.Profile, names, sums)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("dist/ holds %v, want %v", got, want)
	}
	if es, _ := os.ReadDir(out); len(es) != 2 {
		t.Errorf("dist/ has %d entries, want the 2 profiles only (no staging dirs)", len(es))
	}
}
