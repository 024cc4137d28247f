package userland

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// layerFormat changes whenever the tar Layer writes for a given lock and
// epoch changes (merge rules, synthesized entries, header fields), so that
// cached tars of the old format are not reused.
const layerFormat = "v1"

// GzipLevel is the compression level of the layer's gzip stream. The
// layer's digest depends on it (and on the Go toolchain's compress/gzip);
// its DiffID does not.
const GzipLevel = gzip.BestSpeed

// Layer returns the userland as one OCI layer: the data of every .deb in
// lock (which Fetch must have put into cacheDir), merged and completed as
// the package documentation describes, every entry stamped with epoch
// (seconds since 1970, e.g. SOURCE_DATE_EPOCH). The same lock and epoch give
// the same DiffID and, with the same Go toolchain, the same Digest.
//
// The uncompressed tar is cached as cacheDir/layers/<lock.Sum()>-<epoch>-<format>.tar
// with its DiffID beside it, so a second call only rehashes it.
func Layer(ctx context.Context, lock *Lock, cacheDir string, epoch int64) (v1.Layer, error) {
	for attempt := 0; ; attempt++ {
		p, diffID, err := LayerTar(ctx, lock, cacheDir, epoch)
		if err != nil {
			return nil, err
		}
		l, err := tarball.LayerFromFile(p, tarball.WithCompression(compression.GZip), tarball.WithCompressionLevel(GzipLevel))
		if err != nil {
			return nil, fmt.Errorf("userland: layer from %s: %w", p, err)
		}
		got, err := l.DiffID()
		if err != nil {
			return nil, fmt.Errorf("userland: layer from %s: %w", p, err)
		}
		if got == diffID {
			return l, nil
		}
		// The cached tar changed after it was written: rebuild it once.
		if attempt > 0 {
			return nil, fmt.Errorf("userland: %s has DiffID %s right after writing it with %s", p, got, diffID)
		}
		if err := errors.Join(os.Remove(p), os.Remove(p+".diffid")); err != nil {
			return nil, fmt.Errorf("userland: %w", err)
		}
	}
}

// LayerTar makes sure the layer's uncompressed tar is in the cache and
// returns its path and DiffID (its sha256), as recorded when it was
// written; Layer checks that the file still has it. The file must not be
// modified. Concurrent builds of one layer write identical files and rename
// them into place.
func LayerTar(ctx context.Context, lock *Lock, cacheDir string, epoch int64) (string, v1.Hash, error) {
	if err := lock.Validate(); err != nil {
		return "", v1.Hash{}, err
	}
	if epoch < 0 {
		return "", v1.Hash{}, fmt.Errorf("userland: epoch %d is before 1970", epoch)
	}
	dir := filepath.Join(cacheDir, "layers")
	base := filepath.Join(dir, fmt.Sprintf("%s-%d-%s.tar", lock.Sum(), epoch, layerFormat))
	if h, err := readDiffID(base); err == nil {
		if _, err := os.Stat(base); err == nil {
			return base, h, nil
		}
	}
	if err := mkdirAll(dir); err != nil {
		return "", v1.Hash{}, fmt.Errorf("userland: %w", err)
	}
	work, err := os.MkdirTemp(dir, ".build-")
	if err != nil {
		return "", v1.Hash{}, fmt.Errorf("userland: %w", err)
	}
	defer os.RemoveAll(work)

	tree, spools, err := collect(ctx, lock, cacheDir, work)
	if err != nil {
		return "", v1.Hash{}, err
	}
	defer func() {
		for _, f := range spools {
			f.Close()
		}
	}()

	tmp, err := os.CreateTemp(dir, ".layer-*.tar")
	if err != nil {
		return "", v1.Hash{}, fmt.Errorf("userland: %w", err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name()) // fails harmlessly once renamed
	}()
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(tmp, h), 1<<20)
	if err := tree.write(ctx, bw, spools, epoch); err != nil {
		return "", v1.Hash{}, fmt.Errorf("userland: writing layer: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return "", v1.Hash{}, fmt.Errorf("userland: writing layer: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return "", v1.Hash{}, fmt.Errorf("userland: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", v1.Hash{}, fmt.Errorf("userland: writing layer: %w", err)
	}
	diffID := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	if err := os.Rename(tmp.Name(), base); err != nil {
		return "", v1.Hash{}, fmt.Errorf("userland: %w", err)
	}
	if err := writeFileAtomic(base+".diffid", []byte(diffID.String()+"\n")); err != nil {
		return "", v1.Hash{}, fmt.Errorf("userland: %w", err)
	}
	return base, diffID, nil
}

func readDiffID(tarPath string) (v1.Hash, error) {
	b, err := os.ReadFile(tarPath + ".diffid")
	if err != nil {
		return v1.Hash{}, err
	}
	return v1.NewHash(strings.TrimSpace(string(b)))
}

func writeFileAtomic(p string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// blob is a regular file's contents in a spool file. Names that share a
// blob are hard links of each other.
type blob struct {
	spool     int
	off, size int64
	mode      int64
}

// node is one path of the merged tree.
type node struct {
	kind fileKind // kindDir, kindReg or kindSymlink
	mode int64    // directories
	link string   // symlinks
	blob *blob    // regular files
	data string   // regular files with blob.spool < 0: synthesized contents
	pkg  string   // the package that shipped it, or "" when synthesized
	orig string   // its name in the package, before the merged-/usr rewrite
}

type item struct {
	name string
	n    node
}

// tree is the merged file system: path -> node, no leading "/".
type tree map[string]*node

// collect reads every package (several at once, each into its worker's
// spool file) and merges them in lock order.
func collect(ctx context.Context, lock *Lock, cacheDir, work string) (tree, []*os.File, error) {
	workers := min(runtime.GOMAXPROCS(0), 8, len(lock.Entries))
	spools := make([]*os.File, workers)
	for i := range spools {
		f, err := os.Create(filepath.Join(work, fmt.Sprintf("spool-%d", i)))
		if err != nil {
			closeAll(spools)
			return nil, nil, fmt.Errorf("userland: %w", err)
		}
		spools[i] = f
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var total atomic.Int64
	items := make([][]item, len(lock.Entries))
	errs := make([]error, len(lock.Entries))
	flushErrs := make([]error, workers)
	sps := make([]*spool, workers)
	for w := range sps {
		sps[w] = &spool{f: spools[w], idx: w}
	}
	inParallel(ctx, len(lock.Entries), workers, func(w, i int) {
		items[i], errs[i] = readPackage(ctx, lock.Entries[i], cacheDir, sps[w], &total)
		if errs[i] != nil {
			cancel() // the others stop at their next entry
		}
	}, func(w int) { flushErrs[w] = sps[w].flush() })
	fail := func(err error) (tree, []*os.File, error) {
		closeAll(spools)
		return nil, nil, err
	}
	if err := parent.Err(); err != nil {
		return fail(fmt.Errorf("userland: %w", err))
	}
	// The first failure in lock order that is not just the cancellation
	// another failure caused.
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return fail(err)
		}
	}
	for _, err := range flushErrs {
		if err != nil {
			return fail(fmt.Errorf("userland: spool: %w", err))
		}
	}
	t := tree{}
	for i, its := range items {
		if err := t.merge(its); err != nil {
			return fail(fmt.Errorf("userland: %s %s: %w", lock.Entries[i].Name, lock.Entries[i].Version, err))
		}
	}
	if err := t.complete(); err != nil {
		return fail(fmt.Errorf("userland: %w", err))
	}
	return t, spools, nil
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}

// spool appends file contents to one worker's spool file.
type spool struct {
	f   *os.File
	w   *bufio.Writer
	idx int
	off int64
}

func (s *spool) add(r io.Reader, size int64) (*blob, error) {
	if s.w == nil {
		s.w = bufio.NewWriterSize(s.f, 1<<20)
	}
	n, err := io.Copy(s.w, r)
	if err != nil {
		return nil, err
	}
	if n != size {
		return nil, fmt.Errorf("%w: file has %d bytes, header says %d", ErrCorrupt, n, size)
	}
	b := &blob{spool: s.idx, off: s.off, size: size}
	s.off += size
	return b, nil
}

func (s *spool) flush() error {
	if s.w == nil {
		return nil
	}
	return s.w.Flush()
}

// mergeUsr maps a package path to where it lands on a merged-/usr system.
func mergeUsr(name string) string {
	top, _, _ := strings.Cut(name, "/")
	if slices.Contains(mergedDirs, top) {
		return "usr/" + name
	}
	return name
}

// readPackage reads one cached .deb into items, in archive order, checking
// its size and SHA-256 against the lock as it goes.
func readPackage(ctx context.Context, e Entry, cacheDir string, sp *spool, total *atomic.Int64) ([]item, error) {
	p := debPath(cacheDir, e)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("userland: %s %s is not in the cache (%s); run Fetch first", e.Name, e.Version, p)
	}
	if err != nil {
		return nil, fmt.Errorf("userland: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	cr := &countReader{r: io.TeeReader(io.LimitReader(f, e.Size+1), h)}
	var items []item
	regular := map[string]*blob{} // package paths of regular files, for hard links
	err = readDeb(ctx, cr, MaxDebData, func(df debFile, body io.Reader) error {
		it := item{name: mergeUsr(df.Name), n: node{kind: df.Kind, pkg: e.Name, orig: df.Name}}
		delete(regular, df.Name)
		switch df.Kind {
		case kindDir:
			it.n.mode = df.Mode
		case kindSymlink:
			it.n.link = df.Link
		case kindReg:
			if total.Add(df.Size) > MaxLayerBytes {
				return fmt.Errorf("%w: the packages' files add up to more than %d bytes", ErrTooLarge, int64(MaxLayerBytes))
			}
			b, err := sp.add(body, df.Size)
			if err != nil {
				return fmt.Errorf("%s: %w", df.Name, err)
			}
			b.mode = df.Mode
			it.n.blob = b
			regular[df.Name] = b
		case kindHardlink:
			b := regular[df.Link]
			if b == nil {
				return fmt.Errorf("%w: hard link %s -> %s: no regular file of that name earlier in the package", ErrUnsafePath, df.Name, df.Link)
			}
			it.n.kind, it.n.blob = kindReg, b
			regular[df.Name] = b
		}
		items = append(items, it)
		return nil
	})
	if errors.Is(err, context.Canceled) {
		return nil, err
	}
	// Hash the whole file even when it did not parse: a damaged cache
	// file is a hash mismatch, a package that does not parse though it
	// has the pinned hash is corrupt upstream.
	if _, cerr := io.Copy(io.Discard, cr); cerr != nil {
		return nil, fmt.Errorf("userland: %s: %w", p, cerr)
	}
	if got := hex.EncodeToString(h.Sum(nil)); cr.n != e.Size || got != e.SHA256 {
		return nil, fmt.Errorf("userland: %s %s: %w: cached %s has %d bytes with sha256 %s, lock pins %d bytes with sha256 %s; run Fetch to replace it", e.Name, e.Version, ErrHashMismatch, p, cr.n, got, e.Size, e.SHA256)
	}
	if err != nil {
		return nil, fmt.Errorf("userland: %s %s (%s): %w", e.Name, e.Version, p, err)
	}
	return items, nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// merge adds one package's entries: a directory seen again keeps its
// first entry, a file, symlink or hard link replaces what an earlier
// package (or an earlier entry of this one) shipped at that path. A
// directory and a non-directory at one path, or one file shipped under both
// /X and /usr/X, is an ErrConflict.
func (t tree) merge(items []item) error {
	for _, it := range items {
		n := it.n
		old := t[it.name]
		switch {
		case old == nil:
		case old.kind == kindDir && n.kind == kindDir:
			continue
		case old.kind == kindDir || n.kind == kindDir:
			return fmt.Errorf("%w: /%s is a %s in %s and a %s in %s", ErrConflict, it.name, old.kind, old.pkg, n.kind, n.pkg)
		case old.orig != n.orig:
			return fmt.Errorf("%w: %s ships /%s and %s ships /%s, the same file on a merged-/usr system", ErrConflict, old.pkg, old.orig, n.pkg, n.orig)
		}
		t[it.name] = &n
	}
	return nil
}

// complete adds the synthesized entries and any missing parent
// directories, then checks that no path lies below a non-directory.
func (t tree) complete() error {
	for _, s := range synthesized {
		if s.needs != "" && t[s.needs] == nil {
			continue
		}
		if old := t[s.path]; old != nil {
			if s.when == ifAbsent {
				continue
			}
			if (old.kind == kindDir) != (s.kind == kindDir) {
				return fmt.Errorf("%w: /%s: %s shipped a %s where the layer needs a %s", ErrConflict, s.path, old.pkg, old.kind, s.kind)
			}
		}
		n := &node{kind: s.kind, mode: s.mode, link: s.link}
		if s.kind == kindReg {
			if s.copy != "" {
				src := t[s.copy]
				if src == nil || src.kind != kindReg {
					continue
				}
				c := *src.blob // a copy, not a hard link
				c.mode = s.mode
				n.blob = &c
			} else {
				n.blob = &blob{spool: -1, size: int64(len(s.data)), mode: s.mode}
				n.data = s.data
			}
		}
		t[s.path] = n
	}
	for _, name := range slices.Sorted(maps.Keys(t)) {
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			switch p := t[d]; {
			case p == nil:
				t[d] = &node{kind: kindDir, mode: 0o755}
			case p.kind != kindDir:
				return fmt.Errorf("%w: /%s (from %s) lies below /%s, a %s (from %s)", ErrUnsafePath, name, pkgName(t[name]), d, p.kind, pkgName(p))
			}
		}
	}
	return nil
}

func pkgName(n *node) string {
	if n.pkg == "" {
		return "the synthesized entries"
	}
	return n.pkg
}

// write writes the tree as a tar in byte order of the names. Of names
// sharing a blob the first one holds the contents and the others are hard
// links to it.
func (t tree) write(ctx context.Context, w io.Writer, spools []*os.File, epoch int64) error {
	tw := tar.NewWriter(w)
	mtime := time.Unix(epoch, 0)
	first := map[*blob]string{}
	buf := make([]byte, 256<<10)
	for _, name := range slices.Sorted(maps.Keys(t)) {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := t[name]
		h := &tar.Header{Name: name, ModTime: mtime, Format: tar.FormatPAX}
		switch n.kind {
		case kindDir:
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, name+"/", n.mode&0o777
			if stickyDirs[name] && n.mode&0o1000 != 0 {
				h.Mode |= 0o1000
			}
		case kindSymlink:
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, n.link, 0o777
		case kindReg:
			h.Mode = n.blob.mode & 0o777
			if f, ok := first[n.blob]; ok {
				h.Typeflag, h.Linkname = tar.TypeLink, f
				break
			}
			first[n.blob] = name
			h.Typeflag, h.Size = tar.TypeReg, n.blob.size
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("/%s: %w", name, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		var r io.Reader
		if n.blob.spool < 0 {
			r = strings.NewReader(n.data)
		} else {
			r = io.NewSectionReader(spools[n.blob.spool], n.blob.off, n.blob.size)
		}
		if m, err := io.CopyBuffer(tw, r, buf); err != nil || m != h.Size {
			return fmt.Errorf("/%s: copied %d of %d bytes: %v", name, m, h.Size, err)
		}
	}
	return tw.Close()
}
