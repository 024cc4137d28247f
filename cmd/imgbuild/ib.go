package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/torwrt/torwrt/internal/container"

	"github.com/torwrt/torwrt/internal/ibarchive"
	"github.com/torwrt/torwrt/internal/usign"
)

type ibImportOptions struct {
	cacheOptions
	outputOptions
	sums  string
	sig   string
	keys  string
	epoch int64
}

type ibImportResult struct {
	Archive     string `json:"archive"`
	SHA256      string `json:"sha256"`
	SignedBy    string `json:"sha256sums_signed_by"`
	Compression string `json:"compression"`
	Files       int    `json:"files"`
	Bytes       int64  `json:"bytes"`
	Tree        string `json:"tree"`
	OCILayout   string `json:"oci_layout"`
	Digest      string `json:"digest"`
	LockRef     string `json:"lock_ref"`
}

func runIB(ctx context.Context, e env, args []string) error {
	if len(args) == 0 || args[0] != "import" {
		return usagef("want: imgbuild ib import ARCHIVE --sha256sums FILE --sig FILE")
	}
	var o ibImportOptions
	fs := newFlags(e, "ib import", "ARCHIVE", "Verify an ImageBuilder archive (.tar.xz or .tar.zst) against an upstream\nsha256sums file whose usign signature checks against the pinned OpenWrt keys,\nunpack it safely (no ../, absolute paths, escaping symlinks, device nodes;\nsize limits), register the tree for the host runner and pack it as a\nsingle-layer OCI image whose digest a lock file can pin.")
	o.cacheOptions.addFlags(fs)
	o.outputOptions.addFlags(fs)
	fs.StringVar(&o.sums, "sha256sums", "", "the release's sha256sums file (required)")
	fs.StringVar(&o.sig, "sig", "", "its usign signature, sha256sums.sig (required)")
	fs.StringVar(&o.keys, "keys", "", "directory of trusted usign public keys instead of the pinned OpenWrt keys (for a private mirror)")
	fs.Int64Var(&o.epoch, "source-date-epoch", 0, "time stamped on the packed image's files (default: the archive's sha256sums file mtime is NOT used; 0 means 1970)")
	rest, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if len(rest) != 1 || o.sums == "" || o.sig == "" {
		return usagef("want ARCHIVE, --sha256sums FILE and --sig FILE")
	}
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
		kr, err := usign.LoadKeyDir(o.keys)
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
	dest := filepath.Join(o.cacheOptions.dir(e), "ib", want)
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	tree := filepath.Join(dest, "tree")
	res := ibImportResult{Archive: archive, SHA256: want, SignedBy: sums.Signer, Tree: tree}
	if _, err := os.Stat(tree); err == nil {
		fmt.Fprintf(e.stderr, "%s already imported at %s\n", archive, tree)
	} else {
		r, err := ibarchive.ExtractFile(ctx, archive, sums, tree, ibarchive.Limits{})
		if err != nil {
			return rejectedError{err}
		}
		res.Compression, res.Files, res.Bytes = string(r.Compression), r.Files, r.Bytes
	}
	img, err := ibarchive.PackOCI(ctx, tree, ibarchive.OCIOptions{Epoch: o.epoch, Prefix: "builder", WorkingDir: "/builder"})
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	res.Digest = digest.String()
	res.OCILayout = filepath.Join(dest, "oci")
	os.RemoveAll(res.OCILayout)
	p, err := layout.Write(res.OCILayout, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendImage(img); err != nil {
		return err
	}
	// Put the image into the cache builds pull from, through the same
	// verified pull path as any registry image: a lock that pins
	// ImportedRepository@<digest> then builds offline with this
	// ImageBuilder, in podman or the host runner.
	if err := cacheImported(ctx, img, res.Digest, filepath.Join(o.cacheOptions.dir(e), "images")); err != nil {
		return err
	}
	res.LockRef = ImportedRepository + "@" + res.Digest
	if o.json {
		return writeJSON(e.stdout, res)
	}
	fmt.Fprintf(e.stdout, "verified %s (sha256 %s, sha256sums signed by %s)\nhost runner tree  %s\nOCI layout        %s\nimage digest      %s\nin the image cache; pin it in the profile's lock file as\n  %s\n",
		archive, want, res.SignedBy, tree, res.OCILayout, res.Digest, res.LockRef)
	return nil
}

// ImportedRepository names imported ImageBuilders in lock files. The
// digest decides which image is used; the name only says where it came
// from.
const ImportedRepository = "localhost/openwrt/imagebuilder-imported"

// cacheImported serves img from an in-process registry on 127.0.0.1 and
// pulls it by digest into the image cache.
func cacheImported(ctx context.Context, img v1.Image, digest, cacheDir string) error {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	tag, err := name.NewTag(host+"/openwrt/imagebuilder-imported:import", name.Insecure)
	if err != nil {
		return err
	}
	if err := remote.Write(tag, img, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("staging the imported image: %w", err)
	}
	c := &container.Cache{Dir: cacheDir, Insecure: true}
	_, err = c.Pull(ctx, host+"/openwrt/imagebuilder-imported@"+digest)
	return err
}
