package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/cliout"
	"github.com/torwrt/torwrt/internal/updater"
	"github.com/torwrt/torwrt/internal/updater/updatertest"
)

// `manifest verify --json` prints one document (docs/cli.md) for every
// verdict of the attack table, accepted or refused, and for usage errors.
func TestManifestVerifyJSON(t *testing.T) {
	dir := t.TempDir()
	schema := cliout.Schema("verify", "manifest", "verify")
	wantCode := map[int]string{
		exitOK: "", exitThreshold: cliout.CodeThreshold, exitExpired: cliout.CodeExpired, exitReplay: cliout.CodeReplay,
		exitRollback: cliout.CodeRollback, exitWrongBoard: cliout.CodeWrongBoard, exitTooLarge: cliout.CodeTooLarge,
		exitMalformed: cliout.CodeMalformed,
	}
	cases := writeFixtures(t, dir)
	// Usage and local errors.
	cases = append(cases,
		verdictCase{"usage no file", []string{"manifest", "verify", "--keys", "keys"}, exitUsage},
		verdictCase{"usage bad flag", []string{"manifest", "verify", "--bogus", "m-good.json"}, exitUsage},
		verdictCase{"missing keys", []string{"manifest", "verify", "--keys", "no-such-dir", "m-good.json"}, exitFailure},
	)
	wantCode[exitUsage], wantCode[exitFailure] = cliout.CodeUsage, cliout.CodeNotFound
	n := 0
	for _, tc := range cases {
		if tc.args[0] != "manifest" {
			continue
		}
		n++
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"manifest", "verify", "--json"}, tc.args[2:]...)
			code, out, errs := runIn(t, dir, args...)
			if code != tc.want {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.want, out, errs)
			}
			doc, err := cliout.Check[*manifestVerifyResult]([]byte(out), schema, code)
			if err != nil {
				t.Fatalf("%v\nstdout: %s\nstderr: %s", err, out, errs)
			}
			if code == exitOK {
				r := doc.Result
				if r == nil || r.Manifest == nil || len(r.SignedBy) < 2 || len(r.PayloadSHA256) != 64 || len(r.SignedBy[0].Fingerprint) != 16 {
					t.Errorf("result %+v", r)
				}
				return
			}
			if doc.Result != nil || doc.Error.Code != wantCode[code] {
				t.Errorf("error %+v, want code %q; result %+v", doc.Error, wantCode[code], doc.Result)
			}
			if strings.Count(errs, doc.Error.Message) > 1 || strings.Count(errs, "Usage") > 1 {
				t.Errorf("stderr repeats itself:\n%s", errs)
			}
		})
	}
	if n < 10 {
		t.Fatalf("only %d manifest cases", n)
	}
}

// `check --json` prints one torwrt.verify.check/v1 document for an
// install, for refusals (with the updater's result) and for usage and
// configuration errors (without one).
func TestCheckJSON(t *testing.T) {
	schema := cliout.Schema("verify", "check")
	m := newMirror(t)
	cfg, _ := m.writeConfig(t, nil)

	check := func(t *testing.T, wantExit int, args ...string) cliout.Document[*updater.Result] {
		t.Helper()
		code, out, errs := runIn(t, m.dir, append([]string{"check"}, args...)...)
		if code != wantExit {
			t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, wantExit, out, errs)
		}
		doc, err := cliout.Check[*updater.Result]([]byte(out), schema, code)
		if err != nil {
			t.Fatalf("%v\nstdout: %s\nstderr: %s", err, out, errs)
		}
		return doc
	}

	// Refused: an unsigned image. The result says what was checked.
	unsigned := updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 16 << 10, Sig: updatertest.Unsigned})
	m.publish(t, "image.bin", unsigned, 42, 10)
	doc := check(t, exitUnsigned, "--config", cfg, "--json")
	if doc.Error == nil || doc.Error.Code != cliout.CodeUnsigned || doc.Result == nil || doc.Result.Status != updater.StatusRefused || doc.Result.Sequence != 10 {
		t.Errorf("unsigned image: error %+v, result %+v", doc.Error, doc.Result)
	}

	// Installed.
	img := updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 16 << 10, Key: m.keys[0]})
	m.publish(t, "image.bin", img, 42, 11)
	doc = check(t, exitOK, "--json", "--config", cfg)
	if doc.Error != nil || doc.Result == nil || doc.Result.Status != updater.StatusInstalled || doc.Result.Release == nil || doc.Result.Release.Build != 42 {
		t.Errorf("install: error %+v, result %+v", doc.Error, doc.Result)
	}

	// Usage and configuration errors: a document without a result.
	doc = check(t, exitUsage, "--bogus", "--json")
	if doc.Error == nil || doc.Error.Code != cliout.CodeUsage || doc.Result != nil {
		t.Errorf("bad flag: %+v", doc)
	}
	bad := filepath.Join(m.dir, "bad.json")
	writeFile(t, bad, `{"mirrors":["http://x/"],"socks":"127.0.0.1:9050","treshold":2}`, 0o644)
	doc = check(t, exitUsage, "--json", "--config", bad)
	if doc.Error == nil || !strings.Contains(doc.Error.Message, "treshold") || doc.Result != nil {
		t.Errorf("bad config: %+v", doc)
	}
}

// TestCheckAsRootRefused: `verify check` as root, next to a daemon whose
// user owns the state directory (what the init script sets up), would
// take that directory over; it is refused with what to run instead, and
// nothing in the directory changes hands.
func TestCheckAsRootRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test runs as root (like the install boundary tests): run go test as root")
	}
	m := newMirror(t)
	img := updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 16 << 10, Key: m.keys[0]})
	m.publish(t, "image.bin", img, 42, 10)
	stateDir := filepath.Join(m.dir, "state")
	if err := os.Mkdir(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	chown(t, stateDir)
	cfg, sysLog := m.writeConfig(t, map[string]any{"state": filepath.Join(stateDir, "verify-state.json")})
	code, out, errs := runIn(t, m.dir, "check", "--config", cfg, "--json")
	if code != exitUsage || !strings.Contains(errs, "the daemon's user") || !strings.Contains(errs, "su -s /bin/sh torwrt -c") {
		t.Fatalf("exit %d, stderr %q: want %d and what to run instead", code, errs, exitUsage)
	}
	if doc, err := cliout.Check[*updater.Result]([]byte(out), cliout.Schema("verify", "check"), code); err != nil || doc.Error.Code != cliout.CodeConfig {
		t.Errorf("document %+v, %v: want error code %q", doc, err, cliout.CodeConfig)
	}
	if entries, _ := os.ReadDir(stateDir); len(entries) != 0 {
		t.Errorf("root wrote into the daemon's state directory: %v", entries)
	}
	if len(updatertest.Calls(t, sysLog)) != 0 {
		t.Error("sysupgrade ran")
	}
	// The same directory owned by root (no unprivileged daemon): root checks.
	if err := os.Chown(stateDir, 0, 0); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runIn(t, m.dir, "check", "--config", cfg); code != exitOK {
		t.Fatalf("root-owned state: exit %d\n%s\n%s", code, out, errs)
	}
}
