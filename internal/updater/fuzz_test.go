package updater

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/torwrt/torwrt/internal/manifest"
)

// fuzzStates are valid states as SaveState writes them.
func fuzzStates(tb testing.TB) [][]byte {
	tb.Helper()
	seed := "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	states := []*State{
		{Seed: seed},
		{
			Manifest: manifest.State{Sequence: 42, IssuedAt: at, Digest: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
			Floor:    1200, InstalledBuild: 1234, InstalledVersion: "1.2.34", Seed: seed,
			Pending:   &Pending{Build: 1300, Version: "1.3.0", FirstSeen: at, Until: at.Add(36 * time.Hour)},
			LastCheck: at, LastResult: StatusDeferred, LastError: "", LastInstall: at.Add(-time.Hour),
		},
		{Floor: ^uint64(0), Manifest: manifest.State{Sequence: ^uint64(0)}, Seed: seed, LastError: "line\nbreak \u2028 \x00"},
	}
	var out [][]byte
	for _, st := range states {
		path := filepath.Join(tb.TempDir(), "state.json")
		if err := SaveState(path, st); err != nil {
			tb.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// FuzzLoadState: the state file on the overlay is whatever a power cut,
// a worn flash or a user left there. LoadState never panics and never
// fails on its content: it either loads exactly what the file says (and
// leaves the file alone), or calls it corrupt, keeps the bytes in
// path+".corrupt" and starts a fresh state with a new seed. What it loads
// saves and loads again unchanged, and ReadState (the status page) never
// reports a different floor or replay state for a file LoadState keeps.
func FuzzLoadState(f *testing.F) {
	for _, b := range fuzzStates(f) {
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(b[:len(b)-2])
		f.Add(append(bytes.Clone(b), "{}"...))
		f.Add(bytes.Replace(b, []byte(`"floor"`), []byte(`"Floor"`), 1))
		f.Add(bytes.Replace(b, []byte(`"floor": `), []byte(`"floor": -`), 1))
		f.Add(bytes.Replace(b, []byte(`"seed": "00`), []byte(`"seed": "0`), 1))
		f.Add(bytes.Replace(b, []byte(`"seed"`), []byte(`"extra": 1, "seed"`), 1))
	}
	f.Add([]byte(`{"floor":5,"floor":1,"seed":"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"}`))
	f.Add([]byte(`null`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "state.json")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		shown, rerr := ReadState(path)
		st, note, err := LoadState(path)
		if err != nil {
			t.Fatalf("LoadState failed on a file's content: %v", err)
		}
		if !validSeed(st.Seed) {
			t.Fatalf("loaded seed %q", st.Seed)
		}
		if note != "" {
			// Corrupt: moved aside intact, replaced by a fresh state.
			kept, err := os.ReadFile(path + ".corrupt")
			if err != nil || !bytes.Equal(kept, b) {
				t.Fatalf("corrupt state not kept aside (%v)", err)
			}
			// ... replaced by a fresh state that keeps every floor the
			// damaged file still shows: damage never lowers a floor.
			if st.Pending != nil || st.LastResult != "" {
				t.Fatalf("fresh state is not fresh: %+v", st)
			}
			if rerr == nil && (st.Floor < shown.Floor || st.Manifest.Sequence < shown.Manifest.Sequence || st.InstalledBuild < shown.InstalledBuild) {
				t.Fatalf("a corrupt state lowered a floor: the file shows floor %d, sequence %d, build %d; loaded %d, %d, %d",
					shown.Floor, shown.Manifest.Sequence, shown.InstalledBuild, st.Floor, st.Manifest.Sequence, st.InstalledBuild)
			}
			return
		}
		if len(b) > maxStateSize {
			t.Fatalf("loaded a %d-byte state", len(b))
		}
		if on, _ := os.ReadFile(path); !bytes.Equal(on, b) {
			t.Fatal("LoadState rewrote a state it accepted")
		}
		if _, err := os.Stat(path + ".corrupt"); err == nil {
			t.Fatal("accepted state moved aside")
		}
		if rerr == nil && (shown.Floor != st.Floor || shown.Manifest != st.Manifest || shown.InstalledBuild != st.InstalledBuild) {
			t.Fatalf("ReadState shows floor %d, sequence %d, build %d; LoadState uses %d, %d, %d",
				shown.Floor, shown.Manifest.Sequence, shown.InstalledBuild, st.Floor, st.Manifest.Sequence, st.InstalledBuild)
		}
		// What the updater loads it can save, and it reloads the same.
		want, err := json.Marshal(st)
		if err != nil {
			t.Fatalf("loaded state does not encode: %v", err)
		}
		if err := SaveState(path, st); err != nil {
			t.Fatalf("SaveState of a loaded state: %v", err)
		}
		again, note, err := LoadState(path)
		if err != nil || note != "" {
			t.Fatalf("saved state does not reload: %v %s", err, note)
		}
		if got, _ := json.Marshal(again); !bytes.Equal(got, want) {
			t.Fatalf("state changed in a save and load:\n%s\n%s", want, got)
		}
	})
}
