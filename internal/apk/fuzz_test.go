package apk

import (
	"bytes"
	"compress/flate"
	"testing"
)

// Seeds are small on purpose: Go minimizes every input that finds new
// coverage by trying to delete each byte range, O(n²) runs of the target,
// and does not report those runs until it is done. With the 3.4 KB
// compressed melmac index as a seed each minimization ran into the 60 s
// -fuzzminimizetime limit, which looked like "4 execs in 20 s". The real
// files are covered by the table tests instead.

// deflated returns b as an "ADBd" file (raw deflate after the magic).
func deflated(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	buf.WriteString("ADBd")
	fw, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(b)
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func FuzzReadIndex(f *testing.F) {
	idx := read(f, "test-index.adb")
	f.Add(idx)
	f.Add(deflated(f, idx))
	f.Add(append([]byte("ADBc\x00\x00"), idx...))
	pk := pub(f, "test-key.pub.pem")
	keys := NewKeyring(pk)
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := ReadIndex(b, keys)
		if err == nil && x.SignedBy != pk.ID {
			t.Fatalf("verified by %s", x.SignedBy)
		}
		// Fuzzing cannot forge signatures, so also decode the content
		// of inputs whose signature did not verify.
		d, err := decompress(b, 1<<20)
		if err != nil {
			return
		}
		if c, err := parseContainer(d, SchemaIndex); err == nil {
			decodeIndex(c.adb)
		}
	})
}

func FuzzReadPackage(f *testing.F) {
	for _, n := range []string{"test-pkg.apk", "test-pkg-deflate.apk", "test-libc.apk"} {
		f.Add(read(f, n))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ReadPackage(bytes.NewReader(b), 1<<20)
		if err != nil {
			return
		}
		for _, e := range p.Files {
			if !safePath(e.Path, false) {
				t.Fatalf("unsafe path %q accepted", e.Path)
			}
		}
	})
}

func FuzzParseInstalled(f *testing.F) {
	f.Add(read(f, "test-installed-1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pk, err := ParseInstalled(b)
		if err != nil {
			return
		}
		for _, p := range pk {
			if p.Name == "" {
				t.Fatal("package without name accepted")
			}
			for _, f := range p.Files {
				if !safePath(f.Path, false) {
					t.Fatalf("unsafe path %q accepted", f.Path)
				}
			}
		}
	})
}
