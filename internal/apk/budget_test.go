package apk

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestWorkBudgetReal checks that files made by apk stay far below the work
// budget: under one unit per ADB byte, where the budget allows workPerByte.
func TestWorkBudgetReal(t *testing.T) {
	for _, n := range []string{"real-melmac-packages.adb", "test-index.adb", "test-pkg.apk", "test-pkg-deflate.apk",
		"luci-app-pbr-1.2.3-r67.apk", "static-device-names-1.0.1-r1.apk", "wireless-regdb-2025.10.07-r2.apk"} {
		b, err := decompress(read(t, n), 0)
		if err != nil {
			t.Fatal(err)
		}
		c, err := parseContainer(b, 0)
		if err != nil {
			t.Fatal(err)
		}
		r := newReader(c.adb)
		root, err := r.obj(r.root())
		if err != nil {
			t.Fatal(err)
		}
		if c.schema == SchemaIndex {
			pk, err := r.obj(root.at(2))
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range pk.items() {
				if _, _, err := r.info(v); err != nil {
					t.Fatal(err)
				}
			}
		} else if _, err := parsePackage(b, 0); err != nil {
			t.Fatal(err)
		} else {
			// parsePackage has its own reader; walk the same values here.
			if _, _, err := r.info(root.at(1)); err != nil {
				t.Fatal(err)
			}
		}
		if r.work == 0 || r.work > len(c.adb) {
			t.Errorf("%s: %d units for %d bytes", n, r.work, len(c.adb))
		}
	}
}

// sharedIndex is a signed index whose packages array holds n references to
// one info object whose depends array holds n references to one dep: a
// few kilobytes that expand to n*n dependencies.
func sharedIndex(t *testing.T, n int) []byte {
	sk, err := ParseSecretKeyPEM(read(t, "test-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	w := newWriter()
	dep := w.obj(typeObject, []uint32{0, w.str("libc")})
	deps := make([]uint32, n+1)
	for i := 1; i <= n; i++ {
		deps[i] = dep
	}
	info := make([]uint32, piMax)
	info[piName] = w.str("bomb")
	info[piVersion] = w.str("1-r1")
	info[piDepends] = w.obj(typeArray, deps)
	iv := w.obj(typeObject, info)
	pk := make([]uint32, n+1)
	for i := 1; i <= n; i++ {
		pk[i] = iv
	}
	w.setRoot(w.obj(typeObject, []uint32{0, w.str("bomb"), w.obj(typeArray, pk)}))
	sig, err := sk.sign(SchemaIndex, w.buf)
	if err != nil {
		t.Fatal(err)
	}
	return appendBlock(appendBlock(fileHeader(SchemaIndex), blockADB, w.buf), blockSIG, sig)
}

// sharedPackage has n directories with distinct names that all share one
// files array of n distinct files: n*n file entries from O(n) bytes.
func sharedPackage(n int) []byte {
	w := newWriter()
	info := make([]uint32, piMax)
	info[piName] = w.str("bomb")
	acl := w.obj(typeObject, []uint32{0, w.int(0644), w.str("root"), w.str("root")})
	files := make([]uint32, n+1)
	for i := 1; i <= n; i++ {
		files[i] = w.obj(typeObject, []uint32{0, w.str(fmt.Sprintf("f%d", i)), acl})
	}
	fa := w.obj(typeArray, files)
	dirs := make([]uint32, n+1)
	for i := 1; i <= n; i++ {
		dirs[i] = w.obj(typeObject, []uint32{0, w.str(fmt.Sprintf("d%d", i)), acl, fa})
	}
	w.setRoot(w.obj(typeObject, []uint32{0, w.obj(typeObject, info), w.obj(typeArray, dirs)}))
	return appendBlock(fileHeader(SchemaPackage), blockADB, w.buf)
}

func TestSharedValuesBounded(t *testing.T) {
	keys := NewKeyring(pub(t, "test-key.pub.pem"))
	// Small: within budget, so the reader does expand shared values.
	x, err := ReadIndex(sharedIndex(t, 8), keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(x.Packages) != 8 || len(x.Packages[7].Depends) != 8 {
		t.Fatalf("%d packages", len(x.Packages))
	}
	p, err := ReadPackage(bytes.NewReader(sharedPackage(8)), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Files) != 64 || p.Files[63].Path != "d8/f8" {
		t.Fatalf("%d files", len(p.Files))
	}
	// Large: refused quickly, after work proportional to the input.
	for _, c := range []struct {
		name string
		b    []byte
		read func([]byte) error
	}{
		{"index", sharedIndex(t, 2000), func(b []byte) error { _, err := ReadIndex(b, keys); return err }},
		{"package", sharedPackage(2000), func(b []byte) error { _, err := ReadPackage(bytes.NewReader(b), 0); return err }},
	} {
		t0 := time.Now()
		if err := c.read(c.b); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%s (%d bytes): %v", c.name, len(c.b), err)
		}
		t.Logf("%s: %d bytes refused in %v", c.name, len(c.b), time.Since(t0))
	}
}
