// Package imagediff explains how two sysupgrade images differ: their
// fwtool chunks, metadata and signing key, and file by file the root
// filesystems inside them, read with the pure-Go squashfs reader (no
// unsquashfs, no root needed).
package imagediff

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/torwrt/torwrt/internal/fwimage"
	"github.com/torwrt/torwrt/internal/imagesig"
	"github.com/torwrt/torwrt/internal/squashfs"
)

// File is what is compared of one root filesystem entry.
type File struct {
	Path   string `json:"path"`
	Mode   string `json:"mode"`
	Owner  string `json:"owner"`
	MTime  int64  `json:"mtime"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
	Target string `json:"target,omitempty"`
}

// Change is one differing path.
type Change struct {
	Path   string   `json:"path"`
	Kind   string   `json:"kind"` // added, removed, changed
	Fields []string `json:"fields,omitempty"`
	A      *File    `json:"a,omitempty"`
	B      *File    `json:"b,omitempty"`
}

// Summary of one image.
type Summary struct {
	Path     string            `json:"path"`
	Size     int64             `json:"size"`
	SHA256   string            `json:"sha256"`
	Chunks   []string          `json:"chunks"`
	Metadata *fwimage.Metadata `json:"metadata,omitempty"`
	SignedBy string            `json:"signed_by,omitempty"`
	Rootfs   int64             `json:"rootfs_offset"`
	Files    int               `json:"files"`
}

// Report is the whole comparison.
type Report struct {
	A, B      Summary   `json:"-"`
	Images    []Summary `json:"images"`
	Identical bool      `json:"identical"`
	Header    []string  `json:"header_differences,omitempty"`
	Files     []Change  `json:"file_differences,omitempty"`
}

// Compare reads both images and compares them.
func Compare(ctx context.Context, a, b string) (*Report, error) {
	sa, fa, err := load(ctx, a)
	if err != nil {
		return nil, err
	}
	sb, fb, err := load(ctx, b)
	if err != nil {
		return nil, err
	}
	r := &Report{A: *sa, B: *sb, Images: []Summary{*sa, *sb}, Identical: sa.SHA256 == sb.SHA256}
	add := func(what string, x, y any) {
		if fmt.Sprint(x) != fmt.Sprint(y) {
			r.Header = append(r.Header, fmt.Sprintf("%s: %v -> %v", what, x, y))
		}
	}
	add("size", sa.Size, sb.Size)
	add("chunks", sa.Chunks, sb.Chunks)
	add("signed by", sa.SignedBy, sb.SignedBy)
	add("rootfs offset", sa.Rootfs, sb.Rootfs)
	if sa.Metadata != nil && sb.Metadata != nil {
		add("supported devices", sa.Metadata.SupportedDevices, sb.Metadata.SupportedDevices)
		add("version", sa.Metadata.Version, sb.Metadata.Version)
		add("compat version", sa.Metadata.CompatVersion, sb.Metadata.CompatVersion)
	}
	paths := map[string]bool{}
	for p := range fa {
		paths[p] = true
	}
	for p := range fb {
		paths[p] = true
	}
	sorted := make([]string, 0, len(paths))
	for p := range paths {
		sorted = append(sorted, p)
	}
	sort.Strings(sorted)
	for _, p := range sorted {
		x, y := fa[p], fb[p]
		switch {
		case x == nil:
			r.Files = append(r.Files, Change{Path: p, Kind: "added", B: y})
		case y == nil:
			r.Files = append(r.Files, Change{Path: p, Kind: "removed", A: x})
		default:
			var fields []string
			for _, f := range []struct {
				name string
				a, b any
			}{{"mode", x.Mode, y.Mode}, {"owner", x.Owner, y.Owner}, {"mtime", x.MTime, y.MTime}, {"size", x.Size, y.Size}, {"content", x.SHA256, y.SHA256}, {"target", x.Target, y.Target}} {
				if f.a != f.b {
					fields = append(fields, f.name)
				}
			}
			if len(fields) > 0 {
				r.Files = append(r.Files, Change{Path: p, Kind: "changed", Fields: fields, A: x, B: y})
			}
		}
	}
	return r, nil
}

func load(ctx context.Context, path string) (*Summary, map[string]*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	layout, err := fwimage.Parse(f, fi.Size())
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	s := &Summary{Path: path, Size: fi.Size()}
	sum, err := fwimage.SHA256Range(f, fi.Size())
	if err != nil {
		return nil, nil, err
	}
	s.SHA256 = hex.EncodeToString(sum)
	for _, c := range layout.Chunks {
		s.Chunks = append(s.Chunks, fmt.Sprintf("%s(%d)", c.Type, c.Len))
		data, err := fwimage.ReadChunk(f, c)
		if err != nil {
			return nil, nil, err
		}
		switch c.Type {
		case fwimage.TypeMetadata:
			if m, _, err := fwimage.ParseMetadataChunk(data); err == nil {
				s.Metadata = m
			}
		case fwimage.TypeSignature:
			if sig, _, err := imagesig.ChunkSignature(data); err == nil {
				s.SignedBy = sig.Fingerprint.String()
			}
		}
	}
	payload := io.NewSectionReader(f, 0, layout.PayloadEnd)
	sq, off, err := squashfs.OpenInImage(payload, layout.PayloadEnd)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: root filesystem: %w", path, err)
	}
	s.Rootfs = off
	files := map[string]*File{}
	err = sq.Walk(ctx, func(e squashfs.Entry) error {
		fl := &File{Path: "/" + e.Path, Mode: e.Mode.String(), Owner: fmt.Sprintf("%d:%d", e.UID, e.GID), MTime: e.ModTime, Size: e.Size, Target: e.Target}
		if e.Path == "." {
			fl.Path = "/"
		}
		if e.Mode.IsRegular() {
			rf, err := sq.OpenEntry(e)
			if err != nil {
				return fmt.Errorf("opening %s: %w", fl.Path, err)
			}
			h := sha256.New()
			_, err = io.Copy(h, rf)
			rf.Close()
			if err != nil {
				return fmt.Errorf("reading %s: %w", fl.Path, err)
			}
			fl.SHA256 = hex.EncodeToString(h.Sum(nil))
		}
		files[fl.Path] = fl
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: root filesystem: %w", path, err)
	}
	s.Files = len(files)
	return s, files, nil
}

// Files lists the root filesystem of the image at path, sorted by path.
func Files(ctx context.Context, path string) ([]File, error) {
	_, files, err := load(ctx, path)
	if err != nil {
		return nil, err
	}
	out := make([]File, 0, len(files))
	for _, f := range files {
		out = append(out, *f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// Text writes the report for people.
func (r *Report) Text(w io.Writer) {
	var b bytes.Buffer
	if r.Identical {
		fmt.Fprintf(&b, "identical: %s and %s are byte for byte the same (sha256 %s)\n", r.A.Path, r.B.Path, r.A.SHA256)
		w.Write(b.Bytes())
		return
	}
	fmt.Fprintf(&b, "a: %s sha256 %s, %d files\nb: %s sha256 %s, %d files\n", r.A.Path, r.A.SHA256, r.A.Files, r.B.Path, r.B.SHA256, r.B.Files)
	for _, h := range r.Header {
		fmt.Fprintf(&b, "  %s\n", h)
	}
	for _, c := range r.Files {
		switch c.Kind {
		case "added":
			fmt.Fprintf(&b, "+ %s\n", c.Path)
		case "removed":
			fmt.Fprintf(&b, "- %s\n", c.Path)
		default:
			fmt.Fprintf(&b, "~ %s (%v)\n", c.Path, c.Fields)
		}
	}
	if len(r.Files) == 0 {
		fmt.Fprintf(&b, "  root filesystems hold the same files\n")
	}
	w.Write(b.Bytes())
}
