package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/torwrt/torwrt/internal/ucert"
)

// sign --build-key-hours writes a 2-element chain that verify accepts
// while the certificate is valid; with --build-key-not-before the output
// is byte-identical across runs. Without the flag, one bare signature.
func TestSignBuildKey(t *testing.T) {
	dir := t.TempDir()
	base, _, keys := fndKeygen(t, dir, "release")
	unsigned := fndUnsigned(3000)

	plain := fndWrite(t, filepath.Join(dir, "plain.bin"), unsigned, 0o644)
	fndMust(t, "sign", "--key", base+".sec", plain)
	if chain, err := ucert.Decode(fndLastChunk(t, fndRead(t, plain))); err != nil || len(chain) != 1 {
		t.Fatalf("default sign: %d elements, %v", len(chain), err)
	}

	now := time.Now().Add(-time.Minute).Unix()
	nb := time.Unix(now, 0).UTC().Format(time.RFC3339)
	var outs [][]byte
	for _, name := range []string{"a.bin", "b.bin"} {
		img := fndWrite(t, filepath.Join(dir, name), unsigned, 0o644)
		r := fndMust(t, "sign", "--key", base+".sec", "--build-key-hours", "2", "--build-key-not-before", nb, img)
		if !strings.Contains(r.stdout, "build key ") {
			t.Errorf("stdout %q does not name the build key", r.stdout)
		}
		outs = append(outs, fndRead(t, img))
		chain, err := ucert.Decode(fndLastChunk(t, outs[len(outs)-1]))
		if err != nil || len(chain) != 2 || chain[0].Payload == nil {
			t.Fatalf("chained sign: %d elements, %v", len(chain), err)
		}
		if v := fndMust(t, "verify", "--keys", keys, img); !strings.Contains(v.stdout, "OK ") {
			t.Errorf("verify: %q", v.stdout)
		}
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Error("same image, key and --build-key-not-before gave different outputs")
	}

	// Expired: valid for one hour, three hours ago.
	old := fndWrite(t, filepath.Join(dir, "old.bin"), unsigned, 0o644)
	fndMust(t, "sign", "--key", base+".sec", "--build-key-hours", "1", "--build-key-not-before", time.Unix(now-3*3600, 0).UTC().Format(time.RFC3339), old)
	fndExpect(t, fndRun(t, "verify", "--keys", keys, old), exitRejected, "certificate expired")

	for _, tc := range []struct {
		args []string
		text string
	}{
		{[]string{"--build-key-hours", "-1"}, "--build-key-hours -1"},
		{[]string{"--build-key-hours", "100000"}, "--build-key-hours 100000"},
		{[]string{"--build-key-not-before", "0"}, "needs --build-key-hours"},
		{[]string{"--build-key-hours", "1", "--build-key-not-before", "yesterday"}, "want unix seconds or RFC 3339"},
	} {
		img := fndWrite(t, filepath.Join(dir, "u.bin"), unsigned, 0o644)
		args := append([]string{"sign", "--key", base + ".sec"}, tc.args...)
		fndExpect(t, fndRun(t, append(args, img)...), exitUsage, tc.text)
		if !bytes.Equal(fndRead(t, img), unsigned) {
			t.Errorf("%v: refused sign changed the image", tc.args)
		}
	}
}
