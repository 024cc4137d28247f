package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

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
	if o.json {
		return writeJSON(e.stdout, res)
	}
	fmt.Fprintf(e.stdout, "verified %s (sha256 %s, sha256sums signed by %s)\nhost runner tree  %s\nOCI layout        %s\nimage digest      %s\npush the layout to your registry (e.g. crane push %s REGISTRY/imagebuilder) and pin REGISTRY/imagebuilder@%s in the profile's lock file\n",
		archive, want, res.SignedBy, tree, res.OCILayout, res.Digest, res.OCILayout, res.Digest)
	return nil
}
