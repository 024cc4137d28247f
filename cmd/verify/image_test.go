package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/torwrt/torwrt/internal/fwimage"
	"github.com/torwrt/torwrt/internal/imagesig/imagesign"
	"github.com/torwrt/torwrt/internal/signer"
	"github.com/torwrt/torwrt/internal/ucert"
	"github.com/torwrt/torwrt/internal/usign"
)

const imgTestJSON = `{  "metadata_version": "1.1", "compat_version": "1.0",   "supported_devices":["glinet,gl-ar150","gl-ar150"], "version": { "dist": "OpenWrt", "version": "24.10.3", "revision": "r28872-daca7c049b", "target": "ath79/generic", "board": "glinet_gl-ar150" } }` + "\n"

// imgCase is one `verify image` run: its arguments (paths inside the
// fixture directory) and the exit code and stderr text it must give.
type imgCase struct {
	name     string
	args     []string
	wantCode int
	wantText string
}

func imgTestKey(n byte) *usign.SecretKey {
	k := &usign.SecretKey{Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{n}, 32))}
	for i := range k.Fingerprint {
		k.Fingerprint[i] = n<<4 | byte(i)
	}
	return k
}

func imgAppend(img []byte, typ fwimage.Type, data []byte) []byte {
	out := append(bytes.Clone(img), data...)
	return append(out, fwimage.Trailer(typ, fwimage.FWCRC(out), len(data))...)
}

func imgSign(t *testing.T, img []byte, k *usign.SecretKey) []byte {
	t.Helper()
	sg, err := signer.FromUsign(k)
	if err != nil {
		t.Fatal(err)
	}
	s, err := imagesign.Sign(t.Context(), bytes.NewReader(img), int64(len(img)), sg)
	if err != nil {
		t.Fatal(err)
	}
	return imgAppend(img[:s.SignedLen], fwimage.TypeSignature, s.Chunk)
}

func imgBlob(t *testing.T, s *usign.Signature) []byte {
	t.Helper()
	b, err := ucert.EncodeSignature(s.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// imgFixtures writes the good image, the bad images and the key
// directories to dir and returns the cases. Paths are absolute, so the
// same argv works in-process and under qemu.
func imgFixtures(t *testing.T, dir string) []imgCase {
	t.Helper()
	k, stranger := imgTestKey(1), imgTestKey(9)
	// Small enough that a chunk size just past the end of the file is
	// still within fwtool's 32 KiB, so the size check itself is tested.
	payload := make([]byte, 8<<10)
	for i := range payload {
		payload[i] = byte(i*13 + i>>9)
	}
	meta := fwimage.MetadataChunk([]byte(imgTestJSON))
	unsigned := imgAppend(payload, fwimage.TypeMetadata, meta)
	good := imgSign(t, unsigned, k)
	mod := func(f func([]byte)) []byte { b := bytes.Clone(good); f(b); return b }
	lastChunk := func(signed []byte) []byte {
		n := len(signed)
		size := int(binary.BigEndian.Uint32(signed[n-4:]))
		return signed[n-size : n-16]
	}
	otherSigned := imgSign(t, imgAppend(payload[1:], fwimage.TypeMetadata, meta), k)
	bigMeta := imgAppend(payload, fwimage.TypeMetadata, fwimage.MetadataChunk([]byte(`{"metadata_version":"1.1","supported_devices":["glinet,gl-ar150"],"pad":"`+strings.Repeat("p", 31*1024)+`"}`)))
	bigMetaSig, _ := k.Sign(bigMeta)

	images := map[string][]byte{
		"good":           good,
		"trunc-trailer":  good[:len(good)-9],
		"trunc-data":     good[:len(unsigned)+40],
		"size-too-large": mod(func(b []byte) { binary.BigEndian.PutUint32(b[len(b)-4:], uint32(len(b)+4)) }),
		"crc":            mod(func(b []byte) { b[1000] ^= 0x01 }),
		"crc-field":      mod(func(b []byte) { b[len(b)-12] ^= 0x01 }),
		"unknown-type":   mod(func(b []byte) { b[len(b)-8] = 5 }),
		"unknown-key":    imgSign(t, unsigned, stranger),
		"zero-sig":       imgAppend(unsigned, fwimage.TypeSignature, imgBlob(t, &usign.Signature{Fingerprint: k.Fingerprint})),
		"other-image":    imgAppend(unsigned, fwimage.TypeSignature, lastChunk(otherSigned)),
		"fake-cert":      imgAppend(unsigned, fwimage.TypeSignature, []byte(fwimage.FakeCertificate+"\n")),
		"big-metadata":   imgAppend(bigMeta, fwimage.TypeSignature, imgBlob(t, bigMetaSig)),
	}
	for name, b := range images {
		if err := os.WriteFile(filepath.Join(dir, name+".bin"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	keys := filepath.Join(dir, "keys")
	os.Mkdir(keys, 0o755)
	os.WriteFile(filepath.Join(keys, k.Fingerprint.String()), k.Public().Marshal(), 0o644)
	// A key directory whose key file has a broken base64 line, and one
	// whose key is a byte short.
	badB64 := filepath.Join(dir, "keys-bad-base64")
	os.Mkdir(badB64, 0o755)
	pubFile := string(k.Public().Marshal())
	os.WriteFile(filepath.Join(badB64, k.Fingerprint.String()), []byte(strings.Replace(pubFile, "\nRW", "\nR*", 1)), 0o644)
	shortKey := filepath.Join(dir, "keys-short")
	os.Mkdir(shortKey, 0o755)
	raw := append(append([]byte("Ed"), k.Fingerprint[:]...), k.Key.Public().(ed25519.PublicKey)[:31]...)
	os.WriteFile(filepath.Join(shortKey, k.Fingerprint.String()), []byte("untrusted comment: short\n"+base64.StdEncoding.EncodeToString(raw)+"\n"), 0o644)

	img := func(name string) string { return filepath.Join(dir, name+".bin") }
	std := func(name string) []string {
		return []string{"image", "--keys", keys, "--board", "glinet,gl-ar150", img(name)}
	}
	return []imgCase{
		{"good image", std("good"), exitOK, ""},
		{"good image other board name", []string{"image", "--keys", keys, "--board", "gl-ar150", "-q", img("good")}, exitOK, ""},
		{"truncated in signature trailer", std("trunc-trailer"), exitUnsigned, "no signature chunk"},
		{"truncated in signature data", std("trunc-data"), exitUnsigned, "no signature chunk"},
		{"chunk size larger than file", std("size-too-large"), exitMalformed, "larger than the"},
		{"crc mismatch", std("crc"), exitMalformed, "crc mismatch"},
		{"crc field altered", std("crc-field"), exitMalformed, "crc mismatch"},
		{"unknown chunk type", std("unknown-type"), exitMalformed, "unknown chunk type 5"},
		{"signature by unknown key", std("unknown-key"), exitBadSig, "untrusted key"},
		{"all-zero signature", std("zero-sig"), exitBadSig, "all-zero signature"},
		{"signature of another image", std("other-image"), exitBadSig, "does not verify"},
		{"fake certificate", std("fake-cert"), exitUnsigned, "fake certificate"},
		{"metadata over 30 KiB", std("big-metadata"), exitMalformed, "limit 30720"},
		{"malformed base64 in key file", []string{"image", "--keys", badB64, "--board", "gl-ar150", img("good")}, exitFailure, "bad base64"},
		{"wrong key length", []string{"image", "--keys", shortKey, "--board", "gl-ar150", img("good")}, exitFailure, "payload is 41 bytes, want 42"},
		{"wrong board", []string{"image", "--keys", keys, "--board", "glinet,gl-mt300n-v2", img("good")}, exitWrongBoard, "not for this board"},
		{"missing image", std("missing"), exitFailure, "no such file"},
		{"no image argument", []string{"image", "--keys", keys}, exitUsage, "want one IMAGE"},
	}
}

func TestImageExitCodes(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range imgFixtures(t, dir) {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), &stdout, &stderr, tc.args)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, &stdout, &stderr)
			}
			checkImageOutput(t, tc, stdout.String(), stderr.String())
		})
	}
}

func checkImageOutput(t *testing.T, tc imgCase, stdout, stderr string) {
	t.Helper()
	if tc.wantCode == exitOK {
		if stderr != "" {
			t.Errorf("stderr on success: %s", stderr)
		}
		quiet := false
		for _, a := range tc.args {
			quiet = quiet || a == "-q"
		}
		if quiet != (stdout == "") || (!quiet && !strings.HasPrefix(stdout, "OK ")) {
			t.Errorf("stdout %q", stdout)
		}
		return
	}
	if stdout != "" {
		t.Errorf("stdout on failure: %q", stdout)
	}
	if !strings.Contains(stderr, tc.wantText) {
		t.Errorf("stderr %q does not mention %q", stderr, tc.wantText)
	}
}

// The router binary, cross-compiled as it ships, gives the same verdicts
// under qemu on big- and little-endian MIPS as the host run above.
func TestImageExitCodesMIPS(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("go tool not in PATH; it is needed to cross-compile cmd/verify")
	}
	dir := t.TempDir()
	cases := imgFixtures(t, dir)
	for _, arch := range []struct{ goarch, qemu string }{{"mips", "qemu-mips-static"}, {"mipsle", "qemu-mipsel-static"}} {
		t.Run(arch.goarch, func(t *testing.T) {
			qemu, err := exec.LookPath(arch.qemu)
			if err != nil {
				t.Fatalf("%s not found: install the Debian package qemu-user-static (apt-get install -y qemu-user-static)", arch.qemu)
			}
			bin := filepath.Join(t.TempDir(), "verify-"+arch.goarch)
			build := exec.CommandContext(t.Context(), goTool, "build", "-trimpath", "-ldflags", "-s -w -buildid=", "-o", bin, ".")
			build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch.goarch, "GOMIPS=softfloat")
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("cross-compiling cmd/verify for %s: %v\n%s", arch.goarch, err, out)
			}
			if out, err := exec.Command("file", bin).Output(); err == nil && !strings.Contains(string(out), "MIPS") {
				t.Fatalf("not a MIPS binary: %s", out)
			}
			start := time.Now()
			for _, tc := range cases {
				var stdout, stderr bytes.Buffer
				cmd := exec.CommandContext(t.Context(), qemu, append([]string{bin}, tc.args...)...)
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				code := 0
				if err := cmd.Run(); err != nil {
					ee, ok := err.(*exec.ExitError)
					if !ok {
						t.Fatalf("%s: running %s: %v", tc.name, arch.qemu, err)
					}
					code = ee.ExitCode()
				}
				// The host run of the same case, for the comparison.
				var hout, herr bytes.Buffer
				hostCode := run(t.Context(), &hout, &herr, tc.args)
				if code != hostCode || code != tc.wantCode {
					t.Errorf("%s: %s exit %d, amd64 in-process %d, want %d\nstderr: %s", tc.name, arch.goarch, code, hostCode, tc.wantCode, &stderr)
					continue
				}
				t.Run(tc.name, func(t *testing.T) { checkImageOutput(t, tc, stdout.String(), stderr.String()) })
			}
			t.Logf("%s: %d runs under %s in %v", arch.goarch, len(cases), arch.qemu, time.Since(start).Round(time.Millisecond))
		})
	}
}

// imgCase names are unique: the MIPS test reports by name.
func TestImageCaseNames(t *testing.T) {
	seen := map[string]bool{}
	for _, tc := range imgFixtures(t, t.TempDir()) {
		if seen[tc.name] {
			t.Errorf("duplicate case %q", tc.name)
		}
		seen[tc.name] = true
	}
	if len(seen) < 15 {
		t.Errorf("only %d cases", len(seen))
	}
}
