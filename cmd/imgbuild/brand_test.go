package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/torwrt/torwrt/internal/brand"
	"github.com/torwrt/torwrt/internal/usign"
)

// brandTree makes a minimal torwrt tree (go.mod, profiles/, brands/) so
// brand init never writes into the real one.
func brandTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"profiles", "brands"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestBrandInitGeneratesKey(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	root := brandTree(t)
	keys := filepath.Join(t.TempDir(), "acme-release-2026")
	r := fndMust(t, "brand", "init", "acme", "--root", root, "--key-out", keys, "--product", "ACME Guard", "--vendor", "ACME Networks", "--primary", "#0b6e4f")
	for _, want := range []string{"created " + filepath.Join(root, "brands", "acme"), keys + ".sec, mode 0600", "imgbuild brand check acme"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	fi, err := os.Stat(keys + ".sec")
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret key: %v %v", fi, err)
	}
	sec, err := usign.ReadSecretKeyFile(keys + ".sec")
	if err != nil {
		t.Fatal(err)
	}
	b, err := brand.Load(filepath.Join(root, "brands"), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Keys) != 1 || b.Keys[0].Fingerprint != sec.Fingerprint || b.KeyFiles[0] != "acme-release-2026.pub" {
		t.Fatalf("brand keys %v %v, want the generated %s", b.KeyFiles, b.Keys, sec.Fingerprint)
	}
	if b.ProductName != "ACME Guard" || b.Vendor != "ACME Networks" || b.Colors.Primary != "#0b6e4f" || b.SSIDPrefix != "ACMEGuard" {
		t.Fatalf("%+v", b)
	}
	// Nothing secret in the brand directory; everything world-readable.
	filepath.WalkDir(b.Dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(p, ".sec") {
			t.Errorf("%s: secret key in the brand", p)
		}
		fi, _ := d.Info()
		if want := map[bool]os.FileMode{true: 0o755, false: 0o644}[d.IsDir()]; fi.Mode().Perm() != want {
			t.Errorf("%s: mode %04o, want %04o", p, fi.Mode().Perm(), want)
		}
		return nil
	})
	yaml := string(fndRead(t, filepath.Join(b.Dir, "brand.yaml")))
	for _, want := range []string{"# Brand acme", "CHANGE ME", "threshold: 1", sec.Fingerprint.String()} {
		if !strings.Contains(yaml, want) {
			t.Errorf("brand.yaml lacks %q", want)
		}
	}

	// The scaffold checks, with warnings about its example addresses.
	r = fndMust(t, "brand", "check", "acme", "--root", root)
	for _, want := range []string{"brand acme OK", "ACME Guard by ACME Networks", "ACMEGuard-tor_medium", sec.Fingerprint.String(), "warning      support_url", "status page  at most"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check output lacks %q:\n%s", want, r.stdout)
		}
	}
	// A second init refuses, before making another key.
	keys2 := filepath.Join(t.TempDir(), "k2")
	fndExpect(t, fndRun(t, "brand", "init", "acme", "--root", root, "--key-out", keys2), exitFailure, "already exists")
	if _, err := os.Stat(keys2 + ".sec"); err == nil {
		t.Error("a refused init made a key anyway")
	}
}

func TestBrandInitWithPub(t *testing.T) {
	root := brandTree(t)
	base := throwawayKey(t)
	r := fndMust(t, "brand", "init", "zeta", "--root", root, "--pub", base+".pub", "--json")
	res := jsonDoc[brandInitResult](t, r, "brand init").Result
	if res.SecretKey != "" || res.ReleaseKey.Fingerprint == "" || res.ReleaseKey.File != filepath.Join(root, "brands", "zeta", "k.pub") {
		t.Fatalf("%+v", res)
	}
	if got, want := fndRead(t, res.ReleaseKey.File), fndRead(t, base+".pub"); string(got) != string(want) {
		t.Errorf("public key changed on the way:\n%s\n%s", got, want)
	}
}

func TestBrandInitRefusals(t *testing.T) {
	root := brandTree(t)
	key := throwawayKey(t)
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no name", []string{"brand", "init", "--root", root, "--pub", key + ".pub"}, exitUsage, "want one brand NAME"},
		{"no key", []string{"brand", "init", "x", "--root", root}, exitUsage, "exactly one of --key-out"},
		{"both keys", []string{"brand", "init", "x", "--root", root, "--pub", key + ".pub", "--key-out", key + "2"}, exitUsage, "exactly one of --key-out"},
		{"secret key inside brands", []string{"brand", "init", "x", "--root", root, "--key-out", filepath.Join(root, "brands", "x-release")}, exitUsage, "brands are committed, secret keys never are"},
		{"secret key as pub", []string{"brand", "init", "x", "--root", root, "--pub", key + ".sec"}, exitFailure, "SECRET key"},
		{"bad name", []string{"brand", "init", "Bad_Name", "--root", root, "--pub", key + ".pub"}, exitFailure, "brand id"},
		{"unreadable primary", []string{"brand", "init", "x", "--root", root, "--pub", key + ".pub", "--primary", "#eeeeee"}, exitFailure, "contrast"},
		{"no verb", []string{"brand"}, exitUsage, "brand init NAME"},
		{"unknown verb", []string{"brand", "paint", "x"}, exitUsage, "brand init NAME"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fndExpect(t, fndRun(t, c.args...), c.code, c.want)
		})
	}
	if entries, _ := os.ReadDir(filepath.Join(root, "brands")); len(entries) != 0 {
		t.Errorf("refused inits left %v", entries)
	}
}

func TestBrandCheckShipped(t *testing.T) {
	root := filepath.Join("..", "..")
	r := fndMust(t, "brand", "check", "--all", "--root", root, "--json")
	sums := jsonDoc[brandCheckResult](t, r, "brand check").Result.Brands
	if len(sums) < 2 {
		t.Fatalf("want torwrt and acme, got %d brands", len(sums))
	}
	for _, s := range sums {
		if s.StatusPage.MaxBytes <= 0 || s.StatusPage.MaxBytes >= statusBudget || len(s.Keys) == 0 || len(s.SSIDs) != 3 || s.Colors.TextContrast < brand.MinContrast {
			t.Errorf("%s: %+v", s.ID, s)
		}
		t.Logf("%s: status page at most %d bytes; warnings %q", s.ID, s.StatusPage.MaxBytes, s.Warnings)
	}
	preview := t.TempDir()
	r = fndMust(t, "brand", "check", "acme", "--root", root, "--preview", preview)
	if !strings.Contains(r.stdout, "brand acme OK") || !strings.Contains(r.stdout, "ACME-Guard-tor_max") {
		t.Errorf("%s", r.stdout)
	}
	for _, state := range []string{"up", "starting", "down"} {
		html := string(fndRead(t, filepath.Join(preview, "acme-tor-"+state+".html")))
		if !strings.Contains(html, "ACME Guard") || !strings.Contains(html, `id="tor-`+state+`"`) || !strings.Contains(html, "you are here") {
			t.Errorf("preview %s: %.300s", state, html)
		}
	}
}

func TestBrandCheckReportsEveryProblem(t *testing.T) {
	root := brandTree(t)
	fndMust(t, "brand", "init", "bad", "--root", root, "--pub", throwawayKey(t)+".pub")
	dir := filepath.Join(root, "brands", "bad")
	y := string(fndRead(t, filepath.Join(dir, "brand.yaml")))
	y = strings.Replace(y, `primary: "#2b5a9e"`, `primary: "#2b5a9"`, 1)
	y = strings.Replace(y, `support_url: "https://support.example.com/bad"`, `support_url: "http://support.example.com/bad"`, 1)
	os.WriteFile(filepath.Join(dir, "brand.yaml"), []byte(y), 0o644)
	os.Remove(filepath.Join(dir, "logo.svg"))
	r := fndRun(t, "brand", "check", "bad", "--root", root)
	fndExpect(t, r, exitFailure, "3 problem(s)")
	yamlPath := filepath.Join(dir, "brand.yaml")
	for _, want := range []string{yamlPath + ":", "colors.primary", "support_url: \"http://support.example.com/bad\": plain http", "logo: logo.svg: missing asset"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if r.stdout != "" {
		t.Errorf("stdout carries only results: %q", r.stdout)
	}
	fndExpect(t, fndRun(t, "brand", "check", "nope", "--root", root), exitUsage, "imgbuild brand init nope")
	fndExpect(t, fndRun(t, "brand", "check", "--root", root), exitUsage, "want one brand NAME or --all")
	fndExpect(t, fndRun(t, "brand", "check", "bad", "extra", "--root", root), exitUsage, "want one brand NAME or --all")
}

// brand init --country writes the Wi-Fi country into brand.yaml, refuses
// a code that is not ISO 3166-1 alpha-2, and brand check prints each
// brand's country (text and --json), also when it has none.
func TestBrandInitCountry(t *testing.T) {
	root := brandTree(t)
	key := throwawayKey(t)
	fndMust(t, "brand", "init", "gbco", "--root", root, "--pub", key+".pub", "--country", "GB")
	if y := string(fndRead(t, filepath.Join(root, "brands", "gbco", "brand.yaml"))); !strings.Contains(y, "\ncountry: GB ") {
		t.Errorf("brand.yaml has no country: GB line:\n%s", y)
	}
	fndExpect(t, fndRun(t, "brand", "init", "ukco", "--root", root, "--pub", key+".pub", "--country", "UK"), exitFailure, "country")
	fndMust(t, "brand", "init", "noco", "--root", root, "--pub", key+".pub")

	r := fndMust(t, "brand", "check", "gbco", "--root", root)
	if !regexp.MustCompile(`(?m)^  country +GB \(United Kingdom`).MatchString(r.stdout) {
		t.Errorf("brand check does not print the country:\n%s", r.stdout)
	}
	r = fndMust(t, "brand", "check", "noco", "--root", root)
	if !regexp.MustCompile(`(?m)^  country +none: builds need imgbuild build --country XX$`).MatchString(r.stdout) {
		t.Errorf("brand check does not say the brand has no country:\n%s", r.stdout)
	}
	for id, want := range map[string]string{"gbco": "GB", "noco": ""} {
		r := fndMust(t, "brand", "check", id, "--root", root, "--json")
		sums := jsonDoc[brandCheckResult](t, r, "brand check").Result.Brands
		if len(sums) != 1 || sums[0].Country != want {
			t.Errorf("%s: brand check --json %+v, want country %q", id, sums, want)
		}
	}
}
