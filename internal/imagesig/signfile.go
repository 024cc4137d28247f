package imagesig

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/torwrt/torwrt/internal/fwimage"
	"github.com/torwrt/torwrt/internal/usign"
)

// FileResult is what SignFile wrote.
type FileResult struct {
	Image     string `json:"image"`
	Detached  string `json:"detached_signature"`
	Key       string `json:"key"`
	SHA256    string `json:"sha256"`
	SignedLen int64  `json:"signed_len"`
	// BuildKey and ExpiresAt are set when the chunk is a delegation
	// chain (SignFileWithBuildKey).
	BuildKey  string `json:"build_key,omitempty"`
	ExpiresAt int64  `json:"build_key_expires_at,omitempty"`
}

// SignFile signs the image at in and writes the signed image to out (which
// may equal in) and its detached usign signature to out+".sig".
//
// The chunk signature covers the image without its signature chunk (what
// ucert -V checks on the router); the detached signature covers the final
// file, so `signify -V -m IMAGE` and `usign -V` work on the published file
// as it is. Ed25519 is deterministic, so both are reproducible. Outputs are
// written to temporary files and renamed into place only when complete:
// a failure leaves the previous files untouched.
func SignFile(in, out string, s Signer) (*FileResult, error) {
	return signFile(in, out, s, func(r io.ReaderAt, size int64) (*Signed, error) { return Sign(r, size, s) })
}

// SignFileWithBuildKey is SignFile with a delegation chain in the signature
// chunk (see SignWithBuildKey). The detached signature is still the
// release key's, over the final file.
func SignFileWithBuildKey(in, out string, s Signer, opt BuildKeyOptions) (*FileResult, error) {
	return signFile(in, out, s, func(r io.ReaderAt, size int64) (*Signed, error) { return SignWithBuildKey(r, size, s, opt) })
}

func signFile(in, out string, s Signer, sign func(io.ReaderAt, int64) (*Signed, error)) (*FileResult, error) {
	src, err := os.Open(in)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return nil, err
	}
	signed, err := sign(src, fi.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in, err)
	}
	var final bytes.Buffer
	if err := fwimage.AppendChunk(&final, io.NewSectionReader(src, 0, signed.SignedLen), fwimage.TypeSignature, signed.Chunk); err != nil {
		return nil, err
	}
	detached, err := s.SignMessage(final.Bytes())
	if err != nil {
		return nil, err
	}
	if err := WriteFileAtomic(out, final.Bytes(), 0o644); err != nil {
		return nil, err
	}
	if err := WriteFileAtomic(out+".sig", detached.Marshal(), 0o644); err != nil {
		return nil, err
	}
	sum, _ := fwimage.SHA256Range(bytes.NewReader(final.Bytes()), int64(final.Len()))
	return &FileResult{
		Image: out, Detached: out + ".sig", Key: detached.Fingerprint.String(),
		SHA256: fmt.Sprintf("%x", sum), SignedLen: signed.SignedLen,
		BuildKey: signed.BuildKey, ExpiresAt: signed.ExpiresAt,
	}, nil
}

// WriteFileAtomic writes data to a temporary sibling of path, syncs it and
// renames it over path, so readers see the old file or the new one, never
// a part.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// VerifyFile verifies the image at path.
func VerifyFile(path string, keys *usign.Keyring, opt Options) (*Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return Verify(f, fi.Size(), keys, opt)
}
