package ibarchive

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// WriteLayerFile writes the tree at dir as the same uncompressed,
// deterministic layer tar PackOCI builds (sorted, 0:0, o.Epoch times, under
// o.Prefix) to path, through a temporary file renamed into place.
func WriteLayerFile(ctx context.Context, dir, path string, o OCIOptions) error {
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
