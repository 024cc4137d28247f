package main

import (
	"context"

	"github.com/torwrt/torwrt/internal/cliout"
	"github.com/torwrt/torwrt/internal/fwimage"
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
		res := diffResult{Identical: rep.Identical, HeaderDifferences: rep.Header, FileDifferences: rep.Files}
		for i, s := range []imagediff.Summary{rep.A, rep.B} {
			img, err := inspectImage(rest[i])
			if err != nil {
				return err
			}
			res.Images = append(res.Images, diffImage{Image: s.Path, Size: s.Size, SHA256: s.SHA256, Chunks: img.Chunks,
				Metadata: s.Metadata, Signature: img.Signature, RootfsOffset: s.Rootfs, Files: s.Files})
		}
		if err := setResult(e, res); err != nil {
			return err
		}
	} else {
		rep.Text(e.stdout)
	}
	if o.exitCode && !rep.Identical {
		return errDiffer
	}
	return nil
}

// diffResult is the result of `diff --json` (torwrt.imgbuild.diff/v1).
type diffResult struct {
	Images            []diffImage        `json:"images"` // A, then B
	Identical         bool               `json:"identical"`
	HeaderDifferences []string           `json:"header_differences,omitempty"`
	FileDifferences   []imagediff.Change `json:"file_differences,omitempty"`
}

// diffImage is one side of a diff.
type diffImage struct {
	Image        string            `json:"image"`
	Size         int64             `json:"size"`
	SHA256       string            `json:"sha256"`
	Chunks       []cliout.Chunk    `json:"chunks"`
	Metadata     *fwimage.Metadata `json:"metadata,omitempty"`
	Signature    *cliout.Signature `json:"signature,omitempty"`
	RootfsOffset int64             `json:"rootfs_offset"`
	Files        int               `json:"files"`
}
