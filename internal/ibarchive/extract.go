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

// Result describes a finished extraction.
type Result struct {
	SHA256      string // of the compressed archive as read
	Compression Compression
	Files       int   // entries extracted
	Bytes       int64 // regular file bytes written
}

// Extract unpacks the tar archive read from r into destDir, which must not
// exist yet (its parent must). Entries go to a staging directory next to
// destDir that is renamed to destDir only when the whole archive has been
// read and checked; on error it is removed.
//
// Refused: absolute paths and ".." components, entries below a symlink,
// symlinks that are absolute or resolve outside destDir (through chains of
// links too), hard links to anything but an earlier regular file, device
// nodes, fifos, duplicate entries, and archives beyond lim. Modes keep the
// permission bits only (no setuid, setgid or sticky); owners are not set;
// modification times are kept.
func Extract(ctx context.Context, r io.Reader, c Compression, destDir string, lim Limits) (Result, error) {
	return extract(ctx, r, "", c, destDir, lim)
}

// ExtractVerified is Extract that also requires the archive's SHA-256 to be
// wantSHA256 (hex); destDir appears only if it matches.
func ExtractVerified(ctx context.Context, r io.Reader, wantSHA256 string, c Compression, destDir string, lim Limits) (Result, error) {
	want := strings.ToLower(wantSHA256)
	if len(want) != 64 || strings.Trim(want, "0123456789abcdef") != "" {
		return Result{}, fmt.Errorf("ibarchive: pinned sha256 %q is not 64 hex digits", wantSHA256)
	}
	return extract(ctx, r, want, c, destDir, lim)
}

// ExtractFile extracts the archive at archivePath, whose base name must be
// listed in sums (from VerifySums), into destDir.
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
	res, err := extract(ctx, f, want, Auto, destDir, lim)
	if err != nil {
		return res, fmt.Errorf("%s: %w", name, err)
	}
	return res, nil
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

func extract(ctx context.Context, r io.Reader, want string, c Compression, destDir string, lim Limits) (res Result, err error) {
	lim = lim.withDefaults()
	destDir = filepath.Clean(destDir)
	if _, err := os.Lstat(destDir); err == nil {
		return res, fmt.Errorf("ibarchive: destination %s already exists", destDir)
	}
	staging, err := os.MkdirTemp(filepath.Dir(destDir), "."+filepath.Base(destDir)+".partial-")
	if err != nil {
		return res, fmt.Errorf("ibarchive: creating staging directory: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(staging)
		}
	}()
	root, err := os.OpenRoot(staging)
	if err != nil {
		return res, fmt.Errorf("ibarchive: %w", err)
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
			return res, fmt.Errorf("ibarchive: xz: %w", wrapDecompress(err))
		}
		dec = x
	case Zstd:
		z, err := zstd.NewReader(src, zstd.WithDecoderMaxWindow(uint64(lim.MaxWindow)), zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return res, fmt.Errorf("ibarchive: zstd: %w", wrapDecompress(err))
		}
		defer z.Close()
		dec = z
	case Gzip:
		z, err := gzip.NewReader(src)
		if err != nil {
			return res, fmt.Errorf("ibarchive: gzip: %w", wrapDecompress(err))
		}
		dec = z
	case None:
		dec = src
	default:
		return res, fmt.Errorf("ibarchive: unknown compression %q", c)
	}
	// Tar headers, padding and end blocks on top of the file bytes.
	overhead := int64(lim.MaxFiles)*3*512 + 1<<20
	limited := &countLimit{r: dec, max: lim.MaxBytes + overhead}

	x := &extractor{root: root, lim: lim, dirs: map[string]bool{"": true}}
	if err := x.run(ctx, tar.NewReader(limited)); err != nil {
		return res, fmt.Errorf("ibarchive: %w", err)
	}
	// Read the compressed stream to its end: it checks the trailer and
	// lets the hash cover every byte of the file.
	if _, err := io.Copy(io.Discard, limited); err != nil {
		return res, fmt.Errorf("ibarchive: after the tar end: %w", err)
	}
	if _, err := io.Copy(io.Discard, src); err != nil {
		return res, fmt.Errorf("ibarchive: reading archive: %w", err)
	}
	res.SHA256 = hex.EncodeToString(h.Sum(nil))
	if want != "" && res.SHA256 != want {
		return res, fmt.Errorf("ibarchive: %w: archive is %s, pinned %s", ErrHashMismatch, res.SHA256, want)
	}
	if err := x.finish(); err != nil {
		return res, fmt.Errorf("ibarchive: %w", err)
	}
	res.Files, res.Bytes = x.files, x.bytes
	if err := os.Chmod(staging, 0755); err != nil {
		return res, fmt.Errorf("ibarchive: %w", err)
	}
	if err := root.Close(); err != nil {
		return res, fmt.Errorf("ibarchive: %w", err)
	}
	if err := os.Rename(staging, destDir); err != nil {
		return res, fmt.Errorf("ibarchive: %w", err)
	}
	return res, nil
}

type extractor struct {
	root     *os.Root
	lim      Limits
	dirs     map[string]bool // real directories created, "" is the root
	dirMeta  []dirMeta
	symlinks []string
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
			if err := x.root.Mkdir(a, 0755); err != nil {
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
		if err := x.entry(ctx, tr, h, name); err != nil {
			return err
		}
	}
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
		if h.Linkname == "" || !lexicallyInside(name, h.Linkname) {
			return fmt.Errorf("%w: symlink %q -> %q points outside the archive", ErrUnsafePath, h.Name, h.Linkname)
		}
		if err := x.root.Symlink(h.Linkname, name); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%w: %q appears twice", ErrCorrupt, h.Name)
			}
			return err
		}
		x.symlinks = append(x.symlinks, name)
	case tar.TypeLink:
		target, err := cleanName(h.Linkname)
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

// finish resolves every symlink against the final tree, which the lexical
// check at creation could not see (a link through another link), then sets
// directory modes and times.
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

// checkLink follows the symlink at link as the kernel would, refusing it if
// any step leaves the root.
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
