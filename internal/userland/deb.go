package userland

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/torwrt/torwrt/internal/squashfs/xzdec"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrCorrupt reports a .deb that is not a well-formed Debian binary
	// package (ar archive, member order, compression, tar).
	ErrCorrupt = errors.New("corrupt .deb")
	// ErrUnsafePath reports an absolute path or a ".." component, a hard
	// link to something the package did not ship, or a path below a
	// symlink or a file.
	ErrUnsafePath = errors.New("unsafe path")
	// ErrSpecialFile reports a device node, fifo or other special file.
	ErrSpecialFile = errors.New("device node or special file")
	// ErrTooLarge reports data beyond MaxDebData or MaxLayerBytes.
	ErrTooLarge = errors.New("limit exceeded")
	// ErrConflict reports two packages shipping a directory and a
	// non-directory at one path, or one file under both /X and /usr/X.
	ErrConflict = errors.New("file conflict")
)

// Limits on what a build reads.
const (
	MaxDebData    = 1 << 30 // one .deb's data.tar after decompression
	MaxLayerBytes = 4 << 30 // regular file contents of the whole layer
	maxDebEntries = 200000  // tar entries in one .deb
	maxXZDict     = 64 << 20
	maxZstdWindow = 128 << 20
)

type fileKind uint8

const (
	kindDir fileKind = iota + 1
	kindReg
	kindSymlink
	kindHardlink
)

func (k fileKind) String() string {
	switch k {
	case kindDir:
		return "directory"
	case kindReg:
		return "file"
	case kindSymlink:
		return "symlink"
	case kindHardlink:
		return "hard link"
	}
	return "?"
}

// debFile is one entry of a .deb's data.tar after its name was checked.
type debFile struct {
	Name string   // relative, clean, no trailing slash, never "" or "."
	Kind fileKind // kindDir, kindReg, kindSymlink or kindHardlink
	Mode int64    // permission, setuid, setgid and sticky bits as shipped
	Link string   // symlink target as shipped, or hard link target (a clean name)
	Size int64    // regular files
}

// readDeb reads a Debian binary package from r: an ar archive holding
// debian-binary ("2.x"), control.tar[.gz|.xz|.zst] and
// data.tar[.gz|.xz|.zst], in that order, with optional "_"-prefixed members
// between and after them as dpkg allows. For each data.tar entry it calls fn;
// for regular files body yields the contents (fn need not read it). It reads
// r to its end and checks every decompressor's own checksum, so a truncated
// or padded package is an error. maxData bounds the decompressed data.tar.
func readDeb(ctx context.Context, r io.Reader, maxData int64, fn func(f debFile, body io.Reader) error) error {
	a := &arReader{r: bufio.NewReaderSize(r, 64<<10)}
	if err := a.readMagic(); err != nil {
		return err
	}
	// 0: want debian-binary, 1: want control.tar, 2: want data.tar, 3: done.
	state := 0
	for {
		name, body, err := a.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(name, "_"):
			if state == 0 {
				return corruptf(a.hdrOff, "ar member %q before debian-binary", name)
			}
		case state == 0 && name == "debian-binary":
			v, err := io.ReadAll(io.LimitReader(body, 64))
			if err != nil {
				return wrapRead(err, a.hdrOff)
			}
			if !isDebVersion(v) {
				return corruptf(a.hdrOff, "debian-binary is %q, want \"2.x\\n\"", v)
			}
		case state == 1 && strings.HasPrefix(name, "control.tar"):
			if _, ok := decompressorFor(name, "control.tar"); !ok {
				return corruptf(a.hdrOff, "ar member %q: unsupported compression", name)
			}
		case state == 2 && strings.HasPrefix(name, "data.tar"):
			newDec, ok := decompressorFor(name, "data.tar")
			if !ok {
				return corruptf(a.hdrOff, "ar member %q: unsupported compression (want data.tar, .gz, .xz or .zst)", name)
			}
			if err := readData(ctx, body, newDec, maxData, fn); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		default:
			return corruptf(a.hdrOff, "unexpected ar member %q", name)
		}
		if !strings.HasPrefix(name, "_") {
			state++
		}
	}
	if state != 3 {
		return corruptf(a.off, "truncated: no %s member", [...]string{"debian-binary", "control.tar", "data.tar"}[state])
	}
	return nil
}

func isDebVersion(v []byte) bool {
	s, ok := bytes.CutPrefix(v, []byte("2."))
	if !ok || len(s) < 2 || s[len(s)-1] != '\n' {
		return false
	}
	for _, c := range s[:len(s)-1] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

type decompressor func(io.Reader) (io.ReadCloser, error)

// decompressorFor maps "data.tar.xz" etc. to a bounded decompressor.
func decompressorFor(name, base string) (decompressor, bool) {
	switch strings.TrimPrefix(name, base) {
	case "":
		return func(r io.Reader) (io.ReadCloser, error) { return io.NopCloser(r), nil }, true
	case ".gz":
		return func(r io.Reader) (io.ReadCloser, error) {
			z, err := gzip.NewReader(r)
			if err != nil {
				return nil, err
			}
			return z, nil
		}, true
	case ".xz":
		return func(r io.Reader) (io.ReadCloser, error) {
			x, err := xzdec.NewReader(r, xzdec.Config{MaxDict: maxXZDict})
			if err != nil {
				return nil, err
			}
			return io.NopCloser(x), nil
		}, true
	case ".zst":
		return func(r io.Reader) (io.ReadCloser, error) {
			z, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow), zstd.WithDecoderLowmem(true))
			if err != nil {
				return nil, err
			}
			return z.IOReadCloser(), nil
		}, true
	}
	return nil, false
}

// countLimit fails once more than max bytes came through.
type countLimit struct {
	r   io.Reader
	n   int64
	max int64
}

func (c *countLimit) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.max {
		return n, fmt.Errorf("%w: data.tar decompresses beyond %d bytes", ErrTooLarge, c.max)
	}
	return n, err
}

func readData(ctx context.Context, member io.Reader, newDec decompressor, maxData int64, fn func(debFile, io.Reader) error) error {
	dec, err := newDec(member)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	defer dec.Close()
	cl := &countLimit{r: dec, max: maxData}
	tr := tar.NewReader(cl)
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if n >= maxDebEntries {
			return fmt.Errorf("%w: more than %d entries", ErrTooLarge, maxDebEntries)
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return wrapData(err)
		}
		f, err := checkEntry(h)
		if err != nil {
			return err
		}
		if f.Name == "" {
			continue // the archive's root directory, "./"
		}
		if err := fn(f, &dataReader{tr}); err != nil {
			return err
		}
	}
	// Whatever follows the end-of-archive blocks must decompress cleanly
	// (the xz, gzip and zstd checks are verified at the end of the stream).
	if _, err := io.Copy(io.Discard, cl); err != nil {
		return wrapData(err)
	}
	return nil
}

// wrapData marks decompressor and tar errors as ErrCorrupt, keeping the
// message; sentinel and context errors pass through.
func wrapData(err error) error {
	switch {
	case errors.Is(err, ErrTooLarge), errors.Is(err, ErrCorrupt), errors.Is(err, ErrUnsafePath),
		errors.Is(err, ErrSpecialFile), errors.Is(err, ErrConflict),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, xzdec.ErrTooLarge), errors.Is(err, zstd.ErrWindowSizeExceeded), errors.Is(err, zstd.ErrDecoderSizeExceeded):
		return fmt.Errorf("%w: %v", ErrTooLarge, err)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fmt.Errorf("%w: truncated", ErrCorrupt)
	}
	return fmt.Errorf("%w: %v", ErrCorrupt, err)
}

// dataReader hands a file's contents to readDeb's callback with read
// errors (decompression, truncation) already marked, so the callback's
// own errors (a full disk) pass through unchanged.
type dataReader struct{ r io.Reader }

func (d *dataReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err != nil && err != io.EOF {
		err = wrapData(err)
	}
	return n, err
}

// checkEntry turns a tar header into a debFile, refusing what a root file
// system layer must not contain. The root entry ("./") comes back with an
// empty name.
func checkEntry(h *tar.Header) (debFile, error) {
	name, err := cleanName(h.Name)
	if err != nil {
		return debFile{}, err
	}
	f := debFile{Name: name, Mode: h.Mode & 0o7777}
	switch h.Typeflag {
	case tar.TypeDir:
		f.Kind = kindDir
	case tar.TypeReg:
		f.Kind, f.Size = kindReg, h.Size
	case tar.TypeSymlink:
		f.Kind, f.Link = kindSymlink, h.Linkname
		if h.Linkname == "" || strings.IndexByte(h.Linkname, 0) >= 0 {
			return debFile{}, fmt.Errorf("%w: symlink %s has target %q", ErrCorrupt, name, h.Linkname)
		}
	case tar.TypeLink:
		f.Kind = kindHardlink
		if f.Link, err = cleanName(h.Linkname); err != nil {
			return debFile{}, err
		}
		if f.Link == "" {
			return debFile{}, fmt.Errorf("%w: hard link %s -> %q", ErrUnsafePath, name, h.Linkname)
		}
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return debFile{}, fmt.Errorf("%w: %s (tar type %q); a root file system layer gets its device nodes from the container runtime", ErrSpecialFile, h.Name, h.Typeflag)
	default:
		return debFile{}, fmt.Errorf("%w: %s has unsupported tar type %q", ErrSpecialFile, h.Name, h.Typeflag)
	}
	if name == "" && f.Kind != kindDir {
		return debFile{}, fmt.Errorf("%w: %s %q", ErrUnsafePath, f.Kind, h.Name)
	}
	return f, nil
}

// cleanName turns "./usr/bin/x" or "usr/bin/x/" into "usr/bin/x". It
// refuses absolute names and empty, "." or ".." components; the root
// ("./" or ".") becomes "".
func cleanName(raw string) (string, error) {
	if strings.HasPrefix(raw, "/") {
		return "", fmt.Errorf("%w: %q", ErrUnsafePath, raw)
	}
	n := strings.TrimPrefix(raw, "./")
	n = strings.TrimSuffix(n, "/")
	if n == "" || n == "." {
		return "", nil
	}
	if strings.IndexByte(n, 0) >= 0 {
		return "", fmt.Errorf("%w: %q", ErrUnsafePath, raw)
	}
	for _, c := range strings.Split(n, "/") {
		if c == "" || c == "." || c == ".." {
			return "", fmt.Errorf("%w: %q", ErrUnsafePath, raw)
		}
	}
	return n, nil
}

// arReader reads a common ("!<arch>\n") ar archive as a stream.
type arReader struct {
	r      *bufio.Reader
	off    int64  // bytes consumed from r
	hdrOff int64  // offset of the current member's header
	cur    *arMem // current member, drained by next
}

type arMem struct {
	a    *arReader
	left int64
	odd  bool
}

// unexpectedEOF reports an ar archive that ends inside a member.
type unexpectedEOF struct{ off int64 }

func (e *unexpectedEOF) Error() string {
	return fmt.Sprintf("truncated at offset 0x%x", e.off)
}
func (e *unexpectedEOF) Unwrap() error { return ErrCorrupt }

func (m *arMem) Read(p []byte) (int, error) {
	if m.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > m.left {
		p = p[:m.left]
	}
	n, err := m.a.r.Read(p)
	m.left -= int64(n)
	m.a.off += int64(n)
	if err == io.EOF && m.left > 0 {
		return n, &unexpectedEOF{m.a.off}
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

func corruptf(off int64, format string, a ...any) error {
	return fmt.Errorf("%w: at offset 0x%x: %s", ErrCorrupt, off, fmt.Sprintf(format, a...))
}

func wrapRead(err error, off int64) error {
	if errors.Is(err, ErrCorrupt) {
		return err
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return &unexpectedEOF{off}
	}
	return err
}

func (a *arReader) readMagic() error {
	var m [8]byte
	n, err := io.ReadFull(a.r, m[:])
	a.off += int64(n)
	if err != nil || string(m[:]) != "!<arch>\n" {
		return corruptf(0, "not an ar archive")
	}
	return nil
}

// next skips the rest of the current member and reads the next header.
// It returns io.EOF at a clean end of the archive.
func (a *arReader) next() (string, io.Reader, error) {
	if m := a.cur; m != nil {
		if _, err := io.Copy(io.Discard, m); err != nil {
			return "", nil, err
		}
		if m.odd {
			if _, err := a.r.ReadByte(); err != nil {
				// dpkg-deb always pads; a missing final pad byte
				// is a truncated file.
				return "", nil, &unexpectedEOF{a.off}
			}
			a.off++
		}
		a.cur = nil
	}
	a.hdrOff = a.off
	var h [60]byte
	n, err := io.ReadFull(a.r, h[:])
	a.off += int64(n)
	if err == io.EOF {
		return "", nil, io.EOF
	}
	if err != nil {
		return "", nil, &unexpectedEOF{a.off}
	}
	if h[58] != '`' || h[59] != '\n' {
		return "", nil, corruptf(a.hdrOff, "bad ar member header")
	}
	name := strings.TrimRight(string(h[0:16]), " ")
	name = strings.TrimSuffix(name, "/") // GNU ar
	sizeField := strings.TrimRight(string(h[48:58]), " ")
	size, err := strconv.ParseInt(sizeField, 10, 64)
	if err != nil || size < 0 || name == "" || strings.ContainsAny(name, "/\x00") {
		return "", nil, corruptf(a.hdrOff, "bad ar member header (name %q, size %q)", name, sizeField)
	}
	a.cur = &arMem{a: a, left: size, odd: size%2 == 1}
	return name, a.cur, nil
}
