package container

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Cache is a content-addressed store of pulled images: one OCI image layout
// (https://github.com/opencontainers/image-spec/blob/main/image-layout.md)
// under Dir, blobs named by their SHA-256, shared by every image.
//
//	Dir/oci-layout
//	Dir/index.json          one entry per cached image manifest
//	Dir/blobs/sha256/<hex>  manifests, configs, layers (compressed, as pulled)
//	Dir/.lock               serializes index.json updates between processes
//
// Each index.json entry carries two annotations: ref.name
// "torwrt-sha256-<manifest hex>" (the name podman's oci: transport reads)
// and AnnotationPinned, the digest the caller pinned (an image index digest
// when the pinned reference is a multi-platform index).
type Cache struct {
	Dir      string
	Progress io.Writer // may be nil
	// Insecure allows plain-http registries, and only on loopback
	// addresses (127.0.0.1, ::1, localhost): for in-process test registries.
	Insecure bool
	// Mirrors maps a registry named in pinned references to the host that
	// actually serves it: the simulated ImageBuilder's in-process registry
	// listens on a random port, while locks and attestations name it by
	// one fixed host, so they do not change from run to run. The digest is
	// verified all the same.
	Mirrors map[string]string
}

// Image is an image in the cache.
type Image struct {
	Ref string // the pinned reference it was pulled as
	// Digest is the image manifest digest (sha256:...). It equals the pinned
	// digest unless the pin names a multi-platform index, in which case it is
	// the linux/GOARCH manifest the index lists.
	Digest     string
	LayoutDir  string // OCI layout holding it (the Cache's Dir)
	User       string
	WorkingDir string
	Env        []string
	// ConfigDigest is the config blob digest: the image ID podman and docker
	// give the image once loaded.
	ConfigDigest string
	// Size is the total compressed size of the layers.
	Size int64
}

// Annotations the cache writes into index.json.
const (
	AnnotationRefName = "org.opencontainers.image.ref.name"
	AnnotationPinned  = "io.torwrt.pinned-digest"
	AnnotationRef     = "io.torwrt.ref"
)

// ErrNotCached is returned by Load for an image the cache does not hold.
var ErrNotCached = errors.New("image not in cache")

// layoutRefName is the ref.name annotation of a cached manifest.
func layoutRefName(manifestDigest string) string {
	return "torwrt-" + strings.ReplaceAll(manifestDigest, ":", "-")
}

func (c *Cache) progressf(format string, args ...any) {
	if c.Progress != nil {
		fmt.Fprintf(c.Progress, format, args...)
	}
}

func (c *Cache) checkDir() error {
	if c == nil || c.Dir == "" {
		return fmt.Errorf("container: cache directory not set")
	}
	if !filepath.IsAbs(c.Dir) {
		abs, err := filepath.Abs(c.Dir)
		if err != nil {
			return fmt.Errorf("container: cache directory %q: %v", c.Dir, err)
		}
		c.Dir = abs
	}
	return nil
}

// Pull fetches the pinned image ref into the cache and returns it. The
// manifest must hash to the pinned digest and every blob to the digest the
// manifest gives it; nothing unverified is ever renamed into the cache. An
// image already cached is verified again (every blob rehashed) and returned
// without network access.
func (c *Cache) Pull(ctx context.Context, ref string) (*Image, error) {
	d, err := ParseDigest(ref)
	if err != nil {
		return nil, err
	}
	if err := c.checkDir(); err != nil {
		return nil, err
	}
	if img, err := c.Load(ctx, ref); err == nil {
		c.progressf("container: %s already cached (%d bytes verified)\n", shortRef(ref), img.Size)
		return img, nil
	} else if !errors.Is(err, ErrNotCached) {
		return nil, err
	}
	if d.Context().Name() == ImportedRepository {
		return nil, fmt.Errorf("container: %s is an ImageBuilder imported from an archive and is not in the cache %s: run `imgbuild ib import ARCHIVE --sha256sums FILE --sig FILE` with the same --cache (no registry serves imported images)", shortRef(ref), c.Dir)
	}
	if err := c.initLayout(); err != nil {
		return nil, err
	}
	pinned := d.DigestStr()
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithTransport(&schemeGuard{insecure: c.Insecure, next: remote.DefaultTransport}),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}),
	}
	fetch := d
	if host, ok := c.Mirrors[d.Context().RegistryStr()]; ok {
		if fetch, err = ParseDigest(host + "/" + d.Context().RepositoryStr() + "@" + pinned); err != nil {
			return nil, fmt.Errorf("container: mirror %s of %s: %w", host, d.Context().RegistryStr(), err)
		}
		c.progressf("container: %s is served by %s\n", d.Context().RegistryStr(), host)
	}
	c.progressf("container: pulling %s\n", ref)
	desc, err := remote.Get(fetch, opts...)
	if err != nil {
		if strings.Contains(err.Error(), "does not match requested digest") {
			return nil, fmt.Errorf("container: the registry served a manifest for %s that does not hash to the pinned digest: refusing it (the registry, or something between, is not serving the pinned image): %w", ref, err)
		}
		return nil, fmt.Errorf("container: fetching manifest of %s: %w (check the registry is reachable and the digest is the one `imgbuild lock` wrote)", ref, err)
	}
	if sum := sha256Hex(desc.Manifest); "sha256:"+sum != pinned || desc.Digest.String() != pinned {
		return nil, fmt.Errorf("container: registry served a manifest for %s whose digest is sha256:%s, not the pinned %s: refusing it (the registry or something between is not serving the pinned image)", ref, sum, pinned)
	}

	var img v1.Image
	pinnedIsIndex := desc.MediaType.IsIndex()
	switch {
	case pinnedIsIndex:
		// Keep the index manifest itself, then pick this platform's image.
		if err := c.writeBlobBytes(pinned, desc.Manifest); err != nil {
			return nil, err
		}
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, fmt.Errorf("container: reading image index %s: %w", ref, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, fmt.Errorf("container: reading image index %s: %w", ref, err)
		}
		var child *v1.Descriptor
		for i := range im.Manifests {
			m := &im.Manifests[i]
			if m.Platform != nil && m.Platform.OS == "linux" && m.Platform.Architecture == runtime.GOARCH && m.MediaType.IsImage() {
				child = m
				break
			}
		}
		if child == nil {
			return nil, fmt.Errorf("container: image index %s lists no linux/%s image: pin a digest that has one", ref, runtime.GOARCH)
		}
		c.progressf("container: %s is a multi-platform index; using linux/%s manifest %s\n", shortRef(ref), runtime.GOARCH, child.Digest)
		img, err = idx.Image(child.Digest)
		if err != nil {
			return nil, fmt.Errorf("container: reading linux/%s image of %s: %w", runtime.GOARCH, ref, err)
		}
	case desc.MediaType.IsImage():
		img, err = desc.Image()
		if err != nil {
			return nil, fmt.Errorf("container: reading image %s: %w", ref, err)
		}
	default:
		return nil, fmt.Errorf("container: %s has media type %q, which is neither an image nor an image index", ref, desc.MediaType)
	}

	return c.store(ctx, ref, pinned, pinnedIsIndex, img)
}

// Put stores an image made on this machine (an imported ImageBuilder) in
// the cache under repo@<its manifest digest>, through the same verified
// path as a pulled image, and returns it.
func (c *Cache) Put(ctx context.Context, repo string, img v1.Image) (*Image, error) {
	dg, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("container: digest of the image to store: %w", err)
	}
	ref := repo + "@" + dg.String()
	if _, err := ParseDigest(ref); err != nil {
		return nil, err
	}
	if err := c.checkDir(); err != nil {
		return nil, err
	}
	if cached, err := c.Load(ctx, ref); err == nil {
		return cached, nil
	}
	if err := c.initLayout(); err != nil {
		return nil, err
	}
	return c.store(ctx, ref, dg.String(), false, img)
}

// store writes img's blobs and an index entry for ref.
func (c *Cache) store(ctx context.Context, ref, pinned string, pinnedIsIndex bool, img v1.Image) (*Image, error) {
	rawManifest, err := img.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("container: reading manifest of %s: %w", ref, err)
	}
	manifestDigest := "sha256:" + sha256Hex(rawManifest)
	if !pinnedIsIndex && manifestDigest != pinned {
		return nil, fmt.Errorf("container: manifest of %s hashes to %s, not the pinned %s: refusing it", ref, manifestDigest, pinned)
	}
	m, err := v1.ParseManifest(bytes.NewReader(rawManifest))
	if err != nil {
		return nil, fmt.Errorf("container: parsing manifest of %s: %w", ref, err)
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("container: fetching config of %s: %w", ref, err)
	}
	if err := c.writeBlobBytes(m.Config.Digest.String(), rawConfig); err != nil {
		return nil, fmt.Errorf("container: config of %s: %w", ref, err)
	}

	var total int64
	for _, l := range m.Layers {
		total += l.Size
	}
	c.progressf("container: %d layers, %s\n", len(m.Layers), humanBytes(total))
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("container: listing layers of %s: %w", ref, err)
	}
	if len(layers) != len(m.Layers) {
		return nil, fmt.Errorf("container: %s: manifest lists %d layers but the image has %d", ref, len(m.Layers), len(layers))
	}
	start := time.Now()
	for i, ld := range m.Layers {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("container: pulling %s: %w", ref, err)
		}
		if ok, _ := c.blobVerified(ld.Digest.String(), ld.Size); ok {
			c.progressf("container:   layer %d/%d %s %s (already cached)\n", i+1, len(m.Layers), shortDigest(ld.Digest.String()), humanBytes(ld.Size))
			continue
		}
		rc, err := layers[i].Compressed()
		if err != nil {
			return nil, fmt.Errorf("container: fetching layer %d/%d %s of %s: %w", i+1, len(m.Layers), ld.Digest, ref, err)
		}
		label := fmt.Sprintf("layer %d/%d %s", i+1, len(m.Layers), shortDigest(ld.Digest.String()))
		err = c.writeBlob(ld.Digest.String(), ld.Size, rc, label)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("container: layer %d/%d of %s: %w", i+1, len(m.Layers), ref, err)
		}
	}
	if err := c.writeBlobBytes(manifestDigest, rawManifest); err != nil {
		return nil, fmt.Errorf("container: manifest of %s: %w", ref, err)
	}
	mediaType := m.MediaType
	if mediaType == "" {
		mediaType = types.OCIManifestSchema1
	}
	entry := v1.Descriptor{
		MediaType: mediaType,
		Size:      int64(len(rawManifest)),
		Digest:    mustHash(manifestDigest),
		Annotations: map[string]string{
			AnnotationRefName: layoutRefName(manifestDigest),
			AnnotationPinned:  pinned,
			AnnotationRef:     ref,
		},
	}
	if err := c.addIndexEntry(entry); err != nil {
		return nil, err
	}
	c.progressf("container: pulled %s (%s in %s)\n", shortRef(ref), humanBytes(total), time.Since(start).Round(time.Millisecond))
	return c.Load(ctx, ref)
}

// Load returns a cached image without touching the network. Every blob of
// the image is rehashed: a blob that changed on disk is reported, never used.
// An image the cache does not hold gives an error wrapping ErrNotCached.
func (c *Cache) Load(ctx context.Context, ref string) (*Image, error) {
	d, err := ParseDigest(ref)
	if err != nil {
		return nil, err
	}
	if err := c.checkDir(); err != nil {
		return nil, err
	}
	pinned := d.DigestStr()
	idx, err := c.readIndex()
	if err != nil {
		return nil, err
	}
	var entry *v1.Descriptor
	for i := range idx.Manifests {
		e := &idx.Manifests[i]
		if e.Annotations[AnnotationPinned] == pinned || e.Digest.String() == pinned {
			entry = e
			break
		}
	}
	if entry == nil {
		return nil, fmt.Errorf("container: %s: %w (run the pull first, e.g. `imgbuild fetch`, where the registry is reachable)", ref, ErrNotCached)
	}
	if e := entry.Annotations[AnnotationPinned]; e != "" && e != entry.Digest.String() {
		// Pinned index: its manifest must still be the pinned bytes.
		if err := c.verifyBlob(e, -1); err != nil {
			return nil, err
		}
	}
	manifestDigest := entry.Digest.String()
	rawManifest, err := c.readVerifiedBlob(manifestDigest, entry.Size)
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(rawManifest))
	if err != nil {
		return nil, fmt.Errorf("container: cached manifest %s of %s: %v (remove %s and pull again)", manifestDigest, ref, err, c.blobPath(manifestDigest))
	}
	rawConfig, err := c.readVerifiedBlob(m.Config.Digest.String(), m.Config.Size)
	if err != nil {
		return nil, err
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(rawConfig))
	if err != nil {
		return nil, fmt.Errorf("container: cached config of %s: %v", ref, err)
	}
	var size int64
	for _, l := range m.Layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := c.verifyBlob(l.Digest.String(), l.Size); err != nil {
			return nil, err
		}
		size += l.Size
	}
	return &Image{
		Ref:          ref,
		Digest:       manifestDigest,
		LayoutDir:    c.Dir,
		User:         cf.Config.User,
		WorkingDir:   cf.Config.WorkingDir,
		Env:          append([]string(nil), cf.Config.Env...),
		ConfigDigest: m.Config.Digest.String(),
		Size:         size,
	}, nil
}

// OpenImage returns the cached image as a v1.Image read from the layout.
func (img *Image) OpenImage() (v1.Image, error) {
	p, err := layout.FromPath(img.LayoutDir)
	if err != nil {
		return nil, fmt.Errorf("container: opening image layout %s: %w", img.LayoutDir, err)
	}
	h, err := v1.NewHash(img.Digest)
	if err != nil {
		return nil, fmt.Errorf("container: image digest %q: %w", img.Digest, err)
	}
	i, err := p.Image(h)
	if err != nil {
		return nil, fmt.Errorf("container: image %s in layout %s: %w", img.Digest, img.LayoutDir, err)
	}
	return i, nil
}

// Hex is the 64 hex digits of the image manifest digest.
func (img *Image) Hex() string { return strings.TrimPrefix(img.Digest, "sha256:") }

func (c *Cache) blobPath(digest string) string {
	alg, hexd, _ := strings.Cut(digest, ":")
	return filepath.Join(c.Dir, "blobs", alg, hexd)
}

func (c *Cache) initLayout() error {
	if err := os.MkdirAll(filepath.Join(c.Dir, "blobs", "sha256"), 0o755); err != nil {
		return fmt.Errorf("container: creating cache %s: %w", c.Dir, err)
	}
	p := filepath.Join(c.Dir, "oci-layout")
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		if err := writeFileAtomic(p, []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
			return fmt.Errorf("container: initializing cache %s: %w", c.Dir, err)
		}
	}
	return nil
}

func (c *Cache) readIndex() (*v1.IndexManifest, error) {
	b, err := os.ReadFile(filepath.Join(c.Dir, "index.json"))
	if errors.Is(err, os.ErrNotExist) {
		return &v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("container: reading cache index: %w", err)
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("container: cache index %s is corrupt: %v (remove it; cached blobs are re-verified on the next pull)", filepath.Join(c.Dir, "index.json"), err)
	}
	return idx, nil
}

// addIndexEntry adds (or replaces) the entry for one manifest, holding an
// exclusive lock so concurrent pulls into one cache do not lose entries.
func (c *Cache) addIndexEntry(e v1.Descriptor) error {
	unlock, err := lockFile(filepath.Join(c.Dir, ".lock"))
	if err != nil {
		return err
	}
	defer unlock()
	idx, err := c.readIndex()
	if err != nil {
		return err
	}
	out := idx.Manifests[:0]
	for _, m := range idx.Manifests {
		if m.Digest != e.Digest && m.Annotations[AnnotationPinned] != e.Annotations[AnnotationPinned] {
			out = append(out, m)
		}
	}
	idx.Manifests = append(out, e)
	idx.SchemaVersion = 2
	idx.MediaType = types.OCIImageIndex
	b, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(c.Dir, "index.json"), b, 0o644); err != nil {
		return fmt.Errorf("container: writing cache index: %w", err)
	}
	return nil
}

func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("container: opening lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("container: locking %s: %w", path, err)
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// blobVerified reports whether the blob exists with the right size and hash.
func (c *Cache) blobVerified(digest string, size int64) (bool, error) {
	if err := c.verifyBlob(digest, size); err != nil {
		return false, err
	}
	return true, nil
}

// verifyBlob rehashes a cached blob. size < 0 skips the size check.
func (c *Cache) verifyBlob(digest string, size int64) error {
	alg, want, ok := strings.Cut(digest, ":")
	if !ok || alg != "sha256" || len(want) != 64 {
		return fmt.Errorf("container: unsupported blob digest %q (only sha256 is accepted)", digest)
	}
	p := c.blobPath(digest)
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("container: blob %s missing from the cache (%s): %w; pull the image again", digest, p, ErrNotCached)
	}
	if err != nil {
		return fmt.Errorf("container: opening cached blob %s: %w", p, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("container: reading cached blob %s: %w", p, err)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("container: cached blob %s is %d bytes, its manifest says %d: the cache was modified; delete %s and pull again", p, n, size, p)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("container: cached blob %s hashes to sha256:%s, not %s: the cache was modified; delete %s and pull again", p, got, digest, p)
	}
	return nil
}

func (c *Cache) readVerifiedBlob(digest string, size int64) ([]byte, error) {
	p := c.blobPath(digest)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("container: blob %s missing from the cache (%s): %w; pull the image again", digest, p, ErrNotCached)
	}
	if err != nil {
		return nil, fmt.Errorf("container: reading cached blob %s: %w", p, err)
	}
	if size >= 0 && int64(len(b)) != size {
		return nil, fmt.Errorf("container: cached blob %s is %d bytes, expected %d: the cache was modified; delete %s and pull again", p, len(b), size, p)
	}
	if got := "sha256:" + sha256Hex(b); got != digest {
		return nil, fmt.Errorf("container: cached blob %s hashes to %s, not %s: the cache was modified; delete %s and pull again", p, got, digest, p)
	}
	return b, nil
}

func (c *Cache) writeBlobBytes(digest string, b []byte) error {
	return c.writeBlob(digest, int64(len(b)), io.NopCloser(bytes.NewReader(b)), "")
}

// writeBlob streams r into a temporary file, hashing it, and renames it to
// its content address only when size and hash match.
func (c *Cache) writeBlob(digest string, size int64, r io.Reader, label string) error {
	alg, want, ok := strings.Cut(digest, ":")
	if !ok || alg != "sha256" || len(want) != 64 {
		return fmt.Errorf("unsupported blob digest %q (only sha256 is accepted)", digest)
	}
	if ok, _ := c.blobVerified(digest, size); ok {
		return nil
	}
	dir := filepath.Join(c.Dir, "blobs", "sha256")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-"+want[:12]+"-")
	if err != nil {
		return fmt.Errorf("creating blob in cache %s: %w", dir, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	var w io.Writer = io.MultiWriter(tmp, h)
	if label != "" && c.Progress != nil {
		w = &progressWriter{w: w, out: c.Progress, label: label, total: size, start: time.Now()}
	}
	n, err := io.Copy(w, r)
	if err != nil {
		return fmt.Errorf("downloading blob %s: %w", digest, err)
	}
	if pw, ok := w.(*progressWriter); ok {
		pw.finish()
	}
	if size >= 0 && n != size {
		return fmt.Errorf("blob %s is %d bytes, the manifest says %d: refusing it", digest, n, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("blob served for %s hashes to sha256:%s: refusing it (the registry is not serving the pinned content)", digest, got)
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, want))
}

type progressWriter struct {
	w           io.Writer
	out         io.Writer
	label       string
	total, done int64
	start, last time.Time
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.done += int64(n)
	if time.Since(p.last) >= 2*time.Second && p.total > 0 {
		if !p.last.IsZero() {
			fmt.Fprintf(p.out, "container:   %s %s / %s (%d%%)\n", p.label, humanBytes(p.done), humanBytes(p.total), p.done*100/p.total)
		}
		p.last = time.Now()
	}
	return n, err
}

func (p *progressWriter) finish() {
	fmt.Fprintf(p.out, "container:   %s %s ok (%s)\n", p.label, humanBytes(p.done), time.Since(p.start).Round(time.Millisecond))
}

// schemeGuard refuses plain-http registry traffic unless the cache allows it,
// and even then only to loopback addresses.
type schemeGuard struct {
	insecure bool
	next     http.RoundTripper
}

func (g *schemeGuard) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "http" {
		if !g.insecure {
			return nil, fmt.Errorf("refusing plain-http request to %s: the registry must use TLS (plain http is allowed only for a loopback test registry with Cache.Insecure)", r.URL.Host)
		}
		if !isLoopback(r.URL.Hostname()) {
			return nil, fmt.Errorf("refusing plain-http request to %s: Cache.Insecure allows plain http only on 127.0.0.1, ::1 or localhost", r.URL.Host)
		}
	}
	return g.next.RoundTrip(r)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func mustHash(s string) v1.Hash {
	h, err := v1.NewHash(s)
	if err != nil {
		panic(err)
	}
	return h
}

func shortDigest(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}

func shortRef(ref string) string {
	if i := strings.LastIndexByte(ref, '@'); i >= 0 {
		return ref[:i+1] + shortDigest(ref[i+1:])
	}
	return ref
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), mode); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

var _ name.Reference = name.Digest{}
