package profile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/torwrt/torwrt"
)

func embeddedLayer(t *testing.T) Layer {
	t.Helper()
	sub, err := fs.Sub(torwrt.Profiles, "profiles")
	if err != nil {
		t.Fatal(err)
	}
	return EmbeddedLayer(sub)
}

// The profiles imgbuild carries are the ones in the tree, byte for byte.
func TestEmbeddedProfilesAreTheShippedOnes(t *testing.T) {
	onDisk, err := List(repoProfiles(t))
	if err != nil {
		t.Fatal(err)
	}
	emb := Path{embeddedLayer(t)}
	ids, err := emb.List()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, onDisk) || len(ids) == 0 {
		t.Fatalf("embedded profiles %v, tree %v", ids, onDisk)
	}
	for _, id := range ids {
		e, err := emb.Load(id)
		if err != nil {
			t.Fatal(err)
		}
		d, err := Load(repoProfiles(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if e.SHA256 != d.SHA256 || e.Dir != "" || e.LockPath() != "" || e.Origin != "embedded in imgbuild (profiles/"+id+")" {
			t.Errorf("%s: embedded sha256 %s dir %q lock path %q origin %q; tree sha256 %s", id, e.SHA256, e.Dir, e.LockPath(), e.Origin, d.SHA256)
		}
		_, lerr := e.LoadLock()
		_, derr := ReadLock(d.LockPath(), d)
		if (lerr == nil) != (derr == nil) {
			t.Errorf("%s: embedded lock: %v; tree lock: %v", id, lerr, derr)
		}
		if lerr != nil && (!errors.Is(lerr, ErrNoLock) || !strings.Contains(lerr.Error(), "embedded:profiles/"+id+"/lock.json")) {
			t.Errorf("%s: embedded lock error %v", id, lerr)
		}
	}
}

// A vendor directory adds profiles and overrides embedded ones by id.
func TestVendorProfileOverridesEmbedded(t *testing.T) {
	emb := embeddedLayer(t)
	orig, err := fs.ReadFile(torwrt.Profiles, "profiles/gl-ar150/profile.yaml")
	if err != nil {
		t.Fatal(err)
	}
	vendor := t.TempDir()
	write := func(id string, data []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(vendor, id), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(vendor, id, "profile.yaml"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mine := bytes.Replace(orig, []byte("\ntitle: "), []byte("\ntitle: ACME "), 1)
	write("gl-ar150", mine)
	write("acme-box", bytes.Replace(mine, []byte("id: gl-ar150"), []byte("id: acme-box"), 1))
	// A directory without profile.yaml does not hide the embedded profile.
	if err := os.MkdirAll(filepath.Join(vendor, "gl-mt300a"), 0o755); err != nil {
		t.Fatal(err)
	}
	pp := Path{DirLayer(vendor), emb}

	p, err := pp.Load("gl-ar150")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p.Title, "ACME ") || p.Dir != filepath.Join(vendor, "gl-ar150") || p.Origin != p.Dir {
		t.Fatalf("got title %q dir %q origin %q: the vendor's gl-ar150 did not win", p.Title, p.Dir, p.Origin)
	}
	if _, err := p.LoadLock(); !errors.Is(err, ErrNoLock) || !strings.Contains(err.Error(), filepath.Join(vendor, "gl-ar150", "lock.json")) {
		t.Fatalf("vendor profile's lock: %v", err)
	}
	if p, err := pp.Load("gl-mt300a"); err != nil || p.Dir != "" || !strings.HasPrefix(p.Origin, Embedded) {
		t.Fatalf("gl-mt300a: %+v, %v: want the embedded one", p, err)
	}
	// The same path without the vendor layer gives the embedded gl-ar150.
	if p, err := (Path{emb}).Load("gl-ar150"); err != nil || strings.HasPrefix(p.Title, "ACME ") {
		t.Fatalf("embedded gl-ar150: %v, %v", p, err)
	}
	ids, err := pp.List()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(ids, "acme-box") || !slices.Contains(ids, "gl-mt300a") || !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != len(ids) {
		t.Fatalf("List = %v: want vendor and embedded ids, sorted, once each", ids)
	}

	// A vendor profile whose id is not its directory's is an error, not
	// a fallback to the embedded one.
	write("gl-mt300a", bytes.Replace(orig, []byte("id: gl-ar150"), []byte("id: gl-ar151"), 1))
	if _, err := pp.Load("gl-mt300a"); err == nil || !strings.Contains(err.Error(), filepath.Join(vendor, "gl-mt300a", "profile.yaml")) {
		t.Fatalf("mismatched id: %v", err)
	}
	_, err = pp.Load("no-such")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), filepath.Join(vendor, "no-such", "profile.yaml")) || !strings.Contains(err.Error(), "embedded:profiles/no-such/profile.yaml") || !strings.Contains(err.Error(), "acme-box") {
		t.Fatalf("unknown profile: %v", err)
	}
	// A vendor directory that does not exist is an empty layer.
	if ids, err := (Path{DirLayer(filepath.Join(vendor, "absent")), emb}).List(); err != nil || len(ids) == 0 {
		t.Fatalf("missing vendor dir: %v, %v", ids, err)
	}
}
