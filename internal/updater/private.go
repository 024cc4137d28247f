package updater

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/torwrt/torwrt/internal/manifest"
)

// PrivateDirName is the updater's own directory inside DownloadDir. The
// lock, partial downloads and verified images live there and nowhere else:
// DownloadDir is /tmp, where any local user can create files with the
// names the updater would use (they are predictable: the image's hash),
// plant symlinks, or keep a file open and rewrite it after verification.
const PrivateDirName = "torwrt-verify"

// lockName is the lock file inside the private directory.
const lockName = "lock"

// privateDir makes parent/torwrt-verify a directory of this process's
// user that no one else can enter (mode 0700) and returns its path. A
// directory, file or symlink of that name that is not exactly that (made
// by another user, or with other permissions) is removed and made anew:
// nothing in it can be trusted. The parent must not let other users rename
// our directory away: world-writable only with the sticky bit, as /tmp.
func privateDir(parent string, log *slog.Logger) (string, error) {
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return "", fmt.Errorf("download directory: %w", err)
	}
	pfi, err := os.Stat(parent)
	if err != nil {
		return "", fmt.Errorf("download directory: %w", err)
	}
	if pfi.Mode().Perm()&0o002 != 0 && pfi.Mode()&os.ModeSticky == 0 {
		return "", fmt.Errorf("download directory %s is writable by everyone without the sticky bit (mode %v); use /tmp or a directory only root can write", parent, pfi.Mode())
	}
	dir := filepath.Join(parent, PrivateDirName)
	for try := 0; ; try++ {
		err := os.Mkdir(dir, 0o700)
		if err == nil {
			// The umask may have taken bits; it cannot have added any.
			if err := os.Chmod(dir, 0o700); err != nil {
				return "", fmt.Errorf("download directory: %w", err)
			}
		} else if !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("download directory: %w", err)
		}
		why := checkPrivateDir(dir)
		if why == "" {
			return dir, nil
		}
		if try > 0 {
			return "", fmt.Errorf("download directory %s %s, also after removing it; refusing to use it", dir, why)
		}
		log.Warn("removing a download directory this updater did not make", "path", dir, "why", why)
		// RemoveAll does not follow symlinks, inside or at dir itself.
		if err := os.RemoveAll(dir); err != nil {
			return "", fmt.Errorf("removing %s (%s): %w", dir, why, err)
		}
	}
}

// checkPrivateDir says what is wrong with dir as the private directory,
// or "" when it is a real directory of ours that only we can enter.
func checkPrivateDir(dir string) string {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err.Error()
	}
	if !fi.IsDir() {
		return fmt.Sprintf("is not a directory (%v)", fi.Mode().Type())
	}
	if uid, ok := ownerOf(fi); !ok || uid != os.Geteuid() {
		return fmt.Sprintf("is owned by uid %d, not %d", uid, os.Geteuid())
	}
	if fi.Mode().Perm() != 0o700 {
		return fmt.Sprintf("has mode %v, not 0700", fi.Mode().Perm())
	}
	return ""
}

func ownerOf(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return -1, false
	}
	return int(st.Uid), true
}

// openPrivate opens path (in the private directory) without following a
// symlink and checks what it opened: a regular file of ours with one
// link and no permissions for anyone else. flag may add O_CREATE and
// O_EXCL.
func openPrivate(path string, flag int) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	fi, err := CheckOwnedFile(f, path, os.Geteuid())
	if err == nil && fi.Mode().Perm()&0o077 != 0 {
		err = fmt.Errorf("%s has mode %v", path, fi.Mode().Perm())
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// CheckOwnedFile says what is wrong with an opened file as one of uid's
// own: it must be a regular file (not a fifo or device someone put
// there), owned by uid, with one link (not a hard link to a file someone
// else cares about). It returns the file's info when nothing is.
func CheckOwnedFile(f *os.File, path string, uid int) (fs.FileInfo, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s is not a regular file", path)
	case !ok || int(st.Uid) != uid:
		return nil, fmt.Errorf("%s is not owned by uid %d", path, uid)
	case uint64(st.Nlink) != 1:
		return nil, fmt.Errorf("%s has %d links", path, st.Nlink)
	}
	return fi, nil
}

// openPartial opens the partial download: the one a previous attempt left
// in the private directory if it passes openPrivate's checks, else a new
// empty file created exclusively.
func openPartial(path string) (*os.File, error) {
	f, err := openPrivate(path, os.O_RDWR)
	if err == nil {
		return f, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		os.Remove(path) // not ours to continue; Remove does not follow a symlink
	}
	f, err = openPrivate(path, os.O_RDWR|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", path, err)
	}
	return f, nil
}

// recheck proves, right before the file is handed to sysupgrade, that it
// still is exactly the image the manifest lists: a regular file of ours
// (not a symlink, one link, mode 0600 or stricter), rel.Size bytes with
// rel.SHA256. The private directory keeps other users out; this also
// catches anything that changed the bytes after they were verified.
func recheck(path string, rel *manifest.Release) error {
	f, err := openPrivate(path, os.O_RDONLY)
	if err != nil {
		return fmt.Errorf("%w: verified image: %w", ErrHashMismatch, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("re-reading verified image %s: %w", path, err)
	}
	if n != rel.Size {
		return fmt.Errorf("%w: verified image %s changed: %d bytes, manifest says %d", ErrHashMismatch, path, n, rel.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != rel.SHA256 {
		return fmt.Errorf("%w: verified image %s changed: sha256 %s, manifest says %s", ErrHashMismatch, path, got, rel.SHA256)
	}
	return nil
}
