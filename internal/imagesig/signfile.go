package imagesig

import (
	"os"
	"path/filepath"

	"github.com/torwrt/torwrt/internal/usign"
)

// WriteFileAtomic writes data to a temporary sibling of path, syncs it and
// renames it over path, so readers see the old file or the new one, never
// a part.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// VerifyFile verifies the image at path.
func VerifyFile(path string, keys *usign.Keyring, opt Options) (*Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return Verify(f, fi.Size(), keys, opt)
}
