package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	// KMS providers register their URI schemes (cosign does the same in
	// its main package); internal/signer names the module when one is
	// missing.
	_ "github.com/sigstore/sigstore/pkg/signature/kms/aws"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/azure"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/gcp"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/hashivault"

	"github.com/torwrt/torwrt/internal/cliout"
	distfiles "github.com/torwrt/torwrt/internal/dist"
	"github.com/torwrt/torwrt/internal/imagesig"
	"github.com/torwrt/torwrt/internal/manifest"
	"github.com/torwrt/torwrt/internal/provenance"
	"github.com/torwrt/torwrt/internal/release"
	"github.com/torwrt/torwrt/internal/signer"
	"github.com/torwrt/torwrt/internal/usign"
)

const releaseUsage = `Usage: imgbuild release <subcommand> [flags]

Subcommands:
  prepare   write the unsigned update manifest for every profile in dist/
  sign      add one signature (usign; --detached for a cosign-style one)
  verify    check a manifest (M-of-N, expiry, images) or a key list chain
  keys      write the first (root) key list: imgbuild release keys --keys DIR --threshold M
  rotate    write the next key list, to be signed by the current list's keys
  attest    write cosign signatures, SBOMs and signed provenance into dist/
  pubkey    print a key's usign public key and PEM (for HSM and KMS keys)

Keys (--key): a usign .sec or PEM file (mode 0600), pkcs11:token=…;object=…?module-path=…
(PIN from TORWRT_PKCS11_PIN), or hashivault://, awskms://, gcpkms://, azurekms://.
See docs/releasing.md.
`

func runRelease(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, releaseUsage)
		return usagef("want a subcommand")
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "prepare":
		return releasePrepare(ctx, e, rest)
	case "sign":
		return releaseSign(ctx, e, rest)
	case "verify":
		return releaseVerify(ctx, e, rest)
	case "keys":
		return releaseKeys(ctx, e, rest)
	case "rotate":
		return releaseRotate(ctx, e, rest)
	case "attest":
		return releaseAttest(ctx, e, rest)
	case "pubkey":
		return releasePubkey(ctx, e, rest)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(e.stdout, releaseUsage)
		return nil
	}
	return usagef("unknown subcommand %q; run: imgbuild release help", sub)
}

// trustOptions say which public keys to trust: a directory of usign keys
// (/etc/opkg/keys layout or *.pub files) with a threshold, or a signed key
// list chain starting at a pinned root.
type trustOptions struct {
	keysDir   string
	threshold int
	root      string
	keyLists  stringList
}

func (o *trustOptions) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.keysDir, "keys", "", "directory of trusted usign public keys (*.pub or files named by fingerprint)")
	fs.IntVar(&o.threshold, "threshold", 0, "signatures required from distinct trusted keys (default: the key list's)")
	fs.StringVar(&o.root, "root", "", "pinned root key list (keys.json, version 1) to start the chain from")
	fs.Var(&o.keyLists, "key-list", "signed key list after the root, in order (repeatable)")
}

// resolve returns the trusted keyring and threshold. Either source may be
// absent when allowEmpty.
func (o *trustOptions) resolve(allowEmpty bool) (*usign.Keyring, int, *release.KeyList, error) {
	if o.root != "" {
		root, err := os.ReadFile(o.root)
		if err != nil {
			return nil, 0, nil, err
		}
		var rots [][]byte
		for _, p := range o.keyLists {
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, 0, nil, err
			}
			rots = append(rots, b)
		}
		kl, err := release.VerifyKeyChain(root, rots...)
		if err != nil {
			return nil, 0, nil, rejectedError{err}
		}
		kr, err := kl.Keyring()
		if err != nil {
			return nil, 0, nil, err
		}
		th := kl.Threshold
		if o.threshold > th {
			th = o.threshold
		}
		if o.keysDir != "" {
			return nil, 0, nil, usagef("give --keys or --root, not both")
		}
		return kr, th, kl, nil
	}
	if len(o.keyLists) > 0 {
		return nil, 0, nil, usagef("--key-list needs the pinned --root it rotates from")
	}
	if o.keysDir == "" {
		if allowEmpty {
			kr, _ := usign.NewKeyring()
			return kr, o.threshold, nil, nil
		}
		return nil, 0, nil, usagef("want --keys DIR --threshold M, or --root keys.json")
	}
	kr, err := readKeysDir(o.keysDir)
	if err != nil {
		return nil, 0, nil, err
	}
	return kr, o.threshold, nil, nil
}

var fingerprintName = regexp.MustCompile(`^[0-9a-f]{16}$`)

// readKeysDir reads *.pub files and files named by fingerprint.
func readKeysDir(dir string) (*usign.Keyring, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	kr, _ := usign.NewKeyring()
	for _, ent := range entries {
		n := ent.Name()
		if ent.IsDir() || !(strings.HasSuffix(n, ".pub") || fingerprintName.MatchString(n)) {
			continue
		}
		k, err := usign.ReadPublicKeyFile(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		if err := kr.Add(k); err != nil {
			return nil, err
		}
	}
	if kr.Len() == 0 {
		return nil, fmt.Errorf("%s holds no usign public keys (*.pub or files named by fingerprint)", dir)
	}
	if err := manifest.CheckKeys(kr); err != nil {
		return nil, fmt.Errorf("key directory %s: %w", dir, err)
	}
	return kr, nil
}

func rejectIf(err error, sentinels ...error) error {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return rejectedError{err}
		}
	}
	return err
}

var verifyErrors = []error{
	manifest.ErrThreshold, manifest.ErrExpired, manifest.ErrMalformed, manifest.ErrBadSchema, manifest.ErrTooLarge,
	release.ErrAltered, release.ErrUnverifiable, release.ErrDigest, release.ErrDist, release.ErrRotation,
	release.ErrThreshold, release.ErrKeyList, usign.ErrBadSignature, usign.ErrUnknownKey, provenance.ErrDSSE,
}

func releasePrepare(ctx context.Context, e env, args []string) error {
	var (
		dist, out, channel, issuedAt, group string
		seq, build, minBuild                uint64
		lifetime                            time.Duration
		priority, spread                    int
		o                                   outputOptions
	)
	fs := newFlags(e, "release prepare", "", "Write the unsigned update manifest for every profile in DIST (dist/*/build-report.json).\nEach image is checked against its report. Print the payload sha256 for the key holders.")
	fs.StringVar(&dist, "dist", "dist", "directory of built profiles")
	fs.StringVar(&out, "out", "", "manifest file to write (default: DIST/release.json)")
	fs.StringVar(&channel, "channel", "", "update channel; must be the channel the images were built for (default: theirs, from the build reports)")
	fs.Uint64Var(&seq, "sequence", 0, "manifest sequence number; must grow with every release (required)")
	fs.Uint64Var(&build, "build", 0, "build number of the releases (default: --sequence)")
	fs.Uint64Var(&minBuild, "min-build", 0, "anti-rollback floor: no router installs a lower build")
	fs.DurationVar(&lifetime, "not-after", 720*time.Hour, "how long the manifest stays valid (at most 2160h)")
	fs.StringVar(&issuedAt, "issued-at", "", "issue time, RFC 3339 (default: now)")
	fs.StringVar(&group, "rollout-group", "default", "rollout group")
	fs.IntVar(&priority, "rollout-priority", 100, "100 installs at once; lower spreads installs over --rollout-spread-hours")
	fs.IntVar(&spread, "rollout-spread-hours", 0, "hours a staged rollout spreads over")
	o.addFlags(fs)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return usagef("unexpected arguments %q", rest)
	}
	if seq == 0 {
		return usagef("want --sequence N (higher than the last published manifest's)")
	}
	issued := time.Now()
	if issuedAt != "" {
		if issued, err = time.Parse(time.RFC3339, issuedAt); err != nil {
			return usagef("--issued-at %q: want RFC 3339, e.g. 2025-06-01T12:00:00Z", issuedAt)
		}
	}
	if out == "" {
		out = filepath.Join(dist, "release.json")
	}
	m, data, err := release.Prepare(ctx, release.PrepareOptions{
		Dist: dist, Channel: channel, Sequence: seq, Build: build, MinBuild: minBuild,
		IssuedAt: issued, Lifetime: lifetime, RolloutGroup: group, Priority: priority, SpreadHours: spread,
	})
	if err != nil {
		return rejectIf(err, release.ErrDist)
	}
	if err := imagesig.WriteFileAtomic(out, data, 0o644); err != nil {
		return err
	}
	in, err := release.Inspect(data)
	if err != nil {
		return err
	}
	if o.json {
		return setResult(e, releasePrepareResult{File: out, PayloadSHA256: in.Digest, Manifest: m})
	}
	fmt.Fprintf(e.stdout, "wrote %s: %d releases, sequence %d, valid until %s\npayload sha256 %s\n",
		out, len(m.Releases), m.Sequence, m.NotAfter.UTC().Format(time.RFC3339), in.Digest)
	for _, r := range m.Releases {
		fmt.Fprintf(e.stdout, "  %s: %s build %d, tor %s, %d bytes, sha256 %s\n", r.Profile, r.Image, r.Build, r.TorVersion, r.Size, r.SHA256)
	}
	fmt.Fprintf(e.stdout, "each key holder: imgbuild release sign --key KEY --keys TRUSTED --expect-sha256 %s %s\n", in.Digest, out)
	return nil
}

func releaseSign(ctx context.Context, e env, args []string) error {
	var (
		key, expect string
		detached    bool
		t           trustOptions
		o           outputOptions
	)
	fs := newFlags(e, "release sign", "FILE", "Add one signature to FILE (a manifest from `release prepare` or a key list from\n`release keys`/`release rotate`). Every signature already on FILE is verified first;\nif FILE changed after someone signed it, nothing is written. With --detached, write\nFILE.payload and FILE.payload.<keyid>.sig (cosign verify-blob format) instead; any\nkey type may do that, only Ed25519 keys can add router-checked signatures.")
	fs.StringVar(&key, "key", "", "signing key (file, pkcs11: or KMS URI) (required)")
	fs.StringVar(&expect, "expect-sha256", "", "payload sha256 announced by the release manager; refuse any other")
	fs.BoolVar(&detached, "detached", false, "write a cosign-style detached signature instead of adding to FILE")
	t.addFlags(fs)
	o.addFlags(fs)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usagef("want one FILE")
	}
	file := rest[0]
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	trusted, _, _, err := t.resolve(true)
	if err != nil {
		return err
	}
	s, err := openKey(ctx, e, key)
	if err != nil {
		return err
	}
	defer s.Close()
	opt := release.SignOptions{Trusted: trusted, ExpectSHA256: expect}
	var res *release.SignResult
	var wrote []string
	if detached {
		d, r, err := release.SignDetached(ctx, data, s, opt)
		if err != nil {
			return rejectIf(err, verifyErrors...)
		}
		payload := file + ".payload"
		sigFile := fmt.Sprintf("%s.payload.%s.sig", file, s.KeyID())
		pubFile := fmt.Sprintf("%s.payload.%s.pem", file, s.KeyID())
		pemKey, err := signer.PublicKeyPEM(s.Public())
		if err != nil {
			return err
		}
		for _, w := range []struct {
			path string
			data []byte
		}{{payload, d.Payload}, {sigFile, d.Signature}, {pubFile, pemKey}} {
			if err := imagesig.WriteFileAtomic(w.path, w.data, 0o644); err != nil {
				return err
			}
			wrote = append(wrote, w.path)
		}
		res = r
	} else {
		out, r, err := release.Sign(ctx, data, s, opt)
		if err != nil {
			return rejectIf(err, verifyErrors...)
		}
		if err := imagesig.WriteFileAtomic(file, out, 0o644); err != nil {
			return err
		}
		wrote, res = []string{file}, r
	}
	if o.json {
		return setResult(e, releaseSignResult{Kind: res.Kind, PayloadSHA256: res.Digest, Key: cliout.Key{Fingerprint: res.KeyID},
			Algorithm: string(keyAlgorithm(s)), Detached: detached, Signatures: res.Signatures, Wrote: wrote})
	}
	fmt.Fprintf(e.stdout, "signed %s %s with key %s (%s); payload sha256 %s; %d usign signatures on it\n",
		res.Kind, file, res.KeyID, keyAlgorithm(s), res.Digest, res.Signatures)
	if detached {
		fmt.Fprintf(e.stdout, "check: cosign verify-blob --key %s --signature %s --insecure-ignore-tlog=true %s\n", wrote[2], wrote[1], wrote[0])
	}
	return nil
}

func releaseVerify(ctx context.Context, e env, args []string) error {
	var (
		t    trustOptions
		dist string
		at   string
		o    outputOptions
	)
	fs := newFlags(e, "release verify", "FILE", "Check FILE. A manifest needs --threshold valid signatures from distinct trusted keys\n(a key counted once however often it signed), must not be expired, and with --dist\nevery image must be there with its size, sha256 and a valid signature. A key list\nis checked as the next link of the chain from --root.")
	t.addFlags(fs)
	fs.StringVar(&dist, "dist", "", "also check the images in this directory")
	fs.StringVar(&at, "at", "", "check expiry at this time, RFC 3339 (default: now)")
	o.addFlags(fs)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usagef("want one FILE")
	}
	now := time.Now()
	if at != "" {
		if now, err = time.Parse(time.RFC3339, at); err != nil {
			return usagef("--at %q: want RFC 3339", at)
		}
	}
	data, err := os.ReadFile(rest[0])
	if err != nil {
		return err
	}
	in, err := release.Inspect(data)
	if err != nil {
		return rejectedError{err}
	}
	if in.Kind == release.KindKeyList {
		var kl *release.KeyList
		if t.root == "" {
			kl, err = release.VerifyRootKeyList(data)
		} else {
			var trusted *release.KeyList
			if _, _, trusted, err = t.resolve(false); err != nil {
				return err
			}
			kl, err = release.VerifyRotation(trusted, data)
		}
		if err != nil {
			return rejectIf(err, verifyErrors...)
		}
		if o.json {
			return setResult(e, releaseVerifyResult{Kind: kindKeyList, File: rest[0], PayloadSHA256: in.Digest, KeyList: kl})
		}
		fmt.Fprintf(e.stdout, "key list %s: version %d, %d-of-%d, OK\n", rest[0], kl.Version, kl.Threshold, len(kl.Keys))
		for _, k := range kl.Keys {
			fmt.Fprintf(e.stdout, "  %s %s\n", k.KeyID, k.Holder)
		}
		return nil
	}
	kr, th, _, err := t.resolve(false)
	if err != nil {
		return err
	}
	if th < 1 {
		return usagef("want --threshold M (how many distinct keys must have signed)")
	}
	res, err := release.Verify(ctx, data, release.VerifyOptions{Keys: kr, Threshold: th, Now: now, Dist: dist})
	if err != nil {
		return rejectIf(err, verifyErrors...)
	}
	if o.json {
		r := releaseVerifyResult{Kind: kindManifest, File: rest[0], PayloadSHA256: res.Digest, SignedBy: []cliout.Key{},
			Threshold: th, Ignored: res.Ignored, Sequence: res.Sequence, NotAfter: res.NotAfter, Images: res.Images}
		for _, k := range res.Keys {
			r.SignedBy = append(r.SignedBy, cliout.Key{Fingerprint: k})
		}
		return setResult(e, r)
	}
	fmt.Fprintf(e.stdout, "manifest %s: OK, %d-of-%d threshold met by %s; sequence %d, valid until %s\n",
		rest[0], th, kr.Len(), strings.Join(res.Keys, ", "), res.Sequence, res.NotAfter)
	for _, i := range res.Ignored {
		fmt.Fprintf(e.stdout, "  not counted: %s\n", i)
	}
	if dist != "" {
		fmt.Fprintf(e.stdout, "images checked: %s\n", strings.Join(res.Images, ", "))
	}
	return nil
}

func readHolders(s string) map[string]string {
	m := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		if k, v, ok := strings.Cut(part, "="); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

func writeKeyList(e env, asJSON bool, out string, data []byte, kl *release.KeyList, revoked []string) error {
	if err := imagesig.WriteFileAtomic(out, data, 0o644); err != nil {
		return err
	}
	in, err := release.Inspect(data)
	if err != nil {
		return err
	}
	if asJSON {
		res := releaseKeyListResult{File: out, PayloadSHA256: in.Digest, Version: kl.Version, Threshold: kl.Threshold, Keys: []cliout.Key{}, Revoked: []cliout.Key{}}
		for _, k := range kl.Keys {
			res.Keys = append(res.Keys, cliout.Key{Fingerprint: k.KeyID, Comment: k.Holder})
		}
		for _, k := range revoked {
			res.Revoked = append(res.Revoked, cliout.Key{Fingerprint: k})
		}
		return setResult(e, res)
	}
	if len(revoked) > 0 {
		fmt.Fprintf(e.stdout, "revoking keys: %s\n", strings.Join(revoked, ", "))
	}
	fmt.Fprintf(e.stdout, "wrote %s: key list version %d, %d-of-%d, payload sha256 %s\n", out, kl.Version, kl.Threshold, len(kl.Keys), in.Digest)
	fmt.Fprintf(e.stdout, "it needs signatures: imgbuild release sign --key KEY %s\n", out)
	return nil
}

func releaseKeys(_ context.Context, e env, args []string) error {
	var dir, out, holders string
	var threshold int
	var o outputOptions
	fs := newFlags(e, "release keys", "", "Write the root key list (version 1, unsigned) from a directory of usign public keys.\nA threshold of its own keys must then sign it; verifiers pin it.")
	o.addFlags(fs)
	fs.StringVar(&dir, "keys", "", "directory of the release keys' usign public keys (required)")
	fs.IntVar(&threshold, "threshold", 0, "signatures a manifest needs (required)")
	fs.StringVar(&out, "out", "keys.json", "key list file to write")
	fs.StringVar(&holders, "holders", "", "who holds which key: FINGERPRINT=name,...")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 0 || dir == "" || threshold < 1 {
		return usagef("want --keys DIR --threshold M")
	}
	kr, err := readKeysDir(dir)
	if err != nil {
		return err
	}
	kl, err := release.NewKeyList(1, threshold, kr.Keys(), readHolders(holders))
	if err != nil {
		return usageError{err}
	}
	data, err := release.NewKeyListEnvelope(kl)
	if err != nil {
		return err
	}
	return writeKeyList(e, o.json, out, data, kl, nil)
}

func releaseRotate(_ context.Context, e env, args []string) error {
	var t trustOptions
	var dir, out, holders string
	var threshold int
	var o outputOptions
	fs := newFlags(e, "release rotate", "", "Write the next key list (version +1, unsigned) with the keys in --new-keys. The\ncurrent list is found by walking --root and --key-list. The new list must be signed by\na threshold of the current list's keys and a threshold of its own keys.")
	t.addFlags(fs)
	fs.StringVar(&dir, "new-keys", "", "directory of the new list's usign public keys (required)")
	fs.IntVar(&threshold, "new-threshold", 0, "threshold of the new list (required)")
	o.addFlags(fs)
	fs.StringVar(&out, "out", "", "key list file to write (required)")
	fs.StringVar(&holders, "holders", "", "who holds which key: FINGERPRINT=name,...")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 0 || dir == "" || threshold < 1 || out == "" || t.root == "" {
		return usagef("want --root keys.json [--key-list ...] --new-keys DIR --new-threshold M --out FILE")
	}
	_, _, current, err := t.resolve(false)
	if err != nil {
		return err
	}
	kr, err := readKeysDir(dir)
	if err != nil {
		return err
	}
	data, next, err := release.Rotate(current, kr.Keys(), threshold, readHolders(holders))
	if err != nil {
		return usageError{err}
	}
	var removed []string
	for _, k := range current.Keys {
		if _, ok := kr.Lookup(mustFP(k.KeyID)); !ok {
			removed = append(removed, k.KeyID)
		}
	}
	sort.Strings(removed)
	return writeKeyList(e, o.json, out, data, next, removed)
}

func mustFP(s string) usign.Fingerprint {
	fp, _ := usign.ParseFingerprint(s)
	return fp
}

func releaseAttest(ctx context.Context, e env, args []string) error {
	var (
		dist, keysDir, lockDir, builderID, repo, commit string
		keys                                            stringList
		o                                               outputOptions
	)
	fs := newFlags(e, "release attest", "", "For every profile in DIST write IMAGE.cosign.sig and cosign.pub (from the build's\nusign signature), the SBOM when the build wrote none (needs the lock), and\nprovenance.intoto.jsonl: the provenance statement signed as DSSE by each --key.")
	fs.StringVar(&dist, "dist", "dist", "directory of built profiles")
	fs.StringVar(&keysDir, "keys", "", "directory of release public keys (required: finds the key behind each image signature)")
	fs.Var(&keys, "key", "key that signs the provenance (repeatable; file, pkcs11: or KMS URI)")
	fs.StringVar(&lockDir, "lock-dir", "", "directory with <profile>/lock.json for the SBOM (default: dist/<profile>/lock.json)")
	fs.StringVar(&builderID, "builder-id", "", "SLSA builder id (CI: the workflow's URI)")
	fs.StringVar(&repo, "source-repo", "", "source repository URI")
	fs.StringVar(&commit, "source-commit", "", "source commit (40 hex)")
	o.addFlags(fs)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 0 || keysDir == "" {
		return usagef("want --keys DIR")
	}
	kr, err := readKeysDir(keysDir)
	if err != nil {
		return err
	}
	var signers []signer.Signer
	for _, k := range keys {
		s, err := openKey(ctx, e, k)
		if err != nil {
			return err
		}
		defer s.Close()
		signers = append(signers, s)
	}
	res, err := release.Attest(ctx, release.AttestOptions{
		Dist: dist, Keys: kr, Signers: signers, LockDir: lockDir,
		BuilderID: builderID, SourceRepo: repo, SourceCommit: commit, Tool: toolVersion(),
	})
	if err != nil {
		return rejectIf(err, verifyErrors...)
	}
	if o.json {
		return setResult(e, releaseAttestResult{Profiles: append([]release.Attested{}, res...)})
	}
	for _, a := range res {
		fmt.Fprintf(e.stdout, "%s: wrote %s\n", a.Profile, strings.Join(a.Wrote, ", "))
		for _, n := range a.Notes {
			fmt.Fprintf(e.stdout, "  note: %s\n", n)
		}
		fmt.Fprintf(e.stdout, "  check: cosign verify-blob --key %s --signature %s --insecure-ignore-tlog=true %s\n",
			filepath.Join(dist, a.Profile, distfiles.CosignPubFile), filepath.Join(dist, a.Profile, a.Image+distfiles.CosignSuffix), filepath.Join(dist, a.Profile, a.Image))
	}
	return nil
}

func toolVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.Main.Version
	}
	return "(devel)"
}

func releasePubkey(ctx context.Context, e env, args []string) error {
	var key, out string
	var o outputOptions
	fs := newFlags(e, "release pubkey", "", "Print (or write to --out DIR) the public key of --key: the usign .pub file for\nEd25519 keys (for /etc/opkg/keys and key lists) and a PEM for cosign.")
	o.addFlags(fs)
	fs.StringVar(&key, "key", "", "key (file, pkcs11: or KMS URI) (required)")
	fs.StringVar(&out, "out", "", "write KEYID.pub and KEYID.pem into this directory")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return usagef("unexpected arguments %q", rest)
	}
	s, err := openKey(ctx, e, key)
	if err != nil {
		return err
	}
	defer s.Close()
	pemKey, err := signer.PublicKeyPEM(s.Public())
	if err != nil {
		return err
	}
	var pubFile []byte
	if up, err := signer.UsignPublicKey(s); err == nil {
		up.Comment = "torwrt release key " + s.KeyID()
		pubFile = up.Marshal()
	}
	res := releasePubkeyResult{Key: cliout.Key{Fingerprint: s.KeyID()}, Algorithm: string(keyAlgorithm(s)), Usign: string(pubFile), PEM: string(pemKey), Wrote: []string{}}
	if out == "" {
		if o.json {
			return setResult(e, res)
		}
		fmt.Fprintf(e.stdout, "key %s (%s)\n%s%s", s.KeyID(), keyAlgorithm(s), pubFile, pemKey)
		return nil
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if pubFile != nil {
		if err := imagesig.WriteFileAtomic(filepath.Join(out, s.KeyID()+".pub"), pubFile, 0o644); err != nil {
			return err
		}
		res.Wrote = append(res.Wrote, filepath.Join(out, s.KeyID()+".pub"))
	}
	if err := imagesig.WriteFileAtomic(filepath.Join(out, s.KeyID()+".pem"), pemKey, 0o644); err != nil {
		return err
	}
	res.Wrote = append(res.Wrote, filepath.Join(out, s.KeyID()+".pem"))
	if o.json {
		return setResult(e, res)
	}
	fmt.Fprintf(e.stdout, "wrote the public key of %s (%s) to %s\n", s.KeyID(), keyAlgorithm(s), out)
	return nil
}

// The results of the release subcommands' --json
// (torwrt.imgbuild.release.<subcommand>/v1), documented in docs/cli.md.

type releasePrepareResult struct {
	File          string             `json:"file"`
	PayloadSHA256 string             `json:"payload_sha256"`
	Manifest      *manifest.Manifest `json:"manifest"`
}

type releaseSignResult struct {
	Kind          string     `json:"kind"` // "manifest" or "key_list"
	PayloadSHA256 string     `json:"payload_sha256"`
	Key           cliout.Key `json:"key"`
	Algorithm     string     `json:"algorithm"`
	Detached      bool       `json:"detached"`
	Signatures    int        `json:"signatures"` // usign signatures on the file now
	Wrote         []string   `json:"wrote"`
}

const (
	kindManifest = "manifest"
	kindKeyList  = "key_list"
)

type releaseVerifyResult struct {
	Kind          string `json:"kind"` // "manifest" or "key_list"
	File          string `json:"file"`
	PayloadSHA256 string `json:"payload_sha256"`
	// For a manifest:
	SignedBy  []cliout.Key `json:"signed_by,omitempty"` // the distinct trusted keys counted
	Threshold int          `json:"threshold,omitempty"`
	Ignored   []string     `json:"ignored,omitempty"` // signatures not counted, and why
	Sequence  uint64       `json:"sequence,omitempty"`
	NotAfter  string       `json:"not_after,omitempty"`
	Images    []string     `json:"images,omitempty"` // checked with --dist
	// For a key list:
	KeyList *release.KeyList `json:"key_list,omitempty"`
}

type releaseKeyListResult struct {
	File          string       `json:"file"`
	PayloadSHA256 string       `json:"payload_sha256"`
	Version       uint64       `json:"version"`
	Threshold     int          `json:"threshold"`
	Keys          []cliout.Key `json:"keys"`    // comment: the holder
	Revoked       []cliout.Key `json:"revoked"` // rotate: keys of the current list not in the new one
}

type releaseAttestResult struct {
	Profiles []release.Attested `json:"profiles"`
}

type releasePubkeyResult struct {
	Key       cliout.Key `json:"key"`
	Algorithm string     `json:"algorithm"`
	Usign     string     `json:"usign_public_key,omitempty"` // the .pub file's text, for Ed25519 keys
	PEM       string     `json:"pem"`
	Wrote     []string   `json:"wrote"` // with --out
}
