package imagesig_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/torwrt/torwrt/internal/imagesig"
	"github.com/torwrt/torwrt/internal/imagesig/imagesign"
	"github.com/torwrt/torwrt/internal/ucert"
	"github.com/torwrt/torwrt/internal/usign"
)

// TestStockChainedImage: an image signed with the stock flow (usign -G,
// ucert -I, usign -S, ucert -A; see testdata/vectors/README.md) verifies
// while its certificate is valid and is refused outside the window.
func TestStockChainedImage(t *testing.T) {
	img, err := os.ReadFile(filepath.Join("testdata", "vectors", "image.bin"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := usign.ReadPublicKeyFile(filepath.Join("testdata", "vectors", "release.pub"))
	if err != nil {
		t.Fatal(err)
	}
	kr, _ := usign.NewKeyring(pub)
	const from, to = 1796524903, 1828060903
	res, err := imagesig.Verify(bytes.NewReader(img), int64(len(img)), kr, imagesig.Options{Board: "glinet,gl-ar150", Now: time.Unix(from, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Issuer != pub.Fingerprint.String() || res.Key == res.Issuer || res.ValidFrom != from || res.ExpiresAt != to {
		t.Fatalf("result %+v", res)
	}
	for _, tc := range []struct {
		now  int64
		want error
	}{{from - 1, ucert.ErrNotYetValid}, {to, ucert.ErrExpired}} {
		if _, err := imagesig.Verify(bytes.NewReader(img), int64(len(img)), kr, imagesig.Options{Now: time.Unix(tc.now, 0)}); !errors.Is(err, tc.want) {
			t.Errorf("at %d: %v, want %v", tc.now, err, tc.want)
		}
	}
	// A keyring without the release key refuses it.
	other, _ := usign.NewKeyring(testKey(t, 9).Public())
	if _, err := imagesig.Verify(bytes.NewReader(img), int64(len(img)), other, imagesig.Options{Now: time.Unix(from, 0)}); !errors.Is(err, usign.ErrUnknownKey) {
		t.Errorf("untrusted release key: %v", err)
	}
}

func TestSignWithBuildKey(t *testing.T) {
	release := testKey(t, 1)
	kr := keyring(t, release)
	unsigned := unsignedImage(4096)
	opt := imagesig.BuildKeyOptions{NotBefore: time.Unix(1_800_000_000, 0), Lifetime: 6 * time.Hour}
	s, err := imagesign.SignWithBuildKey(t.Context(), bytes.NewReader(unsigned), int64(len(unsigned)), keySigner(t, release), opt)
	if err != nil {
		t.Fatal(err)
	}
	img := appendChunk(unsigned, 0, s.Chunk)
	res, err := imagesig.Verify(bytes.NewReader(img), int64(len(img)), kr, imagesig.Options{Board: "glinet,gl-ar150", Now: opt.NotBefore.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Key != s.BuildKey || res.Issuer != release.Fingerprint.String() || res.ExpiresAt != opt.NotBefore.Unix()+6*3600 {
		t.Fatalf("result %+v, signed %+v", res, s)
	}
	if _, err := imagesig.Verify(bytes.NewReader(img), int64(len(img)), kr, imagesig.Options{Now: opt.NotBefore.Add(6 * time.Hour)}); !errors.Is(err, ucert.ErrExpired) {
		t.Fatalf("after expiry: %v", err)
	}
	// Deterministic: same inputs, same bytes; another image or window,
	// another build key.
	again, _ := imagesign.SignWithBuildKey(t.Context(), bytes.NewReader(unsigned), int64(len(unsigned)), keySigner(t, release), opt)
	if !bytes.Equal(again.Chunk, s.Chunk) {
		t.Fatal("signing twice gave different chunks")
	}
	other := unsignedImage(4097)
	o, _ := imagesign.SignWithBuildKey(t.Context(), bytes.NewReader(other), int64(len(other)), keySigner(t, release), opt)
	later := opt
	later.NotBefore = later.NotBefore.Add(time.Second)
	l, _ := imagesign.SignWithBuildKey(t.Context(), bytes.NewReader(unsigned), int64(len(unsigned)), keySigner(t, release), later)
	if o.BuildKey == s.BuildKey || l.BuildKey == s.BuildKey {
		t.Fatal("build key does not depend on the image and the window")
	}
	// The default path is unchanged: one bare signature by the release key.
	plain, _ := imagesign.Sign(t.Context(), bytes.NewReader(unsigned), int64(len(unsigned)), keySigner(t, release))
	if chain, err := ucert.Decode(plain.Chunk); err != nil || len(chain) != 1 || plain.BuildKey != "" {
		t.Fatalf("plain Sign: %d elements, %v", len(chain), err)
	}
	for _, bad := range []imagesig.BuildKeyOptions{
		{Lifetime: time.Hour},
		{NotBefore: opt.NotBefore},
		{NotBefore: opt.NotBefore, Lifetime: time.Millisecond},
		{NotBefore: opt.NotBefore, Lifetime: imagesig.MaxBuildKeyLifetime + time.Second},
	} {
		if _, err := imagesign.SignWithBuildKey(t.Context(), bytes.NewReader(unsigned), int64(len(unsigned)), keySigner(t, release), bad); err == nil {
			t.Errorf("options %+v accepted", bad)
		}
	}
}

func TestSignFileWithBuildKey(t *testing.T) {
	release := testKey(t, 1)
	dir := t.TempDir()
	in := filepath.Join(dir, "img.bin")
	if err := os.WriteFile(in, unsignedImage(2048), 0o644); err != nil {
		t.Fatal(err)
	}
	opt := imagesig.BuildKeyOptions{NotBefore: time.Unix(1_800_000_000, 0), Lifetime: time.Hour}
	res, err := imagesign.SignFileWithBuildKey(t.Context(), in, in, keySigner(t, release), opt)
	if err != nil {
		t.Fatal(err)
	}
	if res.Key != release.Fingerprint.String() || res.BuildKey == "" || res.ExpiresAt != opt.NotBefore.Unix()+3600 {
		t.Fatalf("result %+v", res)
	}
	v, err := imagesig.VerifyFile(in, keyring(t, release), imagesig.Options{Now: opt.NotBefore})
	if err != nil || v.Key != res.BuildKey {
		t.Fatalf("VerifyFile = %+v, %v", v, err)
	}
	// The detached signature is the release key's, over the whole file.
	data, _ := os.ReadFile(in)
	sig, err := usign.ReadSignatureFile(in + ".sig")
	if err != nil {
		t.Fatal(err)
	}
	if err := release.Public().Verify(data, sig); err != nil {
		t.Fatal(err)
	}
}

// TestTorwrtChainedVector: testdata/vectors/torwrt-chained.bin was made by
// SignWithBuildKey and accepted by stock `ucert -V` (README.md records the
// run). Signing again reproduces it byte for byte, so what we produce today
// is still what stock ucert accepted.
func TestTorwrtChainedVector(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("testdata", "vectors", "torwrt-chained.bin"))
	if err != nil {
		t.Fatal(err)
	}
	release := testKey(t, 1)
	unsigned := unsignedImage(4096)
	s, err := imagesign.SignWithBuildKey(t.Context(), bytes.NewReader(unsigned), int64(len(unsigned)), keySigner(t, release), imagesig.BuildKeyOptions{NotBefore: time.Unix(1796521600, 0), Lifetime: 6 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if got := appendChunk(unsigned, 0, s.Chunk); !bytes.Equal(got, want) {
		t.Fatal("SignWithBuildKey no longer reproduces the vector stock ucert accepted")
	}
	if _, err := imagesig.Verify(bytes.NewReader(want), int64(len(want)), keyring(t, release), imagesig.Options{Now: time.Unix(1796521600, 0)}); err != nil {
		t.Fatal(err)
	}
}
