package main

import (
	"context"
	"errors"

	"github.com/torwrt/torwrt/internal/imagediff"
)

type diffOptions struct {
	exitCode bool
	outputOptions
}

func runDiff(ctx context.Context, e env, args []string) error {
	var o diffOptions
	fs := newFlags(e, "diff", "A B", "Explain how two sysupgrade images differ: chunks, metadata, signing key, and\nthe root filesystem file by file (mode, owner, mtime, size, content),\nread with torwrt's own squashfs reader.")
	fs.BoolVar(&o.exitCode, "exit-code", false, "exit 1 when the images differ")
	o.addFlags(fs)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 2 {
		return usagef("want two images")
	}
	rep, err := imagediff.Compare(ctx, rest[0], rest[1])
	if err != nil {
		return err
	}
	if o.json {
		err = writeJSON(e.stdout, rep)
	} else {
		rep.Text(e.stdout)
	}
	if err == nil && o.exitCode && !rep.Identical {
		return errors.New("images differ")
	}
	return err
}
