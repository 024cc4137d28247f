package main

import (
	"context"
	"fmt"

	"github.com/torwrt/torwrt/internal/imagesig"
	"github.com/torwrt/torwrt/internal/usign"
)

type signOptions struct {
	key string
	out string
	outputOptions
}

func runSign(ctx context.Context, e env, args []string) error {
	var o signOptions
	fs := newFlags(e, "sign", "IMAGE", "Replace any signature chunk of IMAGE with a ucert-wrapped usign signature by\nthe release key, and write the detached signature IMAGE.sig (signify/usign format).")
	fs.StringVar(&o.key, "key", "", "usign secret key file (mode 0600) (required)")
	fs.StringVar(&o.out, "o", "", "write the signed image here instead of replacing IMAGE")
	o.addFlags(fs)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if o.key == "" || len(rest) != 1 {
		return usagef("want --key KEY.sec and one IMAGE")
	}
	in := rest[0]
	if o.out == "" {
		o.out = in
	}
	k, err := usign.ReadSecretKeyFile(o.key)
	if err != nil {
		return err
	}
	res, err := imagesig.SignFile(in, o.out, imagesig.KeySigner{Key: k})
	if err != nil {
		return err
	}
	if o.json {
		return writeJSON(e.stdout, res)
	}
	fmt.Fprintf(e.stdout, "signed %s with key %s\ndetached signature %s\nsha256 %s\n", res.Image, res.Key, res.Detached, res.SHA256)
	return nil
}
