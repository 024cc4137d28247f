package overlay

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// WriteTar writes the tree under dir to w as an uncompressed ustar archive
// that depends only on the tree's paths, modes and contents: entries in
// lexical order, owner root:root with empty names, every time set to
// epoch, no extended headers. Only regular files and directories are
// allowed; a symlink or device node is an error, since Render never makes
// one and anything else in the tree did not come from Render.
func WriteTar(ctx context.Context, w io.Writer, dir string, epoch int64) error {
	if epoch < 0 || epoch > maxEpoch {
		return fmt.Errorf("overlay: tar: epoch %d out of range", epoch)
	}
	mtime := time.Unix(epoch, 0)
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		name := filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr := &tar.Header{
			Name:    name,
			Mode:    int64(info.Mode().Perm()),
			ModTime: mtime,
			Format:  tar.FormatUSTAR,
		}
		switch {
		case info.Mode().IsRegular():
			hdr.Typeflag = tar.TypeReg
			hdr.Size = info.Size()
		case info.IsDir():
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		default:
			return fmt.Errorf("%s is a %v, want a regular file or directory", name, info.Mode().Type())
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		n, err := io.Copy(tw, f)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if n != hdr.Size {
			return fmt.Errorf("%s changed size while archived", name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("overlay: tar of %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("overlay: tar of %s: %w", dir, err)
	}
	return nil
}
