package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/updater/updatertest"
	"github.com/torwrt/torwrt/internal/usign"
)

// TestCheckConfigTrustedKeys: `verify daemon --check-config` (and the
// daemon and `verify check`) refuse a trusted key set that holds one
// Ed25519 public key under two fingerprints, and a threshold above the
// number of distinct keys, naming what is wrong. Anyone can write a key
// file with any fingerprint, so a doubled key would let one key holder's
// signature count twice toward the threshold.
func TestCheckConfigTrustedKeys(t *testing.T) {
	m := newMirror(t)
	k := m.keys[0]
	twin := *k
	twin.Fingerprint = usign.Fingerprint{0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee}

	doubled := filepath.Join(m.dir, "doubled-keys")
	updatertest.WriteKeyDir(t, doubled, k, &twin)
	withThird := filepath.Join(m.dir, "doubled-and-third")
	updatertest.WriteKeyDir(t, withThird, k, &twin, m.keys[1])

	tests := []struct {
		name      string
		keysDir   string
		threshold int
		want      []string // in stderr; none: accepted
	}{
		{name: "distinct keys", keysDir: filepath.Join(m.dir, "keys"), threshold: 2},
		{name: "one key twice, 2 of 2", keysDir: doubled, threshold: 2, want: []string{
			"same Ed25519 public key under two fingerprints", k.Fingerprint.String(), twin.Fingerprint.String(),
			"threshold 2 is above the 1 distinct trusted keys"}},
		{name: "one key twice, 1 of 2", keysDir: doubled, threshold: 1, want: []string{
			"same Ed25519 public key under two fingerprints"}},
		{name: "one key twice among 3, 3 of 3", keysDir: withThird, threshold: 3, want: []string{
			"same Ed25519 public key under two fingerprints", "threshold 3 is above the 2 distinct trusted keys"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, sysLog := m.writeConfig(t, map[string]any{"keys_dir": tc.keysDir, "threshold": tc.threshold})
			for _, argv := range [][]string{
				{"daemon", "--config", cfg, "--check-config"},
				{"check", "--once", "--config", cfg},
			} {
				if tc.want == nil && argv[0] == "check" {
					continue // nothing published: a real check, not this test's subject
				}
				code, out, errs := runIn(t, m.dir, argv...)
				if tc.want == nil {
					if code != exitOK || !strings.Contains(out, "config "+cfg+" OK") {
						t.Fatalf("%v: exit %d\nstdout: %s\nstderr: %s", argv, code, out, errs)
					}
					continue
				}
				if code != exitUsage {
					t.Errorf("%v: exit %d, want %d (configuration)\nstdout: %s\nstderr: %s", argv, code, exitUsage, out, errs)
				}
				if strings.Contains(out, " OK") {
					t.Errorf("%v: reported OK:\n%s", argv, out)
				}
				for _, w := range tc.want {
					if !strings.Contains(errs, w) {
						t.Errorf("%v: stderr lacks %q:\n%s", argv, w, errs)
					}
				}
			}
			if calls := updatertest.Calls(t, sysLog); len(calls) != 0 {
				t.Errorf("sysupgrade ran: %v", calls)
			}
		})
	}
}
