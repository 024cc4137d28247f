package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/torwrt/torwrt/internal/cliout"
	"github.com/torwrt/torwrt/internal/imagesig"
	"github.com/torwrt/torwrt/internal/imagesig/imagesign"
)

// signResult is the result of `sign --json` (torwrt.imgbuild.sign/v1).
type signResult struct {
	Image     string           `json:"image"`
	Detached  string           `json:"detached_signature"`
	SHA256    string           `json:"sha256"`
	SignedLen int64            `json:"signed_len"` // bytes the chunk signature covers
	Signature cliout.Signature `json:"signature"`
}

type signOptions struct {
	key string
	out string
	buildKeyFlags
	outputOptions
}

// buildKeyFlags choose signing with a short-lived build key certified by
// the release key (imgbuild sign and imgbuild build).
type buildKeyFlags struct {
	buildKeyHours     int
	buildKeyNotBefore string
}

func (o *buildKeyFlags) addFlags(fs *flag.FlagSet) {
	fs.IntVar(&o.buildKeyHours, "build-key-hours", 0, "sign with a build key that the release key certifies for this many hours (a 2-element ucert chain, as OpenWrt's build makes); 0 = the release key signs directly")
	fs.StringVar(&o.buildKeyNotBefore, "build-key-not-before", "", "start of the build key's validity, unix seconds or RFC 3339 (default: now); set it to make the signature chunk reproducible")
}

func runSign(ctx context.Context, e env, args []string) error {
	var o signOptions
	fs := newFlags(e, "sign", "IMAGE", "Replace any signature chunk of IMAGE with a ucert-wrapped usign signature by\nthe release key, and write the detached signature IMAGE.sig (signify/usign format).")
	fs.StringVar(&o.key, "key", "", "release key (required): "+keyKinds+"; images need an Ed25519 key")
	fs.StringVar(&o.out, "o", "", "write the signed image here instead of replacing IMAGE")
	o.buildKeyFlags.addFlags(fs)
	o.outputOptions.addFlags(fs)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if o.key == "" || len(rest) != 1 {
		return usagef("want --key KEY.sec and one IMAGE (KEY may also be a .pem file, pkcs11: or KMS URI)")
	}
	bk, err := o.buildKeyOptions()
	if err != nil {
		return err
	}
	in := rest[0]
	if o.out == "" {
		o.out = in
	}
	k, err := openImageKey(ctx, e, o.key)
	if err != nil {
		return err
	}
	defer k.Close()
	var res *imagesign.FileResult
	if o.buildKeyHours == 0 {
		res, err = imagesign.SignFile(ctx, in, o.out, k)
	} else {
		res, err = imagesign.SignFileWithBuildKey(ctx, in, o.out, k, bk)
	}
	if err != nil {
		return err
	}
	if o.json {
		sig := cliout.Signature{ChainLength: 1, Key: cliout.KeyRef(res.Key)}
		if res.BuildKey != "" {
			sig = cliout.Signature{ChainLength: 2, Key: cliout.KeyRef(res.BuildKey), Issuer: cliout.KeyRef(res.Key),
				ValidFrom: bk.NotBefore.Unix(), ExpiresAt: res.ExpiresAt}
		}
		return setResult(e, signResult{Image: res.Image, Detached: res.Detached, SHA256: res.SHA256, SignedLen: res.SignedLen, Signature: sig})
	}
	fmt.Fprintf(e.stdout, "signed %s with key %s\ndetached signature %s\nsha256 %s\n", res.Image, res.Key, res.Detached, res.SHA256)
	if res.BuildKey != "" {
		fmt.Fprintf(e.stdout, "build key %s certified until %s\n", res.BuildKey, time.Unix(res.ExpiresAt, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

// buildKeyOptions turns the --build-key-* flags into options. The clock is
// read only here, at the edge, and only when --build-key-not-before is
// not given.
func (o *buildKeyFlags) buildKeyOptions() (imagesig.BuildKeyOptions, error) {
	if o.buildKeyHours < 0 || time.Duration(o.buildKeyHours)*time.Hour > imagesig.MaxBuildKeyLifetime {
		return imagesig.BuildKeyOptions{}, usagef("--build-key-hours %d: want 1 to %d", o.buildKeyHours, int(imagesig.MaxBuildKeyLifetime/time.Hour))
	}
	if o.buildKeyHours == 0 {
		if o.buildKeyNotBefore != "" {
			return imagesig.BuildKeyOptions{}, usagef("--build-key-not-before needs --build-key-hours")
		}
		return imagesig.BuildKeyOptions{}, nil
	}
	nb := time.Now().Truncate(time.Second)
	if v := o.buildKeyNotBefore; v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			nb = time.Unix(n, 0)
		} else if t, err := time.Parse(time.RFC3339, v); err == nil && t.Unix() >= 0 {
			nb = t
		} else {
			return imagesig.BuildKeyOptions{}, usagef("--build-key-not-before %q: want unix seconds or RFC 3339, e.g. 2025-01-02T15:04:05Z", v)
		}
	}
	return imagesig.BuildKeyOptions{NotBefore: nb, Lifetime: time.Duration(o.buildKeyHours) * time.Hour}, nil
}
