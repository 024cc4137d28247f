package torwrt

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"runtime"
	"slices"
	"strings"
	"testing"
)

const modPath = "github.com/torwrt/torwrt"

// listed is what `go list -deps` says about one package of this module.
type listed struct {
	ImportPath string
	Dir        string
	EmbedFiles []string
	Module     *struct{ Main bool }
}

// moduleDeps lists the packages of this module that pkg needs on
// GOOS/GOARCH, as module-relative directories.
func moduleDeps(t *testing.T, goarch, pkg string) map[string]listed {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Dir,EmbedFiles,Module", pkg)
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+goarch, "GOMIPS=softfloat", "CGO_ENABLED=0", "GOFLAGS=-mod=readonly", "GOTOOLCHAIN=local")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s (GOARCH=%s): %v\n%s", pkg, goarch, err, stderr.String())
	}
	deps := map[string]listed{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p listed
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		if p.Module == nil || !p.Module.Main {
			continue
		}
		rel, ok := strings.CutPrefix(p.ImportPath, modPath+"/")
		if !ok {
			t.Fatalf("%s imports the module root package %s; the root holds only embedded files", pkg, p.ImportPath)
		}
		deps[rel] = p
	}
	if len(deps) == 0 {
		t.Fatalf("go list -deps %s found no package of %s", pkg, modPath)
	}
	return deps
}

// TestSourceHoldsEveryPackage keeps Source's //go:embed list equal to the
// packages of this module that the daemon (on every GOARCH a profile uses)
// and ibsim-tool (on this host) import: a missing one would break builds
// outside a checkout, an extra one is dead weight.
func TestSourceHoldsEveryPackage(t *testing.T) {
	need := map[string]listed{}
	builds := [][2]string{{"mips", "./cmd/verify"}, {"mipsle", "./cmd/verify"}, {runtime.GOARCH, "./internal/ibsim/cmd/ibsim-tool"}}
	for _, b := range builds {
		for dir, p := range moduleDeps(t, b[0], b[1]) {
			need[dir] = p
		}
	}
	// Every GOARCH a shipped profile uses is among the ones listed.
	profiles, err := fs.Glob(Profiles, "profiles/*/profile.yaml")
	if err != nil || len(profiles) == 0 {
		t.Fatalf("no embedded profiles: %v", err)
	}
	for _, p := range profiles {
		data, _ := Profiles.ReadFile(p)
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "goarch:"); ok {
				if a := strings.TrimSpace(v); a != "mips" && a != "mipsle" {
					t.Errorf("%s: goarch %s: add it to this test's builds", p, a)
				}
			}
		}
	}

	have := map[string]bool{}
	err = fs.WalkDir(Source, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") {
			have[path.Dir(p)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range slices.Sorted(maps.Keys(need)) {
		if !have[dir] {
			t.Errorf("Source lacks %s, which the daemon or ibsim-tool imports: add //go:embed %s/*.go to embed.go", dir, dir)
			continue
		}
		if e := need[dir].EmbedFiles; len(e) > 0 {
			t.Errorf("%s embeds %v: add those files to Source in embed.go and extend this check", dir, e)
		}
		// Every .go file of the package is in Source, byte for byte.
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") {
				continue
			}
			want, err := os.ReadFile(path.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Source.ReadFile(path.Join(dir, e.Name()))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("Source's %s/%s differs from the file (%v)", dir, e.Name(), err)
			}
		}
	}
	for _, dir := range slices.Sorted(maps.Keys(have)) {
		if _, ok := need[dir]; !ok {
			t.Errorf("Source holds %s, which neither the daemon nor ibsim-tool imports: drop it from embed.go", dir)
		}
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		want, _ := os.ReadFile(f)
		got, err := Source.ReadFile(f)
		if err != nil || !bytes.Equal(got, want) || len(want) == 0 {
			t.Errorf("Source's %s differs from the module's (%v)", f, err)
		}
	}
}

// TestBrandsHoldOnlyTheDefault: the example brands (brands/acme) stay in
// the tree; imgbuild carries only the default one.
func TestBrandsHoldOnlyTheDefault(t *testing.T) {
	entries, err := fs.ReadDir(Brands, "brands")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range entries {
		ids = append(ids, e.Name())
	}
	if !slices.Equal(ids, []string{DefaultBrand}) {
		t.Fatalf("embedded brands %v, want only %s", ids, DefaultBrand)
	}
	if _, err := Brands.ReadFile("brands/" + DefaultBrand + "/brand.yaml"); err != nil {
		t.Fatal(err)
	}
}
