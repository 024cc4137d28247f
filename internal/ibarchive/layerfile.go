package ibarchive

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// WriteLayerFile writes the tree at dir (as Extract left it) to path as an
// uncompressed layer tar whose bytes depend only on the tree's names,
// contents, modes and symlink targets and on o: entries are sorted, owned
// by 0:0 with empty names, stamped with o.Epoch, under o.Prefix, and hard
// links within the tree become tar hard links to the first name in sort
// order. Symlinks are never followed and keep their targets as they are,
// absolute ones included (see Extract). Special files are refused. The
// file appears only complete (a temporary file renamed into place).
func WriteLayerFile(ctx context.Context, dir, path string, o LayerOptions) error {
	if o.Prefix != "" {
		p, err := cleanName(o.Prefix)
		if err != nil || p == "" {
			return fmt.Errorf("ibarchive: layer prefix %q: %w", o.Prefix, ErrUnsafePath)
		}
		o.Prefix = p
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".partial-")
	if err != nil {
		return fmt.Errorf("ibarchive: %w", err)
	}
	defer os.Remove(f.Name())
	if err := writeLayer(ctx, f, dir, o); err != nil {
		f.Close()
		return fmt.Errorf("ibarchive: layer of %s: %w", dir, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
