package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/torwrt/torwrt/internal/cliout"
	"github.com/torwrt/torwrt/internal/fwimage"
	"github.com/torwrt/torwrt/internal/imagediff"
	"github.com/torwrt/torwrt/internal/imagesig"
)

type inspectOptions struct {
	files bool
	outputOptions
}

// inspectReport is the result of `inspect --json`
// (torwrt.imgbuild.inspect/v1); verify and diff show images the same way.
type inspectReport struct {
	Image        string            `json:"image"`
	Size         int64             `json:"size"`
	PayloadEnd   int64             `json:"payload_end"`
	Chunks       []cliout.Chunk    `json:"chunks"`
	Metadata     *fwimage.Metadata `json:"metadata,omitempty"`
	MetadataJSON string            `json:"metadata_json,omitempty"`
	HasSignature bool              `json:"has_signature"`
	// Signature is the signature chunk's, read but not checked against
	// any key (verify does that); absent without a signature chunk.
	Signature      *cliout.Signature `json:"signature,omitempty"`
	SHA256         string            `json:"sha256"`
	SHA256Unsigned string            `json:"sha256_unsigned"`
	Files          []imagediff.File  `json:"files,omitempty"`
}

func runInspect(ctx context.Context, e env, args []string) error {
	var o inspectOptions
	fs := newFlags(e, "inspect", "IMAGE", "Show IMAGE's fwtool chunks (type, offset, size, CRC), its metadata, the\nfingerprint of the key that signed it, and its sha256 and sha256_unsigned.\nInspect does not check the signature against any key: use verify for that.")
	fs.BoolVar(&o.files, "files", false, "also list the root filesystem: mode, owner, mtime, size and sha256 of every file")
	o.addFlags(fs)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usagef("want one IMAGE")
	}
	rep, err := inspectImage(rest[0])
	if err != nil {
		return err
	}
	if o.files {
		if rep.Files, err = imagediff.Files(ctx, rest[0]); err != nil {
			return err
		}
	}
	if o.json {
		return setResult(e, rep)
	}
	fmt.Fprintf(e.stdout, "image            %s\nsize             %d\npayload end      0x%x\n", rep.Image, rep.Size, rep.PayloadEnd)
	for i, c := range rep.Chunks {
		fmt.Fprintf(e.stdout, "chunk %d          %s, data at 0x%x, %d bytes, crc 0x%08x ok", i, c.Type, c.Offset, c.Len, c.CRC)
		switch s := c.Signature; {
		case s != nil && s.FakeCertificate:
			fmt.Fprintf(e.stdout, ", FAKE CERTIFICATE (unsigned)")
		case s != nil && s.Key != nil:
			fmt.Fprintf(e.stdout, ", signed by key %s", s.Key.Fingerprint)
		case s != nil && s.Problem != "":
			fmt.Fprintf(e.stdout, ", %s", s.Problem)
		case c.Problem != "":
			fmt.Fprintf(e.stdout, ", %s", c.Problem)
		}
		fmt.Fprintln(e.stdout)
	}
	if rep.Metadata != nil {
		fmt.Fprintf(e.stdout, "boards           %v\nversion          %s %s %s (%s)\n", rep.Metadata.SupportedDevices, rep.Metadata.Version.Dist, rep.Metadata.Version.Version, rep.Metadata.Version.Revision, rep.Metadata.Version.Target)
	}
	fmt.Fprintf(e.stdout, "has signature    %v (not checked against keys; use verify)\nsha256           %s\nsha256_unsigned  %s\n", rep.HasSignature, rep.SHA256, rep.SHA256Unsigned)
	if o.files {
		fmt.Fprintf(e.stdout, "root filesystem  %d entries\n", len(rep.Files))
		for _, f := range rep.Files {
			sum := f.SHA256
			if sum == "" {
				sum = "-"
			}
			target := ""
			if f.Target != "" {
				target = " -> " + f.Target
			}
			fmt.Fprintf(e.stdout, "%s %s %10d %d %s %s%s\n", f.Mode, f.Owner, f.Size, f.MTime, sum, f.Path, target)
		}
	}
	return nil
}

func inspectImage(path string) (*inspectReport, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	layout, err := fwimage.Parse(f, fi.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(layout.Chunks) == 0 {
		found, err := hasTrailerMagic(f, fi.Size())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if !found {
			// A truncated image still shows its payload hashes; a file
			// with no fwtool trailer anywhere near its end is not an image.
			return nil, fmt.Errorf("%s: %w: no fwtool metadata or signature chunk (trailer magic \"FWx0\") in its last %d bytes; pass the *-sysupgrade.bin that imgbuild build wrote", path, errNotAnImage, trailerScan)
		}
	}
	rep := &inspectReport{Image: path, Size: layout.Size, PayloadEnd: layout.PayloadEnd}
	for _, c := range layout.Chunks {
		ic := chunkJSON(c)
		data, err := fwimage.ReadChunk(f, c)
		if err != nil {
			return nil, err
		}
		switch c.Type {
		case fwimage.TypeMetadata:
			m, raw, err := fwimage.ParseMetadataChunk(data)
			if err != nil {
				ic.Problem = err.Error()
				break
			}
			rep.Metadata, rep.MetadataJSON = m, string(raw)
		case fwimage.TypeSignature:
			ic.Signature = describeSignature(data)
			rep.Signature = ic.Signature
			rep.HasSignature = ic.Signature.Key != nil
		}
		rep.Chunks = append(rep.Chunks, ic)
	}
	sum, err := fwimage.SHA256Range(f, layout.Size)
	if err != nil {
		return nil, err
	}
	rep.SHA256 = hex.EncodeToString(sum)
	sum, err = fwimage.SHA256Range(f, layout.SignedEnd())
	if err != nil {
		return nil, err
	}
	rep.SHA256Unsigned = hex.EncodeToString(sum)
	return rep, nil
}

// trailerScan is how far from the end hasTrailerMagic looks: the largest
// metadata and signature chunks stock fwtool accepts, with their trailers.
const trailerScan = fwimage.MaxMetadataLen + fwimage.MaxSignature + 2*fwimage.TrailerLen

// hasTrailerMagic reports whether fwtool's trailer magic appears in the
// last trailerScan bytes of r, as it does in a sysupgrade image even when
// the file was cut short.
func hasTrailerMagic(r io.ReaderAt, size int64) (bool, error) {
	from := max(size-trailerScan, 0)
	buf := make([]byte, size-from)
	if _, err := r.ReadAt(buf, from); err != nil && err != io.EOF {
		return false, err
	}
	return bytes.Contains(buf, binary.BigEndian.AppendUint32(nil, fwimage.Magic)), nil
}

// describeSignature reads a signature chunk without checking it.
func describeSignature(data []byte) *cliout.Signature {
	if fwimage.IsFakeCertificate(data) {
		return &cliout.Signature{FakeCertificate: true}
	}
	sig, n, err := imagesig.ChunkSignature(data)
	s := &cliout.Signature{ChainLength: n}
	if err != nil {
		s.Problem = err.Error()
		return s
	}
	s.Key = cliout.KeyRef(sig.Fingerprint.String())
	return s
}
