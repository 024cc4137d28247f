// Package release turns a dist/ directory of built profiles into a
// published release: the unsigned update manifest for every profile
// (Prepare), one signature per key holder (Sign, run on different machines
// with offline or HSM keys), the M-of-N check (Verify), key rotation through
// signed key lists (keys.go), and the files users check with common tools:
// cosign-style detached signatures, SBOMs and signed provenance (Attest).
//
// Signatures are over exact bytes. A signer first checks every signature
// already on the file; if the payload changed after someone signed it, the
// old signature no longer verifies and the signer refuses.
package release

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/torwrt/torwrt/internal/dist"
	"github.com/torwrt/torwrt/internal/fwimage"
	"github.com/torwrt/torwrt/internal/imagesig"
	"github.com/torwrt/torwrt/internal/manifest"
	"github.com/torwrt/torwrt/internal/signer"
	"github.com/torwrt/torwrt/internal/usign"
)

// Errors callers branch on (cmd/imgbuild maps them to "rejected").
var (
	// ErrAltered: a signature on the file no longer verifies: the payload
	// changed after it was signed.
	ErrAltered = errors.New("release: file changed after it was signed")
	// ErrUnverifiable: a signature on the file is by a key the signer
	// cannot check.
	ErrUnverifiable = errors.New("release: cannot check an existing signature")
	// ErrDigest: the payload is not the one the key holder was told to sign.
	ErrDigest = errors.New("release: payload digest differs from the expected one")
	// ErrDist: dist/ does not match the manifest (missing, resized,
	// re-hashed or badly signed image).
	ErrDist = errors.New("release: dist does not match the manifest")
)

// PrepareOptions say what manifest to write.
type PrepareOptions struct {
	Dist string
	// Channel is the manifest's channel. Every image must have been built
	// for it (its report's channel, the brand's): a router refuses a
	// manifest of another channel. Empty takes the reports' channel.
	Channel  string
	Sequence uint64
	// Build is the build number of every release; zero means Sequence.
	Build uint64
	// MinBuild is the anti-rollback floor written as min_version.
	MinBuild uint64
	// IssuedAt is when the manifest is issued (whole seconds, UTC).
	IssuedAt time.Time
	// Lifetime is how long it stays valid (not_after - issued_at).
	Lifetime time.Duration
	// RolloutGroup, Priority and SpreadHours stage the rollout.
	RolloutGroup string
	Priority     int
	SpreadHours  int
}

// Prepare reads every profile in o.Dist, checks each image against its
// build report (size, sha256, metadata), and returns the unsigned manifest
// and its envelope file.
func Prepare(ctx context.Context, o PrepareOptions) (*manifest.Manifest, []byte, error) {
	profiles, err := dist.FindProfiles(o.Dist)
	if err != nil {
		return nil, nil, err
	}
	build := o.Build
	if build == 0 {
		build = o.Sequence
	}
	group := o.RolloutGroup
	if group == "" {
		group = "default"
	}
	issued := o.IssuedAt.UTC().Truncate(time.Second)
	m := &manifest.Manifest{
		Schema: manifest.Schema, Channel: o.Channel, IssuedAt: issued, NotAfter: issued.Add(o.Lifetime),
		Sequence: o.Sequence,
	}
	for _, p := range profiles {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		r := p.Report
		// The images' routers accept only manifests of their brand's
		// channel: a manifest of another would be refused by every one.
		switch {
		case r.Channel == "":
			return nil, nil, fmt.Errorf("%w: %s names no release channel (built by an older imgbuild); rebuild profile %s", ErrDist, filepath.Join(p.Dir, dist.ReportFile), r.Profile)
		case m.Channel == "":
			m.Channel = r.Channel
		case r.Channel != m.Channel:
			return nil, nil, fmt.Errorf("%w: profile %s was built for channel %q (its brand's), the manifest is for channel %q: its routers would refuse the manifest; prepare one manifest per channel (--channel %s) from a dist of that channel's builds",
				ErrDist, r.Profile, r.Channel, m.Channel, r.Channel)
		}
		data, err := os.ReadFile(p.ImagePath())
		if err != nil {
			return nil, nil, fmt.Errorf("profile %s: %w", r.Profile, err)
		}
		sum := sha256Hex(data)
		if sum != r.ImageSHA256 || int64(len(data)) != r.ImageSize {
			return nil, nil, fmt.Errorf("%w: %s is %d bytes with sha256 %s, its build report says %d bytes, %s; rebuild it",
				ErrDist, p.ImagePath(), len(data), sum, r.ImageSize, r.ImageSHA256)
		}
		boards, err := imageBoards(data)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", p.ImagePath(), err)
		}
		tor := ""
		for _, pk := range r.Packages {
			if name, ver, ok := strings.Cut(pk, " "); ok && name == "tor" {
				tor = ver
			}
		}
		if tor == "" {
			return nil, nil, fmt.Errorf("profile %s: the build report lists no tor package; a torwrt release must pin Tor", r.Profile)
		}
		// The image states its own build number in /etc/torwrt/release.json;
		// the manifest must list the same, or the router's anti-rollback
		// would compare different numbers.
		relBuild := build
		switch {
		case r.Build != 0 && o.Build != 0 && r.Build != o.Build:
			return nil, nil, fmt.Errorf("%w: profile %s was built as build %d, prepare was asked for build %d; rebuild with --build %d", ErrDist, r.Profile, r.Build, o.Build, o.Build)
		case r.Build != 0:
			relBuild = r.Build
		}
		m.Releases = append(m.Releases, manifest.Release{
			Profile: r.Profile, Board: boards, Version: r.Version, Build: relBuild, Image: r.Image,
			Size: int64(len(data)), SHA256: sum, TorVersion: tor, MinVersion: o.MinBuild,
			Rollout: manifest.Rollout{Group: group, Priority: o.Priority, SpreadHours: o.SpreadHours},
		})
	}
	env, err := manifest.NewEnvelope(m)
	if err != nil {
		return nil, nil, err
	}
	out, err := env.Marshal()
	if err != nil {
		return nil, nil, err
	}
	return m, out, nil
}

func imageBoards(data []byte) ([]string, error) {
	layout, err := fwimage.Parse(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, err
	}
	c, ok := layout.Last(fwimage.TypeMetadata)
	if !ok {
		return nil, imagesig.ErrNoMetadata
	}
	meta, _, err := fwimage.ParseMetadataChunk(data[c.Offset : c.Offset+c.Len])
	if err != nil {
		return nil, err
	}
	if len(meta.SupportedDevices) == 0 {
		return nil, errors.New("image metadata lists no supported_devices")
	}
	return append([]string{}, meta.SupportedDevices...), nil
}

// Kind of a signed file.
const (
	KindManifest = "manifest"
	KindKeyList  = "keys"
)

// Inspected is what a signed file holds.
type Inspected struct {
	Kind     string
	Envelope *manifest.Envelope
	Manifest *manifest.Manifest
	KeyList  *KeyList
	// Digest is the hex sha256 of the signed payload: what key holders
	// compare out of band before signing.
	Digest string
}

// Inspect decodes an envelope file (manifest or key list).
func Inspect(data []byte) (*Inspected, error) {
	env, err := manifest.Decode(data, manifest.MaxSize)
	if err != nil {
		return nil, err
	}
	in := &Inspected{Envelope: env, Digest: sha256Hex(env.Signed)}
	var probe struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(env.Signed, &probe) == nil && probe.Type == KeyListType {
		if in.KeyList, err = DecodeKeyList(env.Signed); err != nil {
			return nil, err
		}
		in.Kind = KindKeyList
		return in, nil
	}
	if in.Manifest, err = manifest.DecodeManifest(env.Signed); err != nil {
		return nil, err
	}
	in.Kind = KindManifest
	return in, nil
}

// SignOptions configure Sign.
type SignOptions struct {
	// Trusted are the public keys existing signatures are checked with.
	// For a key list, its own keys are added.
	Trusted *usign.Keyring
	// ExpectSHA256, when set, is the payload digest the key holder was
	// given out of band; any other payload is refused.
	ExpectSHA256 string
}

// SignResult says what Sign did.
type SignResult struct {
	Kind       string `json:"kind"`
	Digest     string `json:"payload_sha256"`
	KeyID      string `json:"keyid"`
	Signatures int    `json:"signatures"`
}

// checkExisting verifies every signature already on the file. Any that
// does not verify means the payload changed after it was signed.
func checkExisting(ctx context.Context, in *Inspected, keyID string, o SignOptions) error {
	if o.ExpectSHA256 != "" && !strings.EqualFold(o.ExpectSHA256, in.Digest) {
		return fmt.Errorf("%w: payload sha256 is %s, expected %s", ErrDigest, in.Digest, o.ExpectSHA256)
	}
	trusted, _ := usign.NewKeyring()
	if o.Trusted != nil {
		for _, k := range o.Trusted.Keys() {
			if err := trusted.Add(k); err != nil {
				return err
			}
		}
	}
	if in.KeyList != nil {
		kr, err := in.KeyList.Keyring()
		if err != nil {
			return err
		}
		for _, k := range kr.Keys() {
			if err := trusted.Add(k); err != nil {
				return err
			}
		}
	}
	for i, s := range in.Envelope.Signatures {
		if err := ctx.Err(); err != nil {
			return err
		}
		fp := s.Sig.Fingerprint
		if fp.String() == keyID {
			return fmt.Errorf("release: already signed by key %s", keyID)
		}
		if _, ok := trusted.Lookup(fp); !ok {
			return fmt.Errorf("%w: signatures[%d] is by key %s, which is not among the trusted keys; pass its public key (--keys) so the payload can be checked before signing",
				ErrUnverifiable, i, fp)
		}
		if _, err := trusted.VerifyReader(bytes.NewReader(in.Envelope.Signed), s.Sig); err != nil {
			return fmt.Errorf("%w: the signature by key %s no longer verifies (%v); the %s was altered after it was signed, refusing to sign it",
				ErrAltered, fp, err, in.Kind)
		}
	}
	return nil
}

// Sign adds one usign signature by s (an Ed25519 key) to the envelope
// file data, after checking every signature already on it. The output is
// written by the caller atomically; on error nothing should be written.
func Sign(ctx context.Context, data []byte, s signer.Signer, o SignOptions) ([]byte, *SignResult, error) {
	in, err := Inspect(data)
	if err != nil {
		return nil, nil, err
	}
	if err := checkExisting(ctx, in, s.KeyID(), o); err != nil {
		return nil, nil, err
	}
	sig, err := signer.SignUsign(ctx, s, in.Envelope.Signed)
	if errors.Is(err, signer.ErrNotEd25519) {
		return nil, nil, fmt.Errorf("%w; a non-Ed25519 key can add a detached signature instead (imgbuild release sign --detached)", err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("manifest: signing with key %s: %w", s.KeyID(), err)
	}
	if err := in.Envelope.AddSignature(sig); err != nil {
		return nil, nil, err
	}
	out, err := in.Envelope.Marshal()
	if err != nil {
		return nil, nil, err
	}
	return out, &SignResult{Kind: in.Kind, Digest: in.Digest, KeyID: s.KeyID(), Signatures: len(in.Envelope.Signatures)}, nil
}

// Detached is a cosign-style signature over a payload.
type Detached struct {
	// Payload is the exact signed payload of the envelope.
	Payload []byte
	// Signature is base64 of the raw signature (Ed25519 64 bytes, or
	// ECDSA ASN.1 DER), as `cosign verify-blob --signature` reads it.
	Signature []byte
	KeyID     string
}

// SignDetached signs the envelope's payload with s (any supported key,
// ECDSA P-256 included) after the same checks as Sign. It does not change
// the envelope: routers only count usign signatures; this one is for
// people and mirrors checking with cosign.
func SignDetached(ctx context.Context, data []byte, s signer.Signer, o SignOptions) (*Detached, *SignResult, error) {
	in, err := Inspect(data)
	if err != nil {
		return nil, nil, err
	}
	if err := checkExisting(ctx, in, "", o); err != nil {
		return nil, nil, err
	}
	sig, err := s.Sign(ctx, in.Envelope.Signed)
	if err != nil {
		return nil, nil, err
	}
	d := &Detached{Payload: in.Envelope.Signed, Signature: []byte(base64.StdEncoding.EncodeToString(sig)), KeyID: s.KeyID()}
	return d, &SignResult{Kind: in.Kind, Digest: in.Digest, KeyID: s.KeyID(), Signatures: len(in.Envelope.Signatures)}, nil
}

// VerifyOptions configure Verify.
type VerifyOptions struct {
	Keys      *usign.Keyring
	Threshold int
	Now       time.Time
	// Dist, when set, is checked too: every image listed is there with
	// the listed size and sha256 and a valid signature by a trusted key.
	Dist string
}

// VerifyResult is a verified manifest.
type VerifyResult struct {
	Digest   string   `json:"payload_sha256"`
	Keys     []string `json:"keys"`
	Ignored  []string `json:"ignored,omitempty"`
	Sequence uint64   `json:"sequence"`
	NotAfter string   `json:"not_after"`
	Images   []string `json:"images"`
}

// Verify checks a manifest envelope: M-of-N usign signatures from distinct
// trusted keys (repeats count once), the payload's form, expiry, and when
// o.Dist is set the images themselves.
func Verify(ctx context.Context, data []byte, o VerifyOptions) (*VerifyResult, error) {
	v, err := manifest.Check(data, o.Keys, o.Threshold, o.Now, manifest.State{})
	if err != nil {
		return nil, err
	}
	res := &VerifyResult{Digest: v.Digest, Keys: v.Keys, Ignored: v.Ignored, Sequence: v.Manifest.Sequence,
		NotAfter: v.Manifest.NotAfter.UTC().Format(manifest.TimeFormat)}
	for _, r := range v.Manifest.Releases {
		res.Images = append(res.Images, r.Profile+"/"+r.Image)
	}
	if o.Dist != "" {
		if err := VerifyDist(ctx, o.Dist, v.Manifest, o.Keys); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// VerifyDist checks every release of m against dist/<profile>/<image>.
func VerifyDist(ctx context.Context, dist string, m *manifest.Manifest, keys *usign.Keyring) error {
	for _, r := range m.Releases {
		if err := ctx.Err(); err != nil {
			return err
		}
		path := filepath.Join(dist, r.Profile, r.Image)
		fi, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrDist, err)
		}
		if fi.Size() != r.Size {
			return fmt.Errorf("%w: %s is %d bytes, the manifest says %d", ErrDist, path, fi.Size(), r.Size)
		}
		res, err := imagesig.VerifyFile(path, keys, imagesig.Options{Board: r.Board[0]})
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrDist, path, err)
		}
		if res.SHA256 != r.SHA256 {
			return fmt.Errorf("%w: %s has sha256 %s, the manifest says %s", ErrDist, path, res.SHA256, r.SHA256)
		}
	}
	return nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
