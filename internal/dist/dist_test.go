package dist

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/gobuild"
)

func TestImageAndManifestNames(t *testing.T) {
	cases := []struct {
		simulated          bool
		image, manifestOut string
	}{
		{false, "torwrt-0.1.0-gl-ar150-squashfs-sysupgrade.bin", "torwrt-0.1.0-gl-ar150.manifest"},
		{true, "torwrt-0.1.0-gl-ar150-SIMULATED-squashfs-sysupgrade.bin", "torwrt-0.1.0-gl-ar150-SIMULATED.manifest"},
	}
	for _, c := range cases {
		img := ImageName("torwrt", "0.1.0", "gl-ar150", c.simulated)
		if img != c.image {
			t.Errorf("ImageName(simulated=%v) = %q, want %q", c.simulated, img, c.image)
		}
		if m := ManifestName(img); m != c.manifestOut {
			t.Errorf("ManifestName(%q) = %q, want %q", img, m, c.manifestOut)
		}
	}
	// The two names differ, and neither collides with another dist file.
	a, b := ImageName("acme", "2.0", "gl-mt300a", false), ImageName("acme", "2.0", "gl-mt300a", true)
	if a == b || ManifestName(a) == ManifestName(b) {
		t.Errorf("simulated and real names collide: %q %q", a, b)
	}
	for _, n := range []string{a, b, ManifestName(a), ManifestName(b), a + SigSuffix, a + CosignSuffix} {
		if slices.Contains([]string{ReportFile, SumsFile, LockFile, SBOMFile, StatementFile, ProvenanceFile, CosignPubFile}, n) {
			t.Errorf("%q collides with a fixed dist file name", n)
		}
	}
}

// writeFiles writes name → content into s and returns the names.
func writeFiles(t *testing.T, s *Stage, files map[string]string) []string {
	t.Helper()
	var names []string
	for n, c := range files {
		if err := s.Write(n, []byte(c)); err != nil {
			t.Fatalf("Write(%q): %v", n, err)
		}
		names = append(names, n)
	}
	return names
}

// entries lists dir's names, sorted ("" for a missing dir: nil).
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func TestStageWriteSumsCommit(t *testing.T) {
	out := filepath.Join(t.TempDir(), "dist")
	s, err := NewStage(out, "gl-ar150")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(s.Dir); err != nil || fi.Mode().Perm() != 0o755 || !strings.HasPrefix(filepath.Base(s.Dir), ".gl-ar150.") {
		t.Fatalf("staging dir %s: %v %v (want a hidden 0755 sibling)", s.Dir, fi.Mode(), err)
	}
	files := map[string]string{"zeta.bin": "image bytes", "alpha.manifest": "tor - 1\n", LockFile: "{}\n"}
	names := writeFiles(t, s, files)
	if err := s.WriteSums(names); err != nil {
		t.Fatal(err)
	}
	// Before Commit nothing is at dist/<profile>.
	if _, err := os.Stat(filepath.Join(out, "gl-ar150")); !os.IsNotExist(err) {
		t.Fatalf("dist/gl-ar150 exists before Commit: %v", err)
	}
	sums, err := os.ReadFile(s.Path(SumsFile))
	if err != nil {
		t.Fatal(err)
	}
	want := SHA256Hex([]byte(files["alpha.manifest"])) + " *alpha.manifest\n" +
		SHA256Hex([]byte(files[LockFile])) + " *" + LockFile + "\n" +
		SHA256Hex([]byte(files["zeta.bin"])) + " *zeta.bin\n"
	if string(sums) != want {
		t.Fatalf("sha256sums:\n%s\nwant:\n%s", sums, want)
	}
	// SHA256Hex is lowercase hex SHA-256 (FIPS 180-2's "abc" vector).
	if got := SHA256Hex([]byte("abc")); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("SHA256Hex(abc) = %s", got)
	}
	final, err := s.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if final != filepath.Join(out, "gl-ar150") {
		t.Fatalf("Commit returned %s", final)
	}
	// dist/ holds exactly the profile's directory: no staging dir left.
	if got := entries(t, out); !slices.Equal(got, []string{"gl-ar150"}) {
		t.Fatalf("dist/ after Commit: %q", got)
	}
	if got, want := entries(t, final), []string{"alpha.manifest", LockFile, "zeta.bin", SumsFile}; !sameSet(got, want) {
		t.Fatalf("dist/gl-ar150: %q, want %q", got, want)
	}
	for n, c := range files {
		data, err := os.ReadFile(filepath.Join(final, n))
		if err != nil || string(data) != c {
			t.Errorf("%s: %q %v", n, data, err)
		}
		if fi, _ := os.Stat(filepath.Join(final, n)); fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, want 0644", n, fi.Mode().Perm())
		}
	}
	if fi, _ := os.Stat(final); fi.Mode().Perm() != 0o755 {
		t.Errorf("dist/gl-ar150: mode %v, want 0755", fi.Mode().Perm())
	}
	// Abort after Commit does nothing.
	s.Abort()
	if _, err := os.Stat(filepath.Join(final, "zeta.bin")); err != nil {
		t.Fatalf("Abort after Commit removed the committed directory: %v", err)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// A second build of a profile replaces dist/<profile> as a whole: no file
// of the older build survives, and no .old directory is left behind.
func TestStageCommitReplacesOlder(t *testing.T) {
	out := t.TempDir()
	old, err := NewStage(out, "gl-mt300a")
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, old, map[string]string{"old-only.bin": "old", "shared.txt": "old"})
	if _, err := old.Commit(); err != nil {
		t.Fatal(err)
	}
	s, err := NewStage(out, "gl-mt300a")
	if err != nil {
		t.Fatal(err)
	}
	names := writeFiles(t, s, map[string]string{"shared.txt": "new"})
	if err := s.WriteSums(names); err != nil {
		t.Fatal(err)
	}
	final, err := s.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if got := entries(t, out); !slices.Equal(got, []string{"gl-mt300a"}) {
		t.Fatalf("dist/ after the second Commit: %q (want only gl-mt300a: no .old, no staging dir)", got)
	}
	if got := entries(t, final); !sameSet(got, []string{"shared.txt", SumsFile}) {
		t.Fatalf("dist/gl-mt300a holds %q: the older build's files survived", got)
	}
	if data, _ := os.ReadFile(filepath.Join(final, "shared.txt")); string(data) != "new" {
		t.Fatalf("shared.txt = %q, want the new build's", data)
	}
}

// Abort, and every failed write before Commit, leaves neither a staging
// directory nor dist/<profile>; an older dist/<profile> is untouched.
func TestStageFailureLeavesNothing(t *testing.T) {
	out := t.TempDir()
	prev, err := NewStage(out, "gl-ar150")
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, prev, map[string]string{"image.bin": "previous"})
	if _, err := prev.Commit(); err != nil {
		t.Fatal(err)
	}

	t.Run("abort", func(t *testing.T) {
		s, err := NewStage(out, "gl-mt300a")
		if err != nil {
			t.Fatal(err)
		}
		writeFiles(t, s, map[string]string{"image.bin": "half"})
		s.Abort()
		if got := entries(t, out); !slices.Equal(got, []string{"gl-ar150"}) {
			t.Fatalf("dist/ after Abort: %q", got)
		}
	})
	for _, bad := range []string{"", "../escape", "sub/file", `back\slash`, ".hidden", SumsFile + "/x"} {
		t.Run("bad name "+bad, func(t *testing.T) {
			s, err := NewStage(out, "gl-ar150")
			if err != nil {
				t.Fatal(err)
			}
			writeFiles(t, s, map[string]string{"image.bin": "half-written"})
			if err := s.Write(bad, []byte("x")); err == nil {
				t.Fatalf("Write(%q) accepted", bad)
			}
			s.Abort() // what the build does on any error
			if got := entries(t, out); !slices.Equal(got, []string{"gl-ar150"}) {
				t.Fatalf("dist/ after a failed write: %q", got)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(out), "escape")); !os.IsNotExist(err) {
				t.Fatalf("Write(%q) wrote outside the staging dir", bad)
			}
			if data, _ := os.ReadFile(filepath.Join(out, "gl-ar150", "image.bin")); string(data) != "previous" {
				t.Fatalf("the committed dist/gl-ar150 changed: %q", data)
			}
		})
	}
	t.Run("sums over a missing file", func(t *testing.T) {
		s, err := NewStage(out, "gl-ar150")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Abort()
		names := writeFiles(t, s, map[string]string{"image.bin": "x"})
		if err := s.WriteSums(append(names, "missing.sig")); err == nil {
			t.Fatal("WriteSums over a file that is not there: no error")
		}
		if _, err := os.Stat(s.Path(SumsFile)); !os.IsNotExist(err) {
			t.Fatalf("a failed WriteSums left %s: %v", SumsFile, err)
		}
	})
	t.Run("sums name with a slash", func(t *testing.T) {
		s, err := NewStage(out, "gl-ar150")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Abort()
		// A file that exists, reached through a path: still refused, a
		// sha256sums line names a file in this directory only.
		if err := os.WriteFile(filepath.Join(out, "outside"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(filepath.Join(out, "outside"))
		if err := s.WriteSums([]string{"../outside"}); err == nil {
			t.Fatal("WriteSums accepted ../outside")
		}
	})
}

func TestExtendSums(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("m.bin", "image")
	write("b.manifest", "manifest")
	// No sha256sums yet: ExtendSums makes one.
	if err := ExtendSums(dir, []string{"m.bin", "b.manifest"}); err != nil {
		t.Fatal(err)
	}
	read := func() string {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(dir, SumsFile))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	line := func(name, content string) string { return SHA256Hex([]byte(content)) + " *" + name + "\n" }
	if got, want := read(), line("b.manifest", "manifest")+line("m.bin", "image"); got != want {
		t.Fatalf("new sha256sums:\n%s\nwant:\n%s", got, want)
	}
	// Add one (sorted between the two) and refresh one whose file changed;
	// the line not named keeps its recorded hash even though its file
	// changed (ExtendSums touches only what it is told to).
	write("f.intoto.jsonl", "attestation")
	write("m.bin", "image v2")
	write("b.manifest", "changed but not named")
	if err := ExtendSums(dir, []string{"f.intoto.jsonl", "m.bin"}); err != nil {
		t.Fatal(err)
	}
	want := line("b.manifest", "manifest") + line("f.intoto.jsonl", "attestation") + line("m.bin", "image v2")
	if got := read(); got != want {
		t.Fatalf("extended sha256sums:\n%s\nwant:\n%s", got, want)
	}
	// Atomic: no temporary file left beside it.
	if got := entries(t, dir); !sameSet(got, []string{"b.manifest", "f.intoto.jsonl", "m.bin", SumsFile}) {
		t.Fatalf("dir after ExtendSums: %q", got)
	}
	// Refusals leave sha256sums as it was.
	for _, bad := range [][]string{{"sub/x"}, {"../m.bin"}, {`a\b`}, {""}, {"..", "m.bin"}, {"new\nline"}, {"absent.sig"}} {
		if bad[0] == "sub/x" {
			if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			write("sub/x", "nested")
		}
		if err := ExtendSums(dir, bad); err == nil {
			t.Errorf("ExtendSums(%q) accepted", bad)
		}
		if got := read(); got != want {
			t.Errorf("ExtendSums(%q) changed sha256sums:\n%s", bad, got)
		}
	}
}

// writeReport writes dist/<dir>/build-report.json.
func writeReport(t *testing.T, dist, dir string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dist, dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dist, dir, ReportFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func reportJSON(t *testing.T, profile, image string) []byte {
	t.Helper()
	data, err := (&Report{Profile: profile, Image: image}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestFindProfiles(t *testing.T) {
	dist := t.TempDir()
	writeReport(t, dist, "gl-mt300a", reportJSON(t, "gl-mt300a", ImageName("torwrt", "0.1.0", "gl-mt300a", true)))
	writeReport(t, dist, "gl-ar150", reportJSON(t, "gl-ar150", ImageName("torwrt", "0.1.0", "gl-ar150", true)))
	// Stray things FindProfiles ignores: a staging directory (even with a
	// report in it, and an unparsable one), a directory without a report,
	// a file at the top.
	writeReport(t, dist, ".gl-ar150.incomplete-123", []byte("{not json"))
	if err := os.MkdirAll(filepath.Join(dist, "notes"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dist, "README"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	ps, err := FindProfiles(dist)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Report.Profile != "gl-ar150" || ps[1].Report.Profile != "gl-mt300a" {
		t.Fatalf("FindProfiles: %+v", ps)
	}
	p := ps[0]
	if p.Dir != filepath.Join(dist, "gl-ar150") || p.ImagePath() != filepath.Join(dist, "gl-ar150", "torwrt-0.1.0-gl-ar150-SIMULATED-squashfs-sysupgrade.bin") ||
		p.Path(SumsFile) != filepath.Join(dist, "gl-ar150", SumsFile) {
		t.Fatalf("paths: %s %s %s", p.Dir, p.ImagePath(), p.Path(SumsFile))
	}

	empty := t.TempDir()
	if err := os.MkdirAll(filepath.Join(empty, "notes"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := FindProfiles(empty); err == nil || !strings.Contains(err.Error(), "no built profiles") || !strings.Contains(err.Error(), "imgbuild build --all") {
		t.Fatalf("FindProfiles of a dist/ without builds: %v", err)
	}

	for name, c := range map[string]struct {
		dir  string
		data []byte
		want string
	}{
		"malformed":          {"gl-ar150", []byte(`{"profile": "gl-ar150", "image": `), ReportFile},
		"wrong type":         {"gl-ar150", []byte(`{"profile": 7}`), ReportFile},
		"no profile":         {"gl-ar150", reportJSON(t, "", "x.bin"), "no profile or image name"},
		"no image":           {"gl-ar150", reportJSON(t, "gl-ar150", ""), "no profile or image name"},
		"image with a slash": {"gl-ar150", reportJSON(t, "gl-ar150", "../../etc/passwd"), "no profile or image name"},
		"image backslash":    {"gl-ar150", reportJSON(t, "gl-ar150", `..\x.bin`), "no profile or image name"},
		"misplaced":          {"gl-ar150", reportJSON(t, "gl-mt300a", "x.bin"), `report is for profile "gl-mt300a" but lives in gl-ar150/`},
	} {
		t.Run(name, func(t *testing.T) {
			d := t.TempDir()
			writeReport(t, d, "gl-mt300a", reportJSON(t, "gl-mt300a", "good.bin"))
			writeReport(t, d, c.dir, c.data)
			ps, err := FindProfiles(d)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("FindProfiles: %v, %d profiles; want an error with %q", err, len(ps), c.want)
			}
		})
	}
}

// build-report.json is reproducible: this run's fields (DistDir, Timings,
// Cached) are not in it, and it reads back into the same report.
func TestReportJSON(t *testing.T) {
	r := &Report{
		Profile: "gl-ar150", Brand: "torwrt", Channel: "stable", Simulated: true, Version: "0.1.0", Build: 3,
		SourceDateEpoch: 1735689600, Image: "x.bin", ImageSHA256: strings.Repeat("ab", 32),
		Daemon:   &gobuild.Result{Binary: []byte("ELF secret bytes"), SHA256: strings.Repeat("cd", 32), GoVersion: "go1.26"},
		Packages: []string{"base-files", "tor"}, Outputs: []string{"x.bin", SumsFile},
		DistDir: "/home/someone/dist/gl-ar150", Timings: map[string]string{"compile": "1.5s"}, Cached: []string{"run"},
	}
	data, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(data, []byte("}\n")) || !bytes.HasPrefix(data, []byte("{\n  \"profile\": \"gl-ar150\",\n")) {
		t.Fatalf("not indented JSON ending in a newline:\n%s", data)
	}
	for _, leak := range []string{"/home/someone", "1.5s", "DistDir", "dist_dir", "Timings", "timings", "Cached", "cached", "ELF secret"} {
		if bytes.Contains(data, []byte(leak)) {
			t.Errorf("build-report.json holds %q:\n%s", leak, data)
		}
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(data, &keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"profile", "brand", "channel", "simulated", "version", "build", "source_date_epoch", "image", "image_sha256", "daemon", "packages", "outputs", "profile_from", "brand_from"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("build-report.json lacks %q", k)
		}
	}
	// Changing only this run's fields changes no byte.
	r2 := *r
	r2.DistDir, r2.Timings, r2.Cached = "/elsewhere", map[string]string{"run": "9m"}, nil
	data2, err := r2.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, data2) {
		t.Fatalf("this run's fields reach build-report.json:\n%s\n%s", data, data2)
	}
	var back Report
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	again, err := back.Marshal()
	if err != nil || !bytes.Equal(again, data) {
		t.Fatalf("report does not round-trip (%v):\n%s\n%s", err, data, again)
	}
}
