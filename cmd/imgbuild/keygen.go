package main

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/torwrt/torwrt/internal/cliout"
	"github.com/torwrt/torwrt/internal/usign"
)

type keygenOptions struct {
	out     string
	comment string
	outputOptions
}

func runKeygen(ctx context.Context, e env, args []string) error {
	var o keygenOptions
	fs := newFlags(e, "keygen", "", "Make an Ed25519 usign key pair: OUT.pub (0644) and OUT.sec (0600).\nExisting files are never overwritten. Keep OUT.sec out of the repository.")
	fs.StringVar(&o.out, "o", "", "output path without extension (required), e.g. keys/release-2026")
	fs.StringVar(&o.comment, "comment", "torwrt release key", "comment written into the key files")
	o.addFlags(fs)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if o.out == "" || len(rest) != 0 {
		return usagef("want -o PATH and no arguments")
	}
	k, err := usign.GenerateKey(rand.Reader, o.comment)
	if err != nil {
		return err
	}
	if err := usign.WriteKeyPair(o.out, k); err != nil {
		return err
	}
	res := keygenResult{Key: cliout.Key{Fingerprint: k.Fingerprint.String(), Comment: o.comment, File: o.out + ".pub"},
		PublicKey: o.out + ".pub", SecretKey: o.out + ".sec"}
	if o.json {
		return setResult(e, res)
	}
	fmt.Fprintf(e.stdout, "fingerprint %s\npublic key  %s\nsecret key  %s (mode 0600; never commit it)\n", res.Key.Fingerprint, res.PublicKey, res.SecretKey)
	return nil
}

// keygenResult is the result of `keygen --json` (torwrt.imgbuild.keygen/v1).
type keygenResult struct {
	Key       cliout.Key `json:"key"`
	PublicKey string     `json:"public_key"`
	SecretKey string     `json:"secret_key"`
}
