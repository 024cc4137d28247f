package updater

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCorruptStateKeepsFloors damages a state file the ways flash errors
// and crafted files do; the state that replaces it must keep the replay
// and rollback floors the file still shows (issue: a one-character change
// used to reset them to zero).
func TestCorruptStateKeepsFloors(t *testing.T) {
	const good = `{"manifest":{"sequence":42,"issued_at":"2025-03-01T12:00:00Z"},"floor":1200,"installed_build":1234,"installed_version":"1.2.34","seed":"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"}`
	for name, damaged := range map[string]string{
		"unknown field":      strings.Replace(good, `"floor"`, `"extra":1,"floor"`, 1),
		"seed one digit off": strings.Replace(good, `"seed":"00`, `"seed":"0`, 1),
		"trailing garbage":   good + "\x00garbage",
		"second object":      good + "{}",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.json")
			if err := os.WriteFile(path, []byte(damaged), 0o600); err != nil {
				t.Fatal(err)
			}
			st, note, err := LoadState(path)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(note, "corrupt") || !strings.Contains(note, "floor 1200") {
				t.Errorf("note %q", note)
			}
			if st.Floor != 1200 || st.Manifest.Sequence != 42 || st.InstalledBuild != 1234 {
				t.Fatalf("floors after corruption: floor %d, sequence %d, installed %d; want 1200, 42, 1234", st.Floor, st.Manifest.Sequence, st.InstalledBuild)
			}
			if !validSeed(st.Seed) {
				t.Fatalf("seed %q", st.Seed)
			}
			// What was saved in its place loads cleanly with the same floors.
			again, note, err := LoadState(path)
			if err != nil || note != "" || again.Floor != 1200 || again.Manifest.Sequence != 42 {
				t.Fatalf("reload: %+v %q %v", again, note, err)
			}
		})
	}
	// Nothing readable: nothing to keep, and the log says so.
	path := filepath.Join(t.TempDir(), "state.json")
	os.WriteFile(path, []byte("\xff\xfe not json"), 0o600)
	if _, note, err := LoadState(path); err != nil || !strings.Contains(note, "unreadable") {
		t.Fatalf("unreadable state: %q %v", note, err)
	}
}
