package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/torwrt/torwrt/internal/cliout"
	"github.com/torwrt/torwrt/internal/container"
	"github.com/torwrt/torwrt/internal/ibarchive"
	"github.com/torwrt/torwrt/internal/imagesig"
	"github.com/torwrt/torwrt/internal/userland"
)

type ibImportOptions struct {
	cacheOptions
	outputOptions
	sums  string
	sig   string
	keys  string
	epoch int64
}

// importRecord is what `ib import` leaves beside the tree as import.json:
// the image it made and what went into it. `imgbuild lock` reads it to pin
// a profile whose imagebuilder.archive_sha256 names the archive.
type importRecord struct {
	Archive          string   `json:"archive"`
	SHA256           string   `json:"sha256"`
	SignedBy         string   `json:"sha256sums_signed_by"`
	Compression      string   `json:"compression,omitempty"`
	Files            int      `json:"files,omitempty"`
	Bytes            int64    `json:"bytes,omitempty"`
	TopDir           string   `json:"top_dir,omitempty"`
	AbsoluteSymlinks []string `json:"absolute_symlinks,omitempty"`
	Tree             string   `json:"tree"`
	Userland         string   `json:"userland"`
	UserlandLayer    string   `json:"userland_layer"`
	BuilderLayer     string   `json:"builder_layer"`
	SourceDateEpoch  int64    `json:"source_date_epoch"`
	Digest           string   `json:"digest"`
	LockRef          string   `json:"lock_ref"`
	Seconds          float64  `json:"seconds"`
}

const importRecordFile = "import.json"

// ibImportResult is the result of `ib import --json`
// (torwrt.imgbuild.ib.import/v1): the import record, with the key that
// signed sha256sums as a key object.
type ibImportResult struct {
	importRecord
	SignedBy cliout.Key `json:"sha256sums_signed_by"`
}

func importDir(cacheDir, sha string) string { return filepath.Join(cacheDir, "ib", sha) }

// readImportRecord finds the image `ib import` made of the archive with
// the given sha256.
func readImportRecord(cacheDir, sha string) (*importRecord, error) {
	path := filepath.Join(importDir(cacheDir, sha), importRecordFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("the ImageBuilder archive with sha256 %s has not been imported into the cache %s: run `imgbuild ib import ARCHIVE --sha256sums FILE --sig FILE` (with the same --cache) first", sha, cacheDir)
	}
	if err != nil {
		return nil, err
	}
	var rec importRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if rec.SHA256 != sha || !strings.HasPrefix(rec.LockRef, container.ImportedRepository+"@sha256:") {
		return nil, fmt.Errorf("%s does not describe archive %s; delete %s and import again", path, sha, importDir(cacheDir, sha))
	}
	return &rec, nil
}

func runIB(ctx context.Context, e env, args []string) error {
	if len(args) == 0 || args[0] != "import" {
		return usagef("want: imgbuild ib import ARCHIVE --sha256sums FILE --sig FILE")
	}
	var o ibImportOptions
	fs := newFlags(e, "ib import", "ARCHIVE", "Verify an upstream ImageBuilder archive (.tar.xz or .tar.zst) against a\nsha256sums file whose usign signature checks against the pinned OpenWrt keys\n(or --keys), hashing the archive before any byte of it is parsed; unpack it\nsafely (top-level directory stripped; no ../, escaping symlinks, device\nnodes; absolute symlinks kept, never followed); and make it a runnable build\nimage: the pinned Debian userland (internal/userland) plus the ImageBuilder\nat /builder. The image's digest depends only on the archive, the userland\nlock and --source-date-epoch; a lock file pins it.")
	o.cacheOptions.addFlags(fs)
	o.outputOptions.addFlags(fs)
	fs.StringVar(&o.sums, "sha256sums", "", "the release's sha256sums file (required)")
	fs.StringVar(&o.sig, "sig", "", "its usign signature, sha256sums.sig (required)")
	fs.StringVar(&o.keys, "keys", "", "trusted usign public keys instead of the pinned OpenWrt keys (a private mirror, a vendor): a .pub file or a directory of them")
	fs.Int64Var(&o.epoch, "source-date-epoch", 0, "time stamped on every file of the image (part of its digest)")
	rest, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if len(rest) != 1 || o.sums == "" || o.sig == "" {
		return usagef("want ARCHIVE, --sha256sums FILE and --sig FILE")
	}
	start := time.Now()
	archive := rest[0]
	sumsData, err := os.ReadFile(o.sums)
	if err != nil {
		return err
	}
	sigData, err := os.ReadFile(o.sig)
	if err != nil {
		return err
	}
	keys := ibarchive.UpstreamKeys()
	if o.keys != "" {
		kr, err := loadTrustedKeys(o.keys)
		if err != nil {
			return err
		}
		keys = kr.Keys()
	}
	sums, err := ibarchive.VerifySums(sumsData, sigData, keys...)
	if err != nil {
		return rejectedError{err}
	}
	want, ok := sums.Lookup(filepath.Base(archive))
	if !ok {
		return rejectedError{fmt.Errorf("%s is not listed in %s", filepath.Base(archive), o.sums)}
	}
	cacheDir := o.cacheOptions.dir(e)
	dest := importDir(cacheDir, want)
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	tree := filepath.Join(dest, "tree")
	rec := importRecord{Archive: filepath.Base(archive), SHA256: want, SignedBy: sums.Signer, Tree: tree, SourceDateEpoch: o.epoch}
	if old, err := readImportRecord(cacheDir, want); err == nil && old.SourceDateEpoch == o.epoch {
		rec = *old
	}
	if _, err := os.Stat(tree); err == nil {
		fmt.Fprintf(e.stderr, "ib import: %s already unpacked at %s\n", rec.Archive, tree)
	} else {
		fmt.Fprintf(e.stderr, "ib import: hashing, then unpacking %s\n", rec.Archive)
		r, err := ibarchive.ExtractFile(ctx, archive, sums, tree, ibarchive.Limits{})
		if errors.Is(err, ibarchive.ErrHashMismatch) {
			return rejectedError{fmt.Errorf("%w\n%s is not the file the signed sha256sums lists (a truncated or replaced download?): download it again, or get the sha256sums of its release", err, archive)}
		}
		if err != nil {
			return rejectedError{err}
		}
		rec.Compression, rec.Files, rec.Bytes = string(r.Compression), r.Files, r.Bytes
		rec.TopDir, rec.AbsoluteSymlinks = r.TopDir, r.AbsoluteSymlinks
		fmt.Fprintf(e.stderr, "ib import: %d entries, %s, top directory %q stripped, %d absolute symlinks kept as they are\n",
			r.Files, fmt.Sprintf("%.1f MB", float64(r.Bytes)/1e6), r.TopDir, len(r.AbsoluteSymlinks))
	}
	if _, err := os.Stat(filepath.Join(tree, "Makefile")); err != nil {
		return rejectedError{fmt.Errorf("%s has no Makefile at its top (after stripping its top-level directory): not an ImageBuilder archive (or an import by an older imgbuild: delete %s and import again)", rec.Archive, dest)}
	}
	img, err := buildImage(ctx, e, cacheDir, dest, tree, o.epoch, &rec)
	if err != nil {
		return err
	}
	cached, err := (&container.Cache{Dir: filepath.Join(cacheDir, "images"), Progress: e.stderr}).Put(ctx, container.ImportedRepository, img)
	if err != nil {
		return err
	}
	rec.Digest = cached.Digest
	rec.LockRef = container.ImportedRepository + "@" + cached.Digest
	rec.Seconds = time.Since(start).Round(time.Millisecond).Seconds()
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	if err := imagesig.WriteFileAtomic(filepath.Join(dest, importRecordFile), append(data, '\n'), 0o644); err != nil {
		return err
	}
	if o.json {
		return setResult(e, ibImportResult{importRecord: rec, SignedBy: cliout.Key{Fingerprint: rec.SignedBy}})
	}
	fmt.Fprintf(e.stdout, "verified %s (sha256 %s, sha256sums signed by %s)\nImageBuilder tree %s\nuserland          %s\nimage digest      %s\nin the image cache %s; a profile with\n  imagebuilder: {archive: %s, archive_sha256: %s}\nlocks it as %s\n",
		archive, want, rec.SignedBy, tree, rec.Userland, rec.Digest, filepath.Join(cacheDir, "images"), rec.Archive, want, rec.LockRef)
	return nil
}

// buildImage makes the runnable build image: the pinned Debian userland
// layer, then the ImageBuilder tree at /builder. Both layers are
// uncompressed tars written once into the cache.
func buildImage(ctx context.Context, e env, cacheDir, dest, tree string, epoch int64, rec *importRecord) (v1.Image, error) {
	ul, err := userland.Committed()
	if err != nil {
		return nil, err
	}
	// The userland's .debs and layer tar are content-addressed (by sha256
	// and by the lock's hash): any cache directory may be shared.
	ulCache := filepath.Join(cacheDir, "userland")
	if d := e.getenv("TORWRT_USERLAND_CACHE"); d != "" {
		ulCache = d
	}
	if err := userland.Fetch(ctx, ul, ulCache, e.stderr); err != nil {
		return nil, err
	}
	fmt.Fprintf(e.stderr, "ib import: userland layer (%d Debian packages)\n", len(ul.Entries))
	ulTar, _, err := userland.LayerTar(ctx, ul, ulCache, epoch)
	if err != nil {
		return nil, err
	}
	ulLayer, err := container.FileLayer(ulTar)
	if err != nil {
		return nil, err
	}
	builderTar := filepath.Join(dest, fmt.Sprintf("builder-%d.tar", epoch))
	if _, err := os.Stat(builderTar); err != nil {
		fmt.Fprintf(e.stderr, "ib import: ImageBuilder layer\n")
		if err := ibarchive.WriteLayerFile(ctx, tree, builderTar, ibarchive.LayerOptions{Epoch: epoch, Prefix: "builder"}); err != nil {
			return nil, err
		}
	}
	ibLayer, err := container.FileLayer(builderTar)
	if err != nil {
		return nil, err
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	created := v1.Time{Time: time.Unix(epoch, 0).UTC()}
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: ulLayer, History: v1.History{Created: created, CreatedBy: "torwrt userland: " + userlandDescription(ul)}},
		mutate.Addendum{Layer: ibLayer, History: v1.History{Created: created, CreatedBy: "torwrt ib import: " + rec.Archive + " sha256 " + rec.SHA256 + " at /builder"}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Created, cf.OS, cf.Architecture = created, "linux", "amd64"
	cf.Config.WorkingDir = "/builder"
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "HOME=/builder"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return nil, err
	}
	d1, _ := ulLayer.Digest()
	d2, _ := ibLayer.Digest()
	rec.Userland, rec.UserlandLayer, rec.BuilderLayer = userlandDescription(ul), d1.String(), d2.String()
	return img, nil
}

func userlandDescription(l *userland.Lock) string {
	return fmt.Sprintf("%d Debian packages (%s, locked %s, lock sha256 %s)", len(l.Entries), l.Suite, l.Made, l.Sum())
}
