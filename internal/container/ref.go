// Package container fetches ImageBuilder container images by digest into a
// content-addressed cache and runs commands in them with podman, docker, or
// (for development) directly on the host.
//
// Nothing here ever resolves a tag: every image is named by the SHA-256 of
// its manifest, checked when it is fetched and again whenever it is loaded
// from the cache. Commands are argv slices handed to exec, never shell
// strings.
package container

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

var digestRe = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// ImportedRepository names ImageBuilder images made by `imgbuild ib
// import` from an upstream archive. No registry serves it: such an image
// exists only in the local cache, under its digest. The name only says
// where the image came from; the digest decides which image is used.
const ImportedRepository = "localhost/openwrt/imagebuilder-imported"

// ParseDigest parses a pinned image reference "host/repo@sha256:<64 hex>"
// (a tag may precede the digest, "host/repo:tag@sha256:...", and is then
// only informative). A reference without a digest is refused: a tag moves,
// and a build must never let one decide what runs.
func ParseDigest(ref string) (name.Digest, error) {
	if ref == "" {
		return name.Digest{}, fmt.Errorf("container: empty image reference: pin the image as host/repo@sha256:<64 hex digits> (run `imgbuild lock` to resolve it)")
	}
	at := strings.LastIndex(ref, "@")
	if at < 0 {
		return name.Digest{}, fmt.Errorf("container: image reference %q is not pinned by digest: a tag can move; pin it as %s@sha256:<64 hex digits> (run `imgbuild lock` where the registry is reachable to resolve the tag)", ref, ref)
	}
	dg := ref[at+1:]
	if !digestRe.MatchString(dg) {
		return name.Digest{}, fmt.Errorf("container: image reference %q has a malformed digest %q: want sha256: followed by 64 lowercase hex digits (run `imgbuild lock` to pin it)", ref, dg)
	}
	base := ref[:at]
	if base == "" {
		return name.Digest{}, fmt.Errorf("container: image reference %q has no repository before the digest: want host/repo@%s", ref, dg)
	}
	// A registry host is required: an implicit docker.io is a default that
	// silently decides where the image comes from.
	first := strings.SplitN(base, "/", 2)[0]
	if !strings.Contains(base, "/") || !(strings.ContainsAny(first, ".:") || first == "localhost") {
		return name.Digest{}, fmt.Errorf("container: image reference %q does not name a registry host: write it in full, e.g. ghcr.io/openwrt/imagebuilder@%s", ref, dg)
	}
	d, err := name.NewDigest(ref, name.StrictValidation)
	if err != nil {
		return name.Digest{}, fmt.Errorf("container: image reference %q: %v (want host/repo@sha256:<64 hex digits>)", ref, err)
	}
	return d, nil
}
