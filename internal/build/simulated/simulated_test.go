package simulated

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/profile"
	"github.com/torwrt/torwrt/internal/testfixture"
)

// root is the torwrt checkout, for its profiles and ibsim-tool's source.
const root = "../../.."

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// A second Start with the same inputs replays each feed, image
// and lock from the cache: it runs no container (an unknown engine fails
// the first lock it has to resolve) and gives the same locks. A replayed
// lock that no longer checks is resolved again, and NoStepCache makes
// everything again, with the same result.
func TestStartReplaysCache(t *testing.T) {
	testfixture.RequireBuildTools(t)
	var ps []*profile.Profile
	for _, id := range []string{"gl-ar150", "gl-ar150-24.10"} { // apk and opkg
		p, err := profile.Load(filepath.Join(root, "profiles"), id)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	cache := t.TempDir()
	start := func(engine string, noCache bool) (*Simulation, error) {
		sim, err := Start(t.Context(), Options{Root: root, Profiles: ps, CacheDir: cache, Engine: engine,
			Progress: testWriter{t}, Jobs: 2, NoStepCache: noCache})
		if err == nil {
			t.Cleanup(sim.Stop)
		}
		return sim, err
	}
	locks := func(sim *Simulation) map[string]string {
		out := map[string]string{}
		for id, l := range sim.Locks {
			b, err := l.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			out[id] = string(b)
		}
		return out
	}
	cold, err := start("podman", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if got := cold.Cached[p.ID]; len(got) != 0 {
			t.Errorf("cold start replayed %v for %s from an empty cache", got, p.ID)
		}
	}
	warm, err := start("no-such-engine", false)
	if err != nil {
		t.Fatalf("warm start ran a container (or failed otherwise): %v", err)
	}
	for _, p := range ps {
		if got, want := warm.Cached[p.ID], []string{"feed", "image", "lock"}; !slices.Equal(got, want) {
			t.Errorf("warm start replayed %v for %s, want %v", got, p.ID, want)
		}
		if l := warm.Locks[p.ID]; l.Image.Ref != cold.Locks[p.ID].Image.Ref {
			t.Errorf("%s: warm image %s, cold %s", p.ID, l.Image.Ref, cold.Locks[p.ID].Image.Ref)
		}
	}
	if !maps.Equal(locks(cold), locks(warm)) {
		t.Errorf("replayed locks differ from the resolved ones:\n%v\n%v", locks(cold), locks(warm))
	}
	if !slices.Equal(cold.PackageDirs, warm.PackageDirs) {
		t.Errorf("package dirs %v, then %v", cold.PackageDirs, warm.PackageDirs)
	}

	// NoStepCache resolves the locks again: with no engine it must fail.
	if _, err := start("no-such-engine", true); err == nil || !strings.Contains(err.Error(), "no-such-engine") {
		t.Errorf("NoStepCache with an unknown engine: %v, want the engine's error (the locks resolved again)", err)
	}
	fresh, err := start("podman", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if got := fresh.Cached[p.ID]; len(got) != 0 {
			t.Errorf("NoStepCache replayed %v for %s", got, p.ID)
		}
	}
	if !maps.Equal(locks(cold), locks(fresh)) {
		t.Errorf("NoStepCache locks differ from the cold ones")
	}

	// A stored lock that no longer passes Lock.Check (here: another
	// profile hash) is not replayed.
	entries, err := filepath.Glob(filepath.Join(cache, "steps", simLockStep, "*", "output.json"))
	if err != nil || len(entries) != len(ps) {
		t.Fatalf("lock cache entries %v (%v), want %d", entries, err, len(ps))
	}
	for _, e := range entries {
		b, err := os.ReadFile(e)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			b = bytes.ReplaceAll(b, []byte(p.SHA256), []byte(strings.Repeat("0", 64)))
		}
		if err := os.WriteFile(e, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := start("no-such-engine", false); err == nil || !strings.Contains(err.Error(), "no-such-engine") {
		t.Errorf("damaged lock entries: %v, want the engine's error (the locks resolved again)", err)
	}
}
