package profile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Layer is one place profiles are looked up in: a tree of
// <id>/profile.yaml, each with its lock.json beside it.
type Layer struct {
	// Dir is the layer's host directory; empty for an embedded layer.
	Dir string
	// Name says where the layer is, in messages: Dir, or "embedded in
	// imgbuild".
	Name string
	fsys fs.FS
}

// Embedded is the Name of the layer imgbuild carries inside itself.
const Embedded = "embedded in imgbuild"

// DirLayer is a directory of profiles on disk, e.g. ./profiles. A
// directory that does not exist is an empty layer.
func DirLayer(dir string) Layer { return Layer{Dir: dir, Name: dir, fsys: os.DirFS(dir)} }

// EmbeddedLayer is the profiles compiled into imgbuild: fsys holds
// <id>/profile.yaml (torwrt.Profiles below "profiles").
func EmbeddedLayer(fsys fs.FS) Layer { return Layer{Name: Embedded, fsys: fsys} }

// file names a file of the layer in messages: a host path, or
// "embedded:profiles/<id>/profile.yaml".
func (l Layer) file(id, name string) string {
	if l.Dir != "" {
		return filepath.Join(l.Dir, id, name)
	}
	return "embedded:profiles/" + id + "/" + name
}

// Path is the profile lookup order: the first layer that holds a profile
// wins, so a vendor's directory comes before the embedded profiles and
// overrides them id by id.
type Path []Layer

// Load finds profile id in the first layer that has <id>/profile.yaml.
// A variant's device facts are resolved against its primary (device:),
// looked up along the same path.
func (pp Path) Load(id string) (*Profile, error) {
	p, err := pp.loadOne(id)
	if err != nil {
		return nil, err
	}
	if err := p.resolveDevice(pp.loadOne); err != nil {
		return nil, err
	}
	return p, nil
}

// loadOne is Load without resolving a variant's device facts.
func (pp Path) loadOne(id string) (*Profile, error) {
	if !idRE.MatchString(id) {
		return nil, fmt.Errorf("%w %q: ids are lowercase letters, digits, dashes and dots (gl-ar150-24.10)", ErrNotFound, id)
	}
	var looked []string
	for _, l := range pp {
		data, err := fs.ReadFile(l.fsys, path.Join(id, "profile.yaml"))
		if errors.Is(err, fs.ErrNotExist) {
			looked = append(looked, l.file(id, "profile.yaml"))
			continue
		}
		file := l.file(id, "profile.yaml")
		if err != nil {
			return nil, fmt.Errorf("reading profile %s: %w", file, err)
		}
		p, err := Parse(file, data)
		if err != nil {
			return nil, err
		}
		if p.ID != id {
			return nil, &Error{File: file, Field: "id", Msg: fmt.Sprintf("%q does not match its directory %q", p.ID, id)}
		}
		if l.Dir != "" {
			p.Dir = filepath.Join(l.Dir, id)
			p.Origin = p.Dir
		} else {
			p.Origin = Embedded + " (profiles/" + id + ")"
			p.fsys = l.fsys
		}
		return p, nil
	}
	known, _ := pp.List()
	return nil, fmt.Errorf("%w %q (no %s); known profiles: %s", ErrNotFound, id, strings.Join(looked, ", no "), strings.Join(known, ", "))
}

// List returns the ids of the profiles in all layers, sorted, each once.
func (pp Path) List() ([]string, error) {
	var ids []string
	for _, l := range pp {
		entries, err := fs.ReadDir(l.fsys, ".")
		if errors.Is(err, fs.ErrNotExist) && l.Dir != "" {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("listing profiles in %s: %w", l.Name, err)
		}
		for _, e := range entries {
			if _, err := fs.Stat(l.fsys, path.Join(e.Name(), "profile.yaml")); err == nil && e.IsDir() && !slices.Contains(ids, e.Name()) {
				ids = append(ids, e.Name())
			}
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// LoadLock reads and validates p's lock.json from where p came from.
func (p *Profile) LoadLock() (*Lock, error) {
	if p.fsys == nil {
		return ReadLock(p.LockPath(), p)
	}
	data, err := fs.ReadFile(p.fsys, path.Join(p.ID, "lock.json"))
	return decodeLock("embedded:profiles/"+p.ID+"/lock.json", data, err, p)
}
