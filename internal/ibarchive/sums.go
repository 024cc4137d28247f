// Package ibarchive verifies and unpacks OpenWrt ImageBuilder archives
// (openwrt-imagebuilder-*.tar.zst for 24.10, *.tar.xz before).
//
// VerifySums checks an upstream sha256sums file against its usign
// signature (sha256sums.sig) with pinned keys. ExtractFile and
// ExtractVerified then authenticate the archive before parsing it: they
// copy it into a private file while hashing it, compare the hash with the
// signed or pinned one, and only then decompress that copy. Extraction
// streams through the decompressor into a tar extractor that refuses
// anything that could write outside the destination (absolute paths, "..",
// relative symlinks that resolve outside, writes through any symlink, hard
// links to outside, device nodes) and stops as soon as a size or count
// limit is passed. The destination appears only after everything has been
// checked.
//
// Absolute symlinks are accepted and created as they are, never followed:
// upstream ImageBuilders ship some in staging_dir/host/bin (awk ->
// /usr/bin/gawk, bash -> /bin/bash, ...) that their prerequisite check
// re-points at host tools, and inside the build container they resolve to
// the container's own userland. Result.AbsoluteSymlinks lists them. A
// relative symlink that reaches its target through one is refused, since
// it would leave the tree when used.
//
// Every upstream archive holds one top-level directory; ExtractFile (and
// Extract with ExtractOptions.StripTopDir) requires that and extracts its
// contents, so the destination is the ImageBuilder itself. WriteLayerFile
// writes such a tree as a reproducible layer tar (the image's /builder).
package ibarchive

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/torwrt/torwrt/internal/usign"
)

// Sentinel errors; test with errors.Is. Signature failures wrap the usign
// sentinels (usign.ErrBadSignature, usign.ErrUnknownKey, usign.ErrMalformed).
var (
	ErrCorrupt      = errors.New("corrupt archive")
	ErrUnsafePath   = errors.New("unsafe path")
	ErrSpecialFile  = errors.New("device node or special file")
	ErrTooLarge     = errors.New("limit exceeded")
	ErrHashMismatch = errors.New("sha256 mismatch")
	ErrNotListed    = errors.New("not listed in sha256sums")
	ErrTopDir       = errors.New("not one top-level directory")
)

// Pinned upstream usign keys that sign OpenWrt release sha256sums files
// (formats.md §5). Their fingerprints are Fingerprint2410 and
// Fingerprint2305.
const (
	KeyOpenWrt2410  = "RWTTEMbygz6X95lKDAulctZy3aj15823THXfyrfXgwGbxZlXBd2brNcw"
	KeyOpenWrt2305  = "RWS1BD5w+adc3j2Hqg9+b66CvLR7NlHbsj7wjNVj0XGt/othDgIAOJS+"
	Fingerprint2410 = "d310c6f2833e97f7"
	Fingerprint2305 = "b5043e70f9a75cde"
)

// UpstreamKeys returns the pinned OpenWrt 24.10 and 23.05/snapshot keys.
func UpstreamKeys() []*usign.PublicKey {
	var keys []*usign.PublicKey
	for _, k := range []struct{ line, comment string }{
		{KeyOpenWrt2410, "OpenWrt 24.10 release key"},
		{KeyOpenWrt2305, "OpenWrt 23.05 release key"},
	} {
		pk, err := usign.ParsePublicKey([]byte("untrusted comment: " + k.comment + "\n" + k.line + "\n"))
		if err != nil {
			// The constants are fixed; a test parses them.
			panic(fmt.Sprintf("ibarchive: pinned key %s: %v", k.comment, err))
		}
		keys = append(keys, pk)
	}
	return keys
}

// Sum is one line of a sha256sums file.
type Sum struct {
	Name   string
	SHA256 string // lowercase hex
}

// Sums is a parsed sha256sums file.
type Sums struct {
	Entries []Sum  // in file order
	Signer  string // fingerprint of the key that verified the file, if any
}

// Lookup returns the SHA-256 listed for name.
func (s Sums) Lookup(name string) (string, bool) {
	for _, e := range s.Entries {
		if e.Name == name {
			return e.SHA256, true
		}
	}
	return "", false
}

const maxSumsBytes = 16 << 20

// ParseSums parses lines "<64 hex> *<name>" (binary mode, as the OpenWrt
// build writes them) or "<64 hex>  <name>" (text mode). It does not check a
// signature; use VerifySums for files fetched from upstream.
func ParseSums(b []byte) (Sums, error) {
	var s Sums
	if len(b) > maxSumsBytes {
		return s, fmt.Errorf("ibarchive: sha256sums: %w: %d bytes", ErrTooLarge, len(b))
	}
	seen := map[string]bool{}
	for i, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		bad := func(why string) (Sums, error) {
			return Sums{}, fmt.Errorf("ibarchive: sha256sums line %d: %w: %s: %q", i+1, ErrCorrupt, why, line)
		}
		if len(line) < 67 || line[64] != ' ' || (line[65] != '*' && line[65] != ' ') {
			return bad("want \"<sha256> *<name>\"")
		}
		sum, name := strings.ToLower(line[:64]), line[66:]
		if strings.Trim(sum, "0123456789abcdef") != "" {
			return bad("checksum is not hex")
		}
		if name == "" || strings.HasPrefix(name, "/") || strings.ContainsRune(name, 0) || strings.Contains("/"+name+"/", "/../") {
			return bad("unsafe file name")
		}
		if seen[name] {
			return bad("file listed twice")
		}
		seen[name] = true
		s.Entries = append(s.Entries, Sum{Name: name, SHA256: sum})
	}
	return s, nil
}

// VerifySums checks sigFile (a usign .sig file) over sumsFile with one of
// keys, then parses sumsFile. With no keys it fails; pass UpstreamKeys()
// for upstream releases.
func VerifySums(sumsFile, sigFile []byte, keys ...*usign.PublicKey) (Sums, error) {
	if len(keys) == 0 {
		return Sums{}, errors.New("ibarchive: verifying sha256sums: no trusted keys given")
	}
	sig, err := usign.ParseSignature(sigFile)
	if err != nil {
		return Sums{}, fmt.Errorf("ibarchive: sha256sums.sig: %w", err)
	}
	kr, err := usign.NewKeyring(keys...)
	if err != nil {
		return Sums{}, fmt.Errorf("ibarchive: trusted keys: %w", err)
	}
	k, err := kr.VerifyReader(bytes.NewReader(sumsFile), sig)
	if err != nil {
		return Sums{}, fmt.Errorf("ibarchive: sha256sums signature: %w", err)
	}
	s, err := ParseSums(sumsFile)
	if err != nil {
		return Sums{}, err
	}
	s.Signer = k.Fingerprint.String()
	return s, nil
}
