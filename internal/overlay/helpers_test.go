package overlay

import (
	"crypto/sha256"
	"encoding/binary"
	"io"
	"path/filepath"
	"testing"

	"github.com/torwrt/torwrt/internal/profile"
	"github.com/torwrt/torwrt/internal/routerconf"
	"github.com/torwrt/torwrt/internal/usign"
)

// detReader is a deterministic byte stream, so test keys (and with them
// the golden files) are the same on every run.
type detReader struct {
	seed string
	n    uint64
	buf  []byte
}

func (r *detReader) Read(p []byte) (int, error) {
	for len(r.buf) < len(p) {
		var ctr [8]byte
		binary.BigEndian.PutUint64(ctr[:], r.n)
		r.n++
		sum := sha256.Sum256(append([]byte(r.seed), ctr[:]...))
		r.buf = append(r.buf, sum[:]...)
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

var _ io.Reader = (*detReader)(nil)

// testKey returns a usign key pair made from seed.
func testKey(t testing.TB, seed string) *usign.SecretKey {
	t.Helper()
	k, err := usign.GenerateKey(&detReader{seed: seed}, "torwrt test key "+seed)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func releaseKey(t testing.TB, seed string) ReleaseKey {
	pub := testKey(t, seed).Public()
	return ReleaseKey{Fingerprint: pub.Fingerprint.String(), PublicKey: pub.Marshal()}
}

// testLogo is a small SVG logo.
const testLogo = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 48 48" width="48" height="48"><circle cx="24" cy="24" r="20" fill="#7d4698"/></svg>
`

// testEpoch is OpenWrt 24.10.3's SOURCE_DATE_EPOCH.
const testEpoch = 1758316778

// shippedProfiles is the repository's profiles/ directory.
var shippedProfiles = filepath.Join("..", "..", "profiles")

// loadProfile loads a shipped profile, its device facts resolved.
func loadProfile(t testing.TB, id string) *profile.Profile {
	t.Helper()
	p, err := profile.Load(shippedProfiles, id)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// deviceProfiles are the shipped profiles that state their device facts
// themselves (no device:), sorted: each has a golden tree. A variant
// such as gl-ar150-24.10 renders its primary's tree
// (TestVariantsRenderTheirPrimary).
func deviceProfiles(t testing.TB) []string {
	t.Helper()
	ids, err := profile.List(shippedProfiles)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, id := range ids {
		if loadProfile(t, id).DeviceID() == id {
			out = append(out, id)
		}
	}
	if len(out) < 3 {
		t.Fatalf("shipped device profiles %v: want at least gl-ar150, gl-mt300a and gl-mt300a-lede17", out)
	}
	return out
}

// testInput is a complete, valid Input for a shipped profile, as the
// builder would pass it.
func testInput(t testing.TB, id string) Input {
	t.Helper()
	in, err := ForProfile(loadProfile(t, id))
	if err != nil {
		t.Fatal(err)
	}
	return withRelease(t, in)
}

// withRelease sets what the brand and the release decide, as the builder
// would.
func withRelease(t testing.TB, in Input) Input {
	t.Helper()
	in.ReleaseKeys = []ReleaseKey{releaseKey(t, "release-1"), releaseKey(t, "release-2")}
	in.UpdateThreshold = 2
	in.UpdateMirrors = []string{
		"https://updates.torwrt.example/releases",
		"http://torwrtupdatesxyzabcdefghijklmnopqrstuvwxyz234567abcdefghijkl.onion/releases",
	}
	in.FirmwareVersion = "24.10.3-torwrt.1"
	in.Channel = "stable"
	in.Radio.Country = "DE"
	in.FirmwareBuild = 7
	in.Brand = StatusBrand{
		Vendor:     "The torwrt project",
		Colors:     routerconf.Colors{Primary: "#7d4698", Background: "#ffffff", Text: "#1b1b1b"},
		Tagline:    "Tor for everything behind this router",
		Footer:     "Free software. Verify before you trust.",
		SupportURL: "https://torwrt.example/support",
		Language:   "en",
		LogoName:   "logo.svg",
		Logo:       []byte(testLogo),
	}
	in.SourceDateEpoch = testEpoch
	in.ExtraFiles = []ExtraFile{{
		Path: "/usr/sbin/torwrt-verify",
		Mode: 0o755,
		Data: []byte("#!/bin/sh\n# stand-in for the cross-compiled daemon\nexit 1\n"),
	}}
	return in
}
