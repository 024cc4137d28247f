// Package overlay renders the router's files (the templates in the
// repository's overlay/ directory) for one device and brand into a
// normalized tree, the FILES= directory of the ImageBuilder.
//
// The tree is the same bytes on every run, machine and umask: files are
// written in sorted order with explicit modes, every file and directory
// gets SourceDateEpoch as its time, owners are root where the process may
// set them, and WriteTar archives it with root:root and fixed times no
// matter who owns it on disk.
//
// Render refuses anything that would make a router less safe than the
// templates promise: an input that does not validate, a configuration file
// that does not lint, or a file that carries a secret (every secret is made
// on the device at first boot; see docs/threat-model.md).
package overlay

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/torwrt/torwrt/internal/routerconf"
	"github.com/torwrt/torwrt/internal/uci"
)

// Output describes a rendered tree.
type Output struct {
	// Files are the regular files, sorted by path. Directories are
	// implied and always have mode 0755.
	Files []File `json:"files"`
	// TreeSHA256 is the SHA-256 of Listing(): it changes when any path,
	// mode or content changes.
	TreeSHA256 string `json:"tree_sha256"`
}

// File is one rendered file.
type File struct {
	// Path is absolute on the router, e.g. "/etc/config/network".
	Path   string `json:"path"`
	Mode   uint32 `json:"mode"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Listing is the tree as text, one line per file:
// "<mode> <uid> <gid> <size> <sha256> <path>". Owners are always 0: the
// ImageBuilder makes the root filesystem root-owned.
func (o Output) Listing() []byte {
	var b bytes.Buffer
	for _, f := range o.Files {
		fmt.Fprintf(&b, "%04o 0 0 %d %s %s\n", f.Mode, f.Size, f.SHA256, f.Path)
	}
	return b.Bytes()
}

// DirMode is the mode of every directory in the tree.
const DirMode = 0o755

type renderedFile struct {
	path string
	mode uint32
	data []byte
}

// Render validates in, renders the templates and writes the tree to dest,
// which must not exist or be an empty directory.
func Render(ctx context.Context, in Input, dest string) (Output, error) {
	files, err := render(ctx, in)
	if err != nil {
		return Output{}, err
	}
	if err := prepareDest(dest); err != nil {
		return Output{}, err
	}
	if err := writeTree(ctx, dest, files, time.Unix(in.SourceDateEpoch, 0)); err != nil {
		return Output{}, err
	}
	return describe(files), nil
}

// render renders the tree in memory, sorted by path.
func render(ctx context.Context, in Input) ([]renderedFile, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	entries, err := loadManifest()
	if err != nil {
		return nil, err
	}
	data := newTmplData(in)
	// The daemon refuses a config that does not validate; so does the
	// build, before anything is flashed.
	if err := data.Daemon.Validate(); err != nil {
		return nil, fmt.Errorf("overlay: rendered %s does not validate: %w", routerconf.Path, err)
	}
	var files []renderedFile
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if e.condition != "" && !conditions[e.condition](in) {
			continue
		}
		b, err := execTemplate(e.path, data)
		if err != nil {
			return nil, err
		}
		files = append(files, renderedFile{path: e.path, mode: e.mode, data: b})
	}
	for _, k := range in.ReleaseKeys {
		// Stock tools look in /etc/opkg/keys; torwrt's own checks use
		// KeysDir, which no package writes to.
		for _, dir := range []string{"/etc/opkg/keys", KeysDir} {
			files = append(files, renderedFile{path: dir + "/" + k.Fingerprint, mode: 0o644, data: bytes.Clone(k.PublicKey)})
		}
	}
	if p := in.Brand.LogoPath(); p != "" {
		files = append(files, renderedFile{path: p, mode: 0o644, data: bytes.Clone(in.Brand.Logo)})
	}
	for _, f := range in.ExtraFiles {
		files = append(files, renderedFile{path: f.Path, mode: f.Mode, data: bytes.Clone(f.Data)})
	}
	slices.SortFunc(files, func(a, b renderedFile) int { return strings.Compare(a.path, b.path) })
	if err := checkPaths(files); err != nil {
		return nil, err
	}
	for _, f := range files {
		if err := lintConfig(f); err != nil {
			return nil, err
		}
		if err := checkNoSecrets(f); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// checkPaths rejects two files at one path and a file where another
// needs a directory.
func checkPaths(files []renderedFile) error {
	byPath := map[string]bool{}
	for _, f := range files {
		if byPath[f.path] {
			return fmt.Errorf("overlay: %s is produced twice (an extra file or release key collides with a template)", f.path)
		}
		byPath[f.path] = true
	}
	for _, f := range files {
		for dir := path.Dir(f.path); dir != "/"; dir = path.Dir(dir) {
			if byPath[dir] {
				return fmt.Errorf("overlay: %s is a file but %s needs it to be a directory", dir, f.path)
			}
		}
	}
	return nil
}

// lintConfig parses every UCI file the tree ships, so a template bug or an
// unexpected value is caught at build time rather than on the router.
func lintConfig(f renderedFile) error {
	dir, name := path.Split(f.path)
	if dir != "/etc/config/" {
		return nil
	}
	if _, err := uci.ParseAndLint(f.path, name, f.data); err != nil {
		return fmt.Errorf("overlay: rendered %s does not lint: %w", f.path, err)
	}
	return nil
}

func describe(files []renderedFile) Output {
	var out Output
	for _, f := range files {
		sum := sha256.Sum256(f.data)
		out.Files = append(out.Files, File{Path: f.path, Mode: f.mode, Size: int64(len(f.data)), SHA256: hex.EncodeToString(sum[:])})
	}
	sum := sha256.Sum256(out.Listing())
	out.TreeSHA256 = hex.EncodeToString(sum[:])
	return out
}

func prepareDest(dest string) error {
	ents, err := os.ReadDir(dest)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Mkdir(dest, DirMode); err != nil {
			return fmt.Errorf("overlay: creating %s: %w", dest, err)
		}
	case err != nil:
		return fmt.Errorf("overlay: reading %s: %w", dest, err)
	case len(ents) > 0:
		return fmt.Errorf("overlay: %s is not empty; render into a new directory so no stale file survives", dest)
	}
	return nil
}

// writeTree writes files under dest with explicit modes (the umask does
// not matter), then stamps every file and directory with mtime.
func writeTree(ctx context.Context, dest string, files []renderedFile, mtime time.Time) error {
	dirs := map[string]bool{".": true}
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		rel := strings.TrimPrefix(f.path, "/")
		for d := path.Dir(rel); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
		target := filepath.Join(dest, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(target), DirMode); err != nil {
			return fmt.Errorf("overlay: creating directory for %s: %w", f.path, err)
		}
		if err := writeFile(target, f.data, fs.FileMode(f.mode)); err != nil {
			return fmt.Errorf("overlay: writing %s: %w", f.path, err)
		}
	}
	// Stamp only after everything exists: creating an entry changes its
	// directory's mtime, while chmod and utimes change nothing around them.
	order := make([]string, 0, len(dirs))
	for d := range dirs {
		order = append(order, d)
	}
	slices.Sort(order)
	root := os.Geteuid() == 0
	for _, f := range files {
		target := filepath.Join(dest, filepath.FromSlash(strings.TrimPrefix(f.path, "/")))
		if err := normalize(target, fs.FileMode(f.mode), mtime, root); err != nil {
			return fmt.Errorf("overlay: %s: %w", f.path, err)
		}
	}
	for _, d := range order {
		if err := normalize(filepath.Join(dest, filepath.FromSlash(d)), DirMode, mtime, root); err != nil {
			return fmt.Errorf("overlay: directory %s: %w", d, err)
		}
	}
	return nil
}

func writeFile(target string, data []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Chmod(target, mode)
}

func normalize(target string, mode fs.FileMode, mtime time.Time, root bool) error {
	if root {
		if err := os.Lchown(target, 0, 0); err != nil {
			return err
		}
	}
	if err := os.Chmod(target, mode); err != nil {
		return err
	}
	return os.Chtimes(target, mtime, mtime)
}
