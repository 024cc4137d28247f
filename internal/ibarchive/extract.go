package ibarchive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/torwrt/torwrt/internal/squashfs/xzdec"
)

// Compression names an archive's outer compression.
type Compression string

const (
	Auto Compression = ""     // detect from the magic bytes
	XZ   Compression = "xz"   // .tar.xz (ImageBuilders up to 23.05)
	Zstd Compression = "zstd" // .tar.zst (24.10)
	Gzip Compression = "gzip"
	None Compression = "none" // plain tar
)

var (
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
	gzipMagic = []byte{0x1f, 0x8b}
)

// DetectCompression identifies the compression from an archive's first
// bytes (at least 263 for plain tar).
func DetectCompression(head []byte) (Compression, error) {
	switch {
	case xzdec.IsXZ(head):
		return XZ, nil
	case bytes.HasPrefix(head, zstdMagic):
		return Zstd, nil
	case bytes.HasPrefix(head, gzipMagic):
		return Gzip, nil
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return None, nil
	}
	return "", fmt.Errorf("ibarchive: %w: not an xz, zstd, gzip or tar archive", ErrCorrupt)
}

// Limits bound an extraction. Zero fields take the defaults.
type Limits struct {
	MaxBytes     int64 // all regular files together; default 4 GiB
	MaxFileBytes int64 // one file; default 1 GiB
	MaxFiles     int   // entries of any kind; default 500000
	MaxWindow    int64 // decompressor window (xz dictionary, zstd window); default 128 MiB
}

// overhead bounds the tar headers, padding and end blocks that come on top
// of the file bytes.
func (l Limits) overhead() int64 { return int64(l.MaxFiles)*3*512 + 1<<20 }

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = 4 << 30
	}
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = 1 << 30
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = 500000
	}
	if l.MaxWindow <= 0 {
		l.MaxWindow = 128 << 20
	}
	return l
}

// ExtractOptions choose the layout of the extracted tree. The safety checks
// are the same whatever they say.
type ExtractOptions struct {
	// StripTopDir requires every entry to lie below one top-level
	// directory, as in every upstream ImageBuilder archive
	// ("openwrt-imagebuilder-ramips-mt7620.Linux-x86_64/"), and extracts
	// that directory's contents into destDir, so that destDir is the
	// ImageBuilder itself; Result.TopDir records the name. An archive with
	// no top-level entry, with more than one, or with a file at the top
	// level is refused with ErrTopDir. Symlink targets are not rewritten,
	// and hard link targets must lie below the same directory.
	StripTopDir bool
}

// Result describes a finished extraction.
type Result struct {
	SHA256      string // of the compressed archive as read
	Compression Compression
	Files       int    // entries extracted
	Bytes       int64  // regular file bytes written
	TopDir      string // the stripped top-level directory, with ExtractOptions.StripTopDir

	// AbsoluteSymlinks lists, sorted, the symlinks whose target is an
	// absolute path, by their name in destDir. Their targets are as in the
	// archive; they resolve outside destDir.
	AbsoluteSymlinks []string
}

// Extract unpacks the tar archive read from r into destDir, which must not
// exist yet (its parent must). Entries go to a staging directory next to
// destDir that is renamed to destDir only when the whole archive has been
// read and checked; on error it is removed. Extract decompresses r as it
// reads it; use ExtractVerified or ExtractFile to authenticate an archive
// before any of it is parsed.
//
// Accepted: directories, regular files, hard links to an earlier regular
// file, symlinks whose target stays inside destDir (through chains of
// links too), and symlinks whose target is an absolute path. Absolute
// symlinks are created as they are and listed in Result.AbsoluteSymlinks:
// upstream ImageBuilders ship them in staging_dir/host/bin (awk ->
// /usr/bin/gawk, bash -> /bin/bash, perl, python, ...) for their
// prerequisite check to re-point at host tools, and inside the build
// container they resolve to the container's own userland, as intended.
// Extraction never follows any symlink: nothing is written below one, and
// all writes go through an os.Root that cannot leave the staging
// directory. Whoever uses the tree outside a container must not follow
// the absolute ones either.
//
// Refused: absolute paths and ".." components (ErrUnsafePath); entries
// below a symlink, absolute or not (ErrUnsafePath); relative symlinks that
// resolve outside destDir, also through chains of links, and those that
// reach their target through an absolute symlink, since they would leave
// destDir when used (ErrUnsafePath); hard links to anything but an earlier
// regular file (ErrUnsafePath); device nodes and fifos (ErrSpecialFile);
// duplicate entries (ErrCorrupt); archives beyond lim (ErrTooLarge); and,
// with o.StripTopDir, any layout but one top-level directory (ErrTopDir).
// Modes keep the permission bits only (no setuid, setgid or sticky), and
// directories the archive does not list get 0755 whatever the umask;
// owners are not set; modification times are kept.
func Extract(ctx context.Context, r io.Reader, c Compression, destDir string, lim Limits, o ExtractOptions) (Result, error) {
	res, err := extract(ctx, r, "", c, destDir, lim, o)
	if err != nil {
		return res, fmt.Errorf("ibarchive: %w", err)
	}
	return res, nil
}

// ExtractVerified is Extract for an archive whose SHA-256 must be
// wantSHA256 (hex). r is first copied, while hashed, into a private file
// (mode 0600) beside destDir; only if the hash matches is that copy
// decompressed and extracted, so no byte of a mismatching archive reaches
// a decompressor or the tar reader (ErrHashMismatch). The copy is removed
// before ExtractVerified returns. The copy is bounded like the
// decompressed stream, by lim.MaxBytes plus tar overhead (ErrTooLarge).
func ExtractVerified(ctx context.Context, r io.Reader, wantSHA256 string, c Compression, destDir string, lim Limits, o ExtractOptions) (Result, error) {
	res, err := extractVerified(ctx, r, wantSHA256, c, destDir, lim, o)
	if err != nil {
		return res, fmt.Errorf("ibarchive: %w", err)
	}
	return res, nil
}

// ExtractFile extracts the ImageBuilder archive at archivePath, whose base
// name must be listed in sums (from VerifySums), into destDir. Like
// ExtractVerified it hashes a private copy of the archive before reading
// any of it as an archive, and like ExtractOptions.StripTopDir it requires
// one top-level directory and leaves its contents in destDir, so that
// destDir holds the ImageBuilder's Makefile.
func ExtractFile(ctx context.Context, archivePath string, sums Sums, destDir string, lim Limits) (Result, error) {
	name := filepath.Base(archivePath)
	want, ok := sums.Lookup(name)
	if !ok {
		return Result{}, fmt.Errorf("ibarchive: %s: %w", name, ErrNotListed)
	}
	f, err := os.Open(archivePath)
	if err != nil {
		return Result{}, fmt.Errorf("ibarchive: %w", err)
	}
	defer f.Close()
	res, err := extractVerified(ctx, f, want, Auto, destDir, lim, ExtractOptions{StripTopDir: true})
	if err != nil {
		return res, fmt.Errorf("ibarchive: %s: %w", name, err)
	}
	return res, nil
}

func extractVerified(ctx context.Context, r io.Reader, wantSHA256 string, c Compression, destDir string, lim Limits, o ExtractOptions) (Result, error) {
	want := strings.ToLower(wantSHA256)
	if len(want) != 64 || strings.Trim(want, "0123456789abcdef") != "" {
		return Result{}, fmt.Errorf("pinned sha256 %q is not 64 hex digits", wantSHA256)
	}
	lim = lim.withDefaults()
	destDir = filepath.Clean(destDir)
	if _, err := os.Lstat(destDir); err == nil {
		return Result{}, fmt.Errorf("destination %s already exists", destDir)
	}
	f, got, err := spool(ctx, r, destDir, lim.MaxBytes+lim.overhead())
	if err != nil {
		return Result{}, err
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	if got != want {
		return Result{SHA256: got}, fmt.Errorf("%w: archive is %s, pinned %s", ErrHashMismatch, got, want)
	}
	// The copy is private, but hashing it again while extracting costs
	// little and makes Result.SHA256 describe the bytes decompressed.
	return extract(ctx, f, want, c, destDir, lim, o)
}

// spool copies at most max bytes of r into a new file, mode 0600, beside
// destDir, and returns it rewound with the hex SHA-256 of its contents.
// The caller closes and removes it.
func spool(ctx context.Context, r io.Reader, destDir string, max int64) (_ *os.File, sum string, err error) {
	f, err := os.CreateTemp(filepath.Dir(destDir), "."+filepath.Base(destDir)+".archive-")
	if err != nil {
		return nil, "", fmt.Errorf("creating private archive copy: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	n, err := copyCtx(ctx, io.MultiWriter(f, h), io.LimitReader(r, max+1), make([]byte, 256<<10))
	if err != nil {
		return nil, "", fmt.Errorf("copying archive: %w", err)
	}
	if n > max {
		return nil, "", fmt.Errorf("%w: archive is larger than %d bytes", ErrTooLarge, max)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, "", err
	}
	return f, hex.EncodeToString(h.Sum(nil)), nil
}

// wrapDecompress makes decompressor errors carry the sentinel their kind
// deserves while keeping the decompressor's message.
func wrapDecompress(err error) error {
	switch {
	case err == nil, errors.Is(err, ErrTooLarge), errors.Is(err, ErrCorrupt), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, xzdec.ErrTooLarge), errors.Is(err, zstd.ErrWindowSizeExceeded), errors.Is(err, zstd.ErrDecoderSizeExceeded):
		return fmt.Errorf("%w: %v", ErrTooLarge, err)
	case err == io.ErrUnexpectedEOF || err == io.EOF:
		return fmt.Errorf("%w: truncated", ErrCorrupt)
	}
	return fmt.Errorf("%w: %v", ErrCorrupt, err)
}

// countLimit fails once more than max bytes came through: it bounds the
// decompressed stream as a whole, headers and padding included.
type countLimit struct {
	r   io.Reader
	n   int64
	max int64
}

func (c *countLimit) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.max {
		return n, fmt.Errorf("%w: archive decompresses beyond %d bytes", ErrTooLarge, c.max)
	}
	if err != nil && err != io.EOF {
		err = wrapDecompress(err)
	}
	return n, err
}

func extract(ctx context.Context, r io.Reader, want string, c Compression, destDir string, lim Limits, o ExtractOptions) (res Result, err error) {
	lim = lim.withDefaults()
	destDir = filepath.Clean(destDir)
	if _, err := os.Lstat(destDir); err == nil {
		return res, fmt.Errorf("destination %s already exists", destDir)
	}
	staging, err := os.MkdirTemp(filepath.Dir(destDir), "."+filepath.Base(destDir)+".partial-")
	if err != nil {
		return res, fmt.Errorf("creating staging directory: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(staging)
		}
	}()
	root, err := os.OpenRoot(staging)
	if err != nil {
		return res, err
	}
	defer root.Close()

	h := sha256.New()
	src := bufio.NewReaderSize(io.TeeReader(r, h), 1<<20)
	if c == Auto {
		head, _ := src.Peek(512)
		if c, err = DetectCompression(head); err != nil {
			return res, err
		}
	}
	res.Compression = c
	var dec io.Reader
	switch c {
	case XZ:
		x, err := xzdec.NewReader(src, xzdec.Config{MaxDict: lim.MaxWindow})
		if err != nil {
			return res, fmt.Errorf("xz: %w", wrapDecompress(err))
		}
		dec = x
	case Zstd:
		z, err := zstd.NewReader(src, zstd.WithDecoderMaxWindow(uint64(lim.MaxWindow)), zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return res, fmt.Errorf("zstd: %w", wrapDecompress(err))
		}
		defer z.Close()
		dec = z
	case Gzip:
		z, err := gzip.NewReader(src)
		if err != nil {
			return res, fmt.Errorf("gzip: %w", wrapDecompress(err))
		}
		dec = z
	case None:
		dec = src
	default:
		return res, fmt.Errorf("unknown compression %q", c)
	}
	limited := &countLimit{r: dec, max: lim.MaxBytes + lim.overhead()}

	x := &extractor{root: root, lim: lim, strip: o.StripTopDir, dirs: map[string]bool{"": true}}
	if err := x.run(ctx, tar.NewReader(limited)); err != nil {
		return res, err
	}
	// Read the compressed stream to its end: it checks the trailer and
	// lets the hash cover every byte of the file.
	if _, err := io.Copy(io.Discard, limited); err != nil {
		return res, fmt.Errorf("after the tar end: %w", err)
	}
	if _, err := io.Copy(io.Discard, src); err != nil {
		return res, fmt.Errorf("reading archive: %w", err)
	}
	res.SHA256 = hex.EncodeToString(h.Sum(nil))
	if want != "" && res.SHA256 != want {
		return res, fmt.Errorf("%w: archive is %s, pinned %s", ErrHashMismatch, res.SHA256, want)
	}
	if err := x.finish(); err != nil {
		return res, err
	}
	res.Files, res.Bytes, res.TopDir = x.files, x.bytes, x.top
	res.AbsoluteSymlinks = slices.Sorted(slices.Values(x.absLinks))
	if err := os.Chmod(staging, 0755); err != nil {
		return res, err
	}
	if err := root.Close(); err != nil {
		return res, err
	}
	if err := os.Rename(staging, destDir); err != nil {
		return res, err
	}
	return res, nil
}

type extractor struct {
	root     *os.Root
	lim      Limits
	strip    bool            // ExtractOptions.StripTopDir
	top      string          // the top-level directory, once seen, with strip
	dirs     map[string]bool // real directories created, "" is the root
	dirMeta  []dirMeta
	symlinks []string // relative ones, checked again at the end
	absLinks []string
	files    int
	bytes    int64
	buf      []byte
}

type dirMeta struct {
	path  string
	mode  fs.FileMode
	mtime int64
}

// cleanName turns a tar name into a clean relative path ("" for the root)
// or refuses it.
func cleanName(name string) (string, error) {
	p := strings.TrimSuffix(strings.TrimPrefix(name, "./"), "/")
	if p == "" || p == "." {
		return "", nil
	}
	if strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("%w: %q", ErrUnsafePath, name)
	}
	if slices.Contains(strings.Split(p, "/"), "..") {
		return "", fmt.Errorf("%w: %q", ErrUnsafePath, name)
	}
	if path.Clean(p) != p {
		return "", fmt.Errorf("%w: %q is not a clean path", ErrUnsafePath, name)
	}
	return p, nil
}

// parents makes sure every ancestor of p is a real directory, creating
// missing ones; an ancestor that is a symlink means the entry would be
// written through it.
func (x *extractor) parents(p string) error {
	dir := path.Dir(p)
	if dir == "." {
		return nil
	}
	parts := strings.Split(dir, "/")
	for i := range parts {
		a := strings.Join(parts[:i+1], "/")
		if x.dirs[a] {
			continue
		}
		fi, err := x.root.Lstat(a)
		switch {
		case err == nil && fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("%w: %q would be written through symlink %q", ErrUnsafePath, p, a)
		case err == nil && !fi.IsDir():
			return fmt.Errorf("%w: %q: parent %q is not a directory", ErrCorrupt, p, a)
		case err == nil:
			x.dirs[a] = true
		case errors.Is(err, fs.ErrNotExist):
			// Chmod, not the umask, decides the mode of a directory
			// the archive does not list, so the tree packs the same
			// under any umask.
			if err := x.root.Mkdir(a, 0700); err != nil {
				return err
			}
			if err := x.root.Chmod(a, 0755); err != nil {
				return err
			}
			x.dirs[a] = true
		default:
			return err
		}
	}
	return nil
}

// lexicallyInside reports whether target, relative to the directory of the
// link at p, stays inside the root without following any links.
func lexicallyInside(p, target string) bool {
	if strings.HasPrefix(target, "/") {
		return false
	}
	depth := strings.Count(path.Dir(p), "/") + 1
	if path.Dir(p) == "." {
		depth = 0
	}
	for _, c := range strings.Split(target, "/") {
		switch c {
		case "", ".":
		case "..":
			if depth--; depth < 0 {
				return false
			}
		default:
			depth++
		}
	}
	return true
}

func (x *extractor) run(ctx context.Context, tr *tar.Reader) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			if x.strip && x.top == "" {
				return fmt.Errorf("%w: the archive has no top-level entry", ErrTopDir)
			}
			return nil
		}
		if err != nil {
			return wrapDecompress(err)
		}
		if x.files++; x.files > x.lim.MaxFiles {
			return fmt.Errorf("%w: more than %d entries", ErrTooLarge, x.lim.MaxFiles)
		}
		name, err := cleanName(h.Name)
		if err != nil {
			return err
		}
		if name == "" {
			if h.Typeflag != tar.TypeDir {
				return fmt.Errorf("%w: archive root %q is not a directory", ErrCorrupt, h.Name)
			}
			continue
		}
		if x.strip {
			if name, err = x.stripTop(name); err != nil {
				return err
			}
			if name == "" {
				if h.Typeflag != tar.TypeDir {
					return fmt.Errorf("%w: %q at the top level is not a directory", ErrTopDir, h.Name)
				}
				// Like the root, the top directory gets 0755.
				continue
			}
		}
		if err := x.entry(ctx, tr, h, name); err != nil {
			return err
		}
	}
}

// stripTop removes the top-level directory from the clean, non-empty
// name, refusing a second one.
func (x *extractor) stripTop(name string) (string, error) {
	top, rest, _ := strings.Cut(name, "/")
	switch {
	case x.top == "":
		x.top = top
	case top != x.top:
		return "", fmt.Errorf("%w: %q and %q are both at the top level", ErrTopDir, x.top, top)
	}
	return rest, nil
}

func (x *extractor) entry(ctx context.Context, tr *tar.Reader, h *tar.Header, name string) error {
	switch h.Typeflag {
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return fmt.Errorf("%w: %q (tar type %q)", ErrSpecialFile, h.Name, h.Typeflag)
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink:
	default:
		return fmt.Errorf("%w: %q: unsupported tar type %q", ErrCorrupt, h.Name, h.Typeflag)
	}
	if err := x.parents(name); err != nil {
		return err
	}
	perm := fs.FileMode(h.Mode) & fs.ModePerm
	switch h.Typeflag {
	case tar.TypeDir:
		// A repeated directory only updates its metadata.
		if !x.dirs[name] {
			if err := x.root.Mkdir(name, 0700); err != nil {
				if errors.Is(err, fs.ErrExist) {
					return fmt.Errorf("%w: %q exists and is not a directory", ErrCorrupt, h.Name)
				}
				return err
			}
			x.dirs[name] = true
		}
		// Final modes and times are set at the end, deepest first, so that
		// read-only directories can still be filled.
		x.dirMeta = append(x.dirMeta, dirMeta{name, perm, h.ModTime.Unix()})
	case tar.TypeReg:
		if h.Size > x.lim.MaxFileBytes {
			return fmt.Errorf("%w: %q is %d bytes, limit %d", ErrTooLarge, h.Name, h.Size, x.lim.MaxFileBytes)
		}
		if h.Size > x.lim.MaxBytes-x.bytes {
			return fmt.Errorf("%w: %q would bring the total past %d bytes", ErrTooLarge, h.Name, x.lim.MaxBytes)
		}
		f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0600)
		if err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%w: %q appears twice", ErrCorrupt, h.Name)
			}
			return err
		}
		if x.buf == nil {
			x.buf = make([]byte, 256<<10)
		}
		n, err := copyCtx(ctx, f, io.LimitReader(tr, h.Size), x.buf)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("writing %q: %w", h.Name, wrapDecompress(err))
		}
		if n != h.Size {
			return fmt.Errorf("%w: %q truncated", ErrCorrupt, h.Name)
		}
		x.bytes += n
		if err := x.root.Chmod(name, perm); err != nil {
			return err
		}
		if err := x.root.Chtimes(name, h.ModTime, h.ModTime); err != nil {
			return err
		}
	case tar.TypeSymlink:
		// An absolute target is kept as it is (see Extract); a relative
		// one must stay inside, which finish checks again on the whole
		// tree.
		abs := strings.HasPrefix(h.Linkname, "/")
		if h.Linkname == "" || strings.ContainsRune(h.Linkname, 0) || !abs && !lexicallyInside(name, h.Linkname) {
			return fmt.Errorf("%w: symlink %q -> %q points outside the archive", ErrUnsafePath, h.Name, h.Linkname)
		}
		if err := x.root.Symlink(h.Linkname, name); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%w: %q appears twice", ErrCorrupt, h.Name)
			}
			return err
		}
		if abs {
			x.absLinks = append(x.absLinks, name)
		} else {
			x.symlinks = append(x.symlinks, name)
		}
	case tar.TypeLink:
		target, err := cleanName(h.Linkname)
		if err == nil && x.strip {
			var ok bool
			if target, ok = strings.CutPrefix(target, x.top+"/"); !ok {
				target = ""
			}
		}
		if err != nil || target == "" {
			return fmt.Errorf("%w: hard link %q -> %q", ErrUnsafePath, h.Name, h.Linkname)
		}
		fi, err := x.root.Lstat(target)
		if err != nil || !fi.Mode().IsRegular() {
			return fmt.Errorf("%w: hard link %q -> %q: target is not an extracted regular file", ErrUnsafePath, h.Name, h.Linkname)
		}
		if err := x.root.Link(target, name); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%w: %q appears twice", ErrCorrupt, h.Name)
			}
			return err
		}
	}
	return nil
}

func copyCtx(ctx context.Context, w io.Writer, r io.Reader, buf []byte) (int64, error) {
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		k, err := r.Read(buf)
		if k > 0 {
			if _, werr := w.Write(buf[:k]); werr != nil {
				return n, werr
			}
			n += int64(k)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// finish resolves every relative symlink against the final tree, which the
// lexical check at creation could not see (a link through another link),
// then sets directory modes and times.
func (x *extractor) finish() error {
	for _, l := range x.symlinks {
		if err := x.checkLink(l); err != nil {
			return err
		}
	}
	slices.SortFunc(x.dirMeta, func(a, b dirMeta) int {
		return strings.Count(b.path, "/") - strings.Count(a.path, "/")
	})
	for _, d := range x.dirMeta {
		if err := x.root.Chmod(d.path, d.mode); err != nil {
			return err
		}
	}
	for _, d := range x.dirMeta {
		t := unixTime(d.mtime)
		if err := x.root.Chtimes(d.path, t, t); err != nil {
			return err
		}
	}
	return nil
}

// checkLink follows the relative symlink at link as the kernel would,
// refusing it if any step leaves the root or goes through an absolute
// symlink (which would leave it when the tree is used).
func (x *extractor) checkLink(link string) error {
	fail := func(why string) error {
		return fmt.Errorf("%w: symlink %q %s", ErrUnsafePath, link, why)
	}
	target, err := x.root.Readlink(link)
	if err != nil {
		return err
	}
	var stack []string
	if d := path.Dir(link); d != "." {
		stack = strings.Split(d, "/")
	}
	queue := strings.Split(target, "/")
	for hops := 0; len(queue) > 0; {
		c := queue[0]
		queue = queue[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) == 0 {
				return fail("resolves outside the archive")
			}
			stack = stack[:len(stack)-1]
			continue
		}
		p := strings.Join(append(stack, c), "/")
		fi, err := x.root.Lstat(p)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			// Missing components are taken lexically.
			stack = append(stack, c)
			continue
		}
		if hops++; hops > 40 {
			return fail("is part of a symlink loop")
		}
		t, err := x.root.Readlink(p)
		if err != nil {
			return err
		}
		if strings.HasPrefix(t, "/") {
			return fail("resolves through an absolute symlink")
		}
		queue = append(strings.Split(t, "/"), queue...)
	}
	return nil
}

func unixTime(s int64) time.Time { return time.Unix(s, 0) }
