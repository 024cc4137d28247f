package apk

import (
	"bytes"
	"testing"
)

func FuzzReadIndex(f *testing.F) {
	for _, n := range []string{"real-melmac-packages.adb", "test-index.adb"} {
		f.Add(read(f, n))
	}
	keys := NewKeyring(pub(f, "real-melmac.pem"), pub(f, "test-key.pub.pem"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ReadIndex(b, keys)
		if c, err := parseContainer(b, SchemaIndex); err == nil {
			r := &reader{b: c.adb}
			if root, err := r.obj(r.root()); err == nil {
				pk, _ := r.obj(root.at(2))
				if pk != nil {
					for _, v := range pk.items() {
						r.info(v)
					}
				}
			}
		}
	})
}

func FuzzReadPackage(f *testing.F) {
	for _, n := range []string{"test-pkg.apk", "test-pkg-deflate.apk", "test-libc.apk", "wireless-regdb-2025.10.07-r2.apk"} {
		f.Add(read(f, n))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ReadPackage(bytes.NewReader(b), 1<<20)
	})
}

func FuzzParseInstalled(f *testing.F) {
	f.Add(read(f, "test-installed-1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseInstalled(b)
	})
}
