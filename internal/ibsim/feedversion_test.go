package ibsim

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// feedHashes are feedHash of every target's feed at FeedVersion.
var feedHashes = map[string]string{
	"gl-ar150":        "a400031ebb03c2a785907fdd93dd9bdd62f0c3361272b2adcba5af1d0c65b64b",
	"gl-mt300a":       "692995e8194007ec43f7f7ae8329caae1aef04b37834fdebead10d2ad38d584f",
	"gl-ar150-24.10":  "49467a90eb2cc0f72af0a26af069b292f2ef8fe4c60cf89633d34d4a807e3d91",
	"gl-mt300a-24.10": "a700d83a47e2768ecb27dcf28bbb171fe997e0a66d73c3d7cec3bdb3db9e7470",
}

// feedHash hashes a feed directory: each file's slash path and sha256, in
// lexical order.
func feedHash(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%s %x\n", filepath.ToSlash(rel), sha256.Sum256(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// The simulated feed cache replays a feed by target and FeedVersion alone,
// so a change to what Packages writes must come with a new FeedVersion.
func TestFeedVersion(t *testing.T) {
	for _, tg := range Targets() {
		dir := t.TempDir()
		if _, err := Packages(tg, dir); err != nil {
			t.Fatal(err)
		}
		if got, want := feedHash(t, dir), feedHashes[tg.Profile]; got != want {
			t.Errorf("%s: the feed Packages writes hashes to %s, recorded for FeedVersion %d: %q; the output changed, so change FeedVersion (packages.go) and record %q here", tg.Profile, got, FeedVersion, want, got)
		}
	}
}
