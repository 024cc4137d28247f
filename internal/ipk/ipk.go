// Package ipk reads OpenWrt .ipk packages (opkg, OpenWrt 24.10 and
// earlier).
//
// An ipk is a gzip-compressed tar archive (the ipkg-build layout) or, in
// older packages, an ar archive, holding debian-binary, control.tar.gz and
// data.tar.gz; member names may carry a "./" prefix. Read checks every
// member as it streams: paths that could escape an extraction root, device
// nodes and other special files, and sizes beyond Limits are refused, so a
// decompression bomb stops as soon as it passes a limit.
package ipk

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
	"strconv"
	"strings"

	"github.com/klauspost/compress/gzip"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrCorrupt reports a package that is not a well-formed ipk.
	ErrCorrupt = errors.New("corrupt package")
	// ErrUnsafePath reports an absolute path, a ".." component or a hard
	// link to something outside the package.
	ErrUnsafePath = errors.New("unsafe path")
	// ErrSpecialFile reports a device node, fifo or other special file.
	ErrSpecialFile = errors.New("device node or special file")
	// ErrTooLarge reports a size or count beyond Limits.
	ErrTooLarge = errors.New("limit exceeded")
	// ErrHashMismatch reports a package whose SHA-256 is not the pinned one.
	ErrHashMismatch = errors.New("sha256 mismatch")
)

// Limits bound what Read accepts. Zero fields take the defaults.
type Limits struct {
	MaxPackageBytes int64 // the .ipk file itself; default 64 MiB
	MaxDataBytes    int64 // data.tar after decompression, headers included; default 256 MiB
	MaxFiles        int   // entries in data.tar; default 20000
	MaxControlBytes int64 // control.tar after decompression; default 1 MiB
}

func (l Limits) withDefaults() Limits {
	if l.MaxPackageBytes <= 0 {
		l.MaxPackageBytes = 64 << 20
	}
	if l.MaxDataBytes <= 0 {
		l.MaxDataBytes = 256 << 20
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = 20000
	}
	if l.MaxControlBytes <= 0 {
		l.MaxControlBytes = 1 << 20
	}
	return l
}

// Field is one field of the control file. Continuation lines are joined to
// Value with "\n", each without its single leading space or tab.
type Field struct {
	Name  string
	Value string
}

// Control is the parsed control file, fields in file order.
type Control struct {
	Fields []Field
}

// Get returns the value of the named field, matching names without regard
// to case as Debian does, or "" if it is absent.
func (c Control) Get(name string) string {
	for _, f := range c.Fields {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// List splits a comma-separated field such as Depends into trimmed items.
func (c Control) List(name string) []string {
	var out []string
	for _, s := range strings.Split(c.Get(name), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// ControlFile is a member of control.tar.gz (control, conffiles, postinst, ...).
type ControlFile struct {
	Name string
	Mode fs.FileMode
	Data []byte
}

// FileEntry describes one entry of data.tar.gz.
type FileEntry struct {
	Path     string      // slash-separated, relative, cleaned; no "./" prefix
	Mode     fs.FileMode // type and permission bits
	Size     int64       // regular files
	Linkname string      // symlink target as stored, or hard link target path
	Hardlink bool        // Linkname names an earlier regular file of the package
	SHA256   string      // hex, regular files
	UID, GID int
	ModTime  int64 // seconds since the epoch
}

// Package is a parsed ipk.
type Package struct {
	Control      Control
	ControlFiles []ControlFile
	Files        []FileEntry // in archive order, the package root excluded
	Format       string      // "tar.gz" (ipkg-build) or "ar"

	data []byte // data.tar.gz as stored
	lim  Limits
}

// Name, Version and Architecture return the control fields of that name.
func (p *Package) Name() string         { return p.Control.Get("Package") }
func (p *Package) Version() string      { return p.Control.Get("Version") }
func (p *Package) Architecture() string { return p.Control.Get("Architecture") }

// Read parses an ipk from r, reading at most lim.MaxPackageBytes; it stops
// early when ctx is done.
func Read(ctx context.Context, r io.Reader, lim Limits) (*Package, error) {
	return read(ctx, r, lim)
}

// Open verifies that the file at path has the SHA-256 wantSHA256 (hex)
// and only then parses it, so an unpinned file is never parsed.
func Open(ctx context.Context, name, wantSHA256 string, lim Limits) (*Package, error) {
	lim = lim.withDefaults()
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("ipk: %w", err)
	}
	defer f.Close()
	if err := verify(ctx, f, name, wantSHA256, lim.MaxPackageBytes); err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("ipk: %s: %w", name, err)
	}
	p, err := read(ctx, f, lim)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return p, nil
}

// ReadVerified reads the whole package from r into memory (at most
// lim.MaxPackageBytes), checks its SHA-256, then parses it.
func ReadVerified(ctx context.Context, r io.Reader, wantSHA256 string, lim Limits) (*Package, error) {
	lim = lim.withDefaults()
	b, err := io.ReadAll(io.LimitReader(r, lim.MaxPackageBytes+1))
	if err != nil {
		return nil, fmt.Errorf("ipk: reading package: %w", err)
	}
	if int64(len(b)) > lim.MaxPackageBytes {
		return nil, fmt.Errorf("ipk: %w: package larger than %d bytes", ErrTooLarge, lim.MaxPackageBytes)
	}
	if err := verify(ctx, bytes.NewReader(b), "package", wantSHA256, lim.MaxPackageBytes); err != nil {
		return nil, err
	}
	return read(ctx, bytes.NewReader(b), lim)
}

// VerifyFile checks that the file at name has the SHA-256 wantSHA256.
func VerifyFile(ctx context.Context, name, wantSHA256 string) error {
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("ipk: %w", err)
	}
	defer f.Close()
	return verify(ctx, f, name, wantSHA256, Limits{}.withDefaults().MaxPackageBytes)
}

func verify(ctx context.Context, r io.Reader, name, want string, max int64) error {
	want = strings.ToLower(want)
	if len(want) != 64 || strings.Trim(want, "0123456789abcdef") != "" {
		return fmt.Errorf("ipk: %s: pinned sha256 %q is not 64 hex digits", name, want)
	}
	h := sha256.New()
	buf := make([]byte, 64<<10)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		k, err := r.Read(buf)
		h.Write(buf[:k])
		if n += int64(k); n > max {
			return fmt.Errorf("ipk: %s: %w: larger than %d bytes", name, ErrTooLarge, max)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("ipk: reading %s: %w", name, err)
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("ipk: %s: %w: got %s, pinned %s", name, ErrHashMismatch, got, want)
	}
	return nil
}

func corruptf(format string, a ...any) error {
	return fmt.Errorf("ipk: %w: %s", ErrCorrupt, fmt.Sprintf(format, a...))
}

// limitedReader fails with ErrTooLarge instead of stopping at the limit, so
// a truncated read is never mistaken for the end of the data.
type limitedReader struct {
	r    io.Reader
	left int64
	what string
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// Probe: EOF exactly at the limit is fine.
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			return 0, fmt.Errorf("ipk: %s: %w", l.what, ErrTooLarge)
		}
		return 0, err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

var (
	gzipMagic = []byte{0x1f, 0x8b}
	arMagic   = []byte("!<arch>\n")
)

func read(ctx context.Context, r io.Reader, lim Limits) (*Package, error) {
	lim = lim.withDefaults()
	br := bufio.NewReader(&limitedReader{r: r, left: lim.MaxPackageBytes, what: fmt.Sprintf("package larger than %d bytes", lim.MaxPackageBytes)})
	head, _ := br.Peek(512)
	p := &Package{lim: lim}
	m := members{}
	var err error
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		p.Format = "tar.gz"
		err = readOuterTarGz(ctx, br, lim, &m)
	case bytes.HasPrefix(head, arMagic):
		p.Format = "ar"
		err = readAr(ctx, br, lim, &m)
	case len(head) >= 263 && string(head[257:262]) == "ustar":
		p.Format = "tar"
		err = readOuterTar(ctx, tar.NewReader(br), lim, &m)
	default:
		return nil, corruptf("not a gzip, tar or ar archive")
	}
	if err != nil {
		return nil, err
	}
	if m.debianBinary == nil || m.control == nil || m.data == nil {
		var missing []string
		for name, b := range map[string][]byte{"debian-binary": m.debianBinary, "control.tar.gz": m.control, "data.tar.gz": m.data} {
			if b == nil {
				missing = append(missing, name)
			}
		}
		return nil, corruptf("missing member %s", strings.Join(missing, ", "))
	}
	if v := strings.TrimSpace(string(m.debianBinary)); v != "2.0" {
		return nil, corruptf("debian-binary says %q, want 2.0", v)
	}
	if err := p.readControl(m.control); err != nil {
		return nil, err
	}
	p.data = m.data
	if err := p.walkData(ctx, nil, func(e FileEntry) {
		p.Files = append(p.Files, e)
	}); err != nil {
		return nil, err
	}
	return p, nil
}

type members struct {
	debianBinary, control, data []byte
}

// add stores one member of the outer archive; r yields its size bytes.
func (m *members) add(name string, size int64, r io.Reader, lim Limits) error {
	clean, err := cleanPath(name)
	if err != nil {
		return fmt.Errorf("ipk: outer archive: %w", err)
	}
	var dst *[]byte
	var max int64
	switch clean {
	case "debian-binary":
		dst, max = &m.debianBinary, 64
	case "control.tar.gz":
		dst, max = &m.control, lim.MaxControlBytes
	case "data.tar.gz":
		dst, max = &m.data, lim.MaxPackageBytes
	default:
		return corruptf("outer archive: unexpected member %q", name)
	}
	if *dst != nil {
		return corruptf("outer archive: member %q appears twice", name)
	}
	if size < 0 || size > max {
		return fmt.Errorf("ipk: outer archive: member %q: %w: %d bytes, limit %d", name, ErrTooLarge, size, max)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("ipk: outer archive: reading %q: %w", name, unexpected(err))
	}
	*dst = b
	return nil
}

func unexpected(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: truncated", ErrCorrupt)
	}
	return err
}

func readOuterTarGz(ctx context.Context, r io.Reader, lim Limits, m *members) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return corruptf("outer gzip: %v", err)
	}
	zr.Multistream(false)
	// The outer tar holds the compressed members, so it cannot be much
	// larger than the package.
	lr := &limitedReader{r: zr, left: lim.MaxPackageBytes + 64<<10, what: "outer archive decompresses beyond the package limit"}
	if err := readOuterTar(ctx, tar.NewReader(lr), lim, m); err != nil {
		return err
	}
	// Reading to the end checks the gzip trailer.
	if _, err := io.Copy(io.Discard, lr); err != nil {
		if errors.Is(err, ErrTooLarge) {
			return err
		}
		return corruptf("outer gzip: %v", err)
	}
	return nil
}

func readOuterTar(ctx context.Context, tr *tar.Reader, lim Limits, m *members) error {
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if n > 16 {
			return corruptf("outer archive has more than 16 entries")
		}
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if errors.Is(err, ErrTooLarge) {
				return err
			}
			return corruptf("outer archive: %v", err)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if c, err := cleanPath(h.Name); err != nil {
				return fmt.Errorf("ipk: outer archive: %w", err)
			} else if c != "" {
				return corruptf("outer archive: unexpected directory %q", h.Name)
			}
			continue
		case tar.TypeReg:
		default:
			return corruptf("outer archive: member %q has tar type %q", h.Name, h.Typeflag)
		}
		if err := m.add(h.Name, h.Size, tr, lim); err != nil {
			return err
		}
	}
}

func readAr(ctx context.Context, r io.Reader, lim Limits, m *members) error {
	var magic [8]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return corruptf("ar header: %v", err)
	}
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if n > 16 {
			return corruptf("ar archive has more than 16 members")
		}
		var h [60]byte
		k, err := io.ReadFull(r, h[:])
		if k == 0 && err == io.EOF {
			return nil
		}
		if err != nil {
			return corruptf("ar member header: %v", err)
		}
		if string(h[58:60]) != "`\n" {
			return corruptf("ar member %d: bad header magic", n)
		}
		name := strings.TrimRight(strings.TrimSpace(string(h[0:16])), "/")
		size, err := strconv.ParseInt(strings.TrimSpace(string(h[48:58])), 10, 64)
		if err != nil || size < 0 {
			return corruptf("ar member %q: bad size %q", name, strings.TrimSpace(string(h[48:58])))
		}
		if err := m.add(name, size, r, lim); err != nil {
			return err
		}
		if size%2 == 1 {
			var pad [1]byte
			if _, err := io.ReadFull(r, pad[:]); err != nil && err != io.EOF {
				return corruptf("ar padding: %v", err)
			}
		}
	}
}

// cleanPath turns an archive path into a clean relative path ("" for the
// root) or refuses it.
func cleanPath(name string) (string, error) {
	p := strings.TrimPrefix(name, "./")
	p = strings.TrimSuffix(p, "/")
	if p == "." || p == "" {
		return "", nil
	}
	if strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("%w: %q", ErrUnsafePath, name)
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return "", fmt.Errorf("%w: %q", ErrUnsafePath, name)
		}
	}
	if path.Clean(p) != p {
		return "", fmt.Errorf("%w: %q is not a clean path", ErrUnsafePath, name)
	}
	return p, nil
}

func (p *Package) readControl(gz []byte) error {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return corruptf("control.tar.gz: %v", err)
	}
	tr := tar.NewReader(&limitedReader{r: zr, left: p.lim.MaxControlBytes, what: fmt.Sprintf("control.tar.gz decompresses beyond %d bytes", p.lim.MaxControlBytes)})
	var control []byte
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, ErrTooLarge) {
				return err
			}
			return corruptf("control.tar.gz: %v", err)
		}
		name, err := cleanPath(h.Name)
		if err != nil {
			return fmt.Errorf("ipk: control.tar.gz: %w", err)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if name != "" {
				return corruptf("control.tar.gz: unexpected directory %q", h.Name)
			}
			continue
		case tar.TypeReg:
		default:
			return fmt.Errorf("ipk: control.tar.gz: %q: %w: tar type %q", h.Name, ErrSpecialFile, h.Typeflag)
		}
		if strings.Contains(name, "/") {
			return corruptf("control.tar.gz: unexpected nested file %q", h.Name)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			if errors.Is(err, ErrTooLarge) {
				return err
			}
			return corruptf("control.tar.gz: %q: %v", h.Name, err)
		}
		for _, f := range p.ControlFiles {
			if f.Name == name {
				return corruptf("control.tar.gz: %q appears twice", name)
			}
		}
		p.ControlFiles = append(p.ControlFiles, ControlFile{Name: name, Mode: h.FileInfo().Mode(), Data: b})
		if name == "control" {
			control = b
		}
	}
	if control == nil {
		return corruptf("control.tar.gz has no control file")
	}
	c, err := ParseControl(control)
	if err != nil {
		return err
	}
	p.Control = c
	return nil
}

// ParseControl parses a Debian-style control paragraph as opkg writes it.
func ParseControl(b []byte) (Control, error) {
	var c Control
	lines := strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
	ended := false
	for i, l := range lines {
		switch {
		case strings.TrimSpace(l) == "":
			ended = len(c.Fields) > 0
		case ended:
			return Control{}, corruptf("control line %d: text after the first paragraph", i+1)
		case l[0] == ' ' || l[0] == '\t':
			if len(c.Fields) == 0 {
				return Control{}, corruptf("control line %d: continuation before any field", i+1)
			}
			f := &c.Fields[len(c.Fields)-1]
			f.Value += "\n" + l[1:]
		default:
			name, value, ok := strings.Cut(l, ":")
			if !ok || name == "" || strings.ContainsAny(name, " \t") {
				return Control{}, corruptf("control line %d: %q is not a field", i+1, l)
			}
			if c.Get(name) != "" {
				return Control{}, corruptf("control line %d: field %s appears twice", i+1, name)
			}
			c.Fields = append(c.Fields, Field{Name: name, Value: strings.TrimSpace(value)})
		}
	}
	if c.Get("Package") == "" || c.Get("Version") == "" {
		return Control{}, corruptf("control file lacks Package or Version")
	}
	return c, nil
}

// WalkData streams data.tar.gz again, calling fn for every entry in archive
// order with a reader for regular files' contents (nil otherwise). The
// same checks as Read apply.
// The entry's SHA256 is the one Read computed; the contents are hashed
// again while streaming and a mismatch fails the walk.
func (p *Package) WalkData(ctx context.Context, fn func(FileEntry, io.Reader) error) error {
	return p.walkData(ctx, fn, nil)
}

// ReadFile returns the contents of the regular file at path in data.tar.gz.
func (p *Package) ReadFile(ctx context.Context, name string) ([]byte, error) {
	var out []byte
	found := false
	err := p.walkData(ctx, func(e FileEntry, r io.Reader) error {
		if e.Path != name || r == nil {
			return nil
		}
		b, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		out, found = b, true
		return errStop
	}, nil)
	if err != nil && err != errStop {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("ipk: %s: %w", name, fs.ErrNotExist)
	}
	return out, nil
}

var errStop = errors.New("stop")

// walkData parses data.tar.gz. fn, if set, sees each entry before its
// contents are read; done, if set, sees it afterwards with SHA256 filled.
func (p *Package) walkData(ctx context.Context, fn func(FileEntry, io.Reader) error, done func(FileEntry)) error {
	zr, err := gzip.NewReader(bytes.NewReader(p.data))
	if err != nil {
		return corruptf("data.tar.gz: %v", err)
	}
	zr.Multistream(false)
	lr := &limitedReader{r: zr, left: p.lim.MaxDataBytes, what: fmt.Sprintf("data.tar.gz decompresses beyond %d bytes", p.lim.MaxDataBytes)}
	tr := tar.NewReader(lr)
	seen := map[string]byte{} // path -> tar type
	h256 := sha256.New()
	idx := 0 // index into p.Files of the next non-root entry
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			// Reading to the end checks the gzip trailer.
			if _, err := io.Copy(io.Discard, lr); err != nil {
				if errors.Is(err, ErrTooLarge) {
					return err
				}
				return corruptf("data.tar.gz: %v", unexpected(err))
			}
			return nil
		}
		if err != nil {
			if errors.Is(err, ErrTooLarge) {
				return err
			}
			return corruptf("data.tar.gz: %v", unexpected(err))
		}
		if n >= p.lim.MaxFiles {
			return fmt.Errorf("ipk: data.tar.gz: %w: more than %d entries", ErrTooLarge, p.lim.MaxFiles)
		}
		name, err := cleanPath(h.Name)
		if err != nil {
			return fmt.Errorf("ipk: data.tar.gz: %w", err)
		}
		e := FileEntry{Path: name, Mode: h.FileInfo().Mode(), UID: h.Uid, GID: h.Gid, ModTime: h.ModTime.Unix()}
		var body io.Reader
		switch h.Typeflag {
		case tar.TypeReg:
			if h.Size < 0 || h.Size > lr.left {
				return fmt.Errorf("ipk: data.tar.gz: %q: %w: %d bytes, %d left of the data limit", h.Name, ErrTooLarge, h.Size, lr.left)
			}
			e.Size = h.Size
			body = tr
		case tar.TypeDir:
		case tar.TypeSymlink:
			if h.Linkname == "" || strings.ContainsRune(h.Linkname, 0) {
				return corruptf("data.tar.gz: symlink %q has target %q", h.Name, h.Linkname)
			}
			e.Linkname = h.Linkname
		case tar.TypeLink:
			target, err := cleanPath(h.Linkname)
			if err != nil || target == "" {
				return fmt.Errorf("ipk: data.tar.gz: hard link %q -> %q: %w", h.Name, h.Linkname, ErrUnsafePath)
			}
			if seen[target] != tar.TypeReg {
				return fmt.Errorf("ipk: data.tar.gz: hard link %q -> %q: %w: target is not an earlier regular file", h.Name, h.Linkname, ErrUnsafePath)
			}
			e.Linkname, e.Hardlink = target, true
			e.Mode &^= fs.ModeType
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			return fmt.Errorf("ipk: data.tar.gz: %q: %w (tar type %q)", h.Name, ErrSpecialFile, h.Typeflag)
		default:
			return corruptf("data.tar.gz: %q: unsupported tar type %q", h.Name, h.Typeflag)
		}
		if name == "" {
			if h.Typeflag != tar.TypeDir {
				return corruptf("data.tar.gz: package root is not a directory")
			}
			continue
		}
		if prev, ok := seen[name]; ok && !(prev == tar.TypeDir && h.Typeflag == tar.TypeDir) {
			return corruptf("data.tar.gz: %q appears twice", name)
		}
		seen[name] = h.Typeflag
		if h.Typeflag == tar.TypeLink {
			seen[name] = tar.TypeReg
		}
		var known string
		if done == nil && idx < len(p.Files) {
			known = p.Files[idx].SHA256
			e.SHA256 = known
		}
		idx++
		if body != nil {
			// Hash while the callback reads; whatever it leaves is hashed
			// after, so SHA256 always covers the whole file.
			h256.Reset()
			tee := io.TeeReader(io.LimitReader(tr, h.Size), h256)
			if fn != nil {
				if err := fn(e, tee); err != nil {
					return err
				}
			}
			if _, err := io.Copy(io.Discard, tee); err != nil {
				if errors.Is(err, ErrTooLarge) {
					return err
				}
				return corruptf("data.tar.gz: %q: %v", h.Name, unexpected(err))
			}
			e.SHA256 = hex.EncodeToString(h256.Sum(nil))
			if known != "" && known != e.SHA256 {
				return corruptf("data.tar.gz: %q changed since the package was read", h.Name)
			}
		} else if fn != nil {
			if err := fn(e, nil); err != nil {
				return err
			}
		}
		if done != nil {
			done(e)
		}
	}
}
