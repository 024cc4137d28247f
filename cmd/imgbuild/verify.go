package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/torwrt/torwrt/internal/cliout"
	"github.com/torwrt/torwrt/internal/imagesig"
)

// verifyResult is the result of `verify --json`
// (torwrt.imgbuild.verify/v1): inspect's document, with the signature
// checked against the trusted keys.
type verifyResult struct {
	inspectReport
	Board string `json:"board,omitempty"` // the --board the metadata was checked for
}

type verifyOptions struct {
	keys  string
	board string
	outputOptions
}

func runVerify(ctx context.Context, e env, args []string) error {
	var o verifyOptions
	fs := newFlags(e, "verify", "IMAGE", "Exit 0 only if IMAGE carries a signature chunk by a trusted key that verifies\nover the image and its metadata. Exit 3 when the image is refused.")
	fs.StringVar(&o.keys, "keys", "", "trusted public keys (required): a .pub file, a directory of .pub files, or a directory of keys named by fingerprint like /etc/opkg/keys")
	fs.StringVar(&o.board, "board", "", "also require this board name in the metadata, e.g. glinet,gl-ar150")
	o.addFlags(fs)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if o.keys == "" || len(rest) != 1 {
		return usagef("want --keys DIR and one IMAGE")
	}
	kr, err := loadTrustedKeys(o.keys)
	if err != nil {
		return err
	}
	res, err := imagesig.VerifyFile(rest[0], kr, imagesig.Options{Board: o.board})
	var pathErr *os.PathError
	if errors.As(err, &pathErr) {
		// The image could not be read (missing, unreadable, I/O error):
		// a failure, not a verdict on the image. cmd/verify exits 1 too.
		return err
	}
	if err != nil {
		return rejectedError{fmt.Errorf("%s: %w", rest[0], err)}
	}
	if o.json {
		rep, err := inspectImage(rest[0])
		if err != nil {
			return err
		}
		chain := 0
		if rep.Signature != nil {
			chain = rep.Signature.ChainLength
		}
		rep.Signature = &cliout.Signature{Verified: true, ChainLength: chain, Key: cliout.KeyRef(res.Key), Issuer: cliout.KeyRef(res.Issuer),
			ValidFrom: res.ValidFrom, ExpiresAt: res.ExpiresAt}
		for i := range rep.Chunks {
			if rep.Chunks[i].Signature != nil {
				rep.Chunks[i].Signature = rep.Signature
			}
		}
		return setResult(e, verifyResult{inspectReport: *rep, Board: o.board})
	}
	fmt.Fprintf(e.stdout, "OK %s: signed by key %s, for %v, version %s\n", rest[0], res.Key, res.Metadata.SupportedDevices, res.Metadata.Version.Version)
	return nil
}
