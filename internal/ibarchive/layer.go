package ibarchive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// LayerOptions describe the layer tar WriteLayerFile makes of a tree.
type LayerOptions struct {
	Epoch  int64  // every mtime; SOURCE_DATE_EPOCH
	Prefix string // directory inside the layer that receives the tree, e.g. "builder"
}

func writeLayer(ctx context.Context, w io.Writer, dir string, o LayerOptions) error {
	tw := tar.NewWriter(w)
	mtime := time.Unix(o.Epoch, 0)
	if o.Prefix != "" {
		// Parent directories of the prefix, so the layer is complete.
		var acc string
		for _, part := range strings.Split(o.Prefix, "/") {
			acc = path.Join(acc, part)
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: acc + "/", Mode: 0755, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
				return err
			}
		}
	}
	links := map[[2]uint64]string{} // device+inode -> first name, for hard links
	buf := make([]byte, 256<<10)
	err := walkSorted(dir, "", func(rel string, fi fs.FileInfo) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := rel
		if o.Prefix != "" {
			name = path.Join(o.Prefix, rel)
		}
		h := &tar.Header{Name: name, Mode: int64(fi.Mode().Perm()), ModTime: mtime, Format: tar.FormatPAX}
		full := filepath.Join(dir, filepath.FromSlash(rel))
		switch {
		case fi.IsDir():
			h.Typeflag, h.Name = tar.TypeDir, name+"/"
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(full)
			if err != nil {
				return err
			}
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, target, 0777
		case fi.Mode().IsRegular():
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
				key := [2]uint64{uint64(st.Dev), st.Ino}
				if first, ok := links[key]; ok {
					h.Typeflag, h.Linkname = tar.TypeLink, first
					return tw.WriteHeader(h)
				}
				links[key] = name
			}
			h.Typeflag, h.Size = tar.TypeReg, fi.Size()
		default:
			return fmt.Errorf("%w: %s (%v)", ErrSpecialFile, rel, fi.Mode().Type())
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag != tar.TypeReg {
			return nil
		}
		f, err := os.Open(full)
		if err != nil {
			return err
		}
		defer f.Close()
		n, err := io.CopyBuffer(tw, io.LimitReader(f, h.Size), buf)
		if err == nil && n != h.Size {
			err = fmt.Errorf("%s changed size while packing", rel)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("ibarchive: packing %s: %w", dir, err)
	}
	return tw.Close()
}

// walkSorted calls fn for every entry below dir, depth first with each
// directory's names in byte order, so the layer is the same whatever order
// the file system lists directories in.
func walkSorted(dir, rel string, fn func(rel string, fi fs.FileInfo) error) error {
	ents, err := os.ReadDir(filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil {
		return err
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	for _, n := range names {
		r := path.Join(rel, n)
		fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(r)))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%s vanished while packing", r)
			}
			return err
		}
		if err := fn(r, fi); err != nil {
			return err
		}
		if fi.IsDir() {
			if err := walkSorted(dir, r, fn); err != nil {
				return err
			}
		}
	}
	return nil
}
