package pkgdb

import (
	"errors"
	"os"
	"strings"
	"testing"
	"testing/fstest"
)

func TestReadAPK(t *testing.T) {
	// Written by a real apk-tools 3 install (internal/apk/testdata/README.md).
	data, err := os.ReadFile("../apk/testdata/test-installed-1")
	if err != nil {
		t.Fatal(err)
	}
	db, err := Read(fstest.MapFS{APKInstalled: {Data: data}}, "apk")
	if err != nil {
		t.Fatal(err)
	}
	if db.Path != APKInstalled || len(db.Packages) != 3 || db.Packages[0] != (Package{Name: "libc", Version: "1.2.5-r4", Arch: "mips_24kc", License: "MIT"}) {
		t.Fatalf("%+v", db)
	}
	if got := db.Compare(".manifest", []string{"libc", "tor", "torwrt-test"}, []string{"1.2.5-r4", "0.4.8.13-r1", "1.0.0-r1"}); len(got) != 0 {
		t.Fatalf("equal lists differ: %v", got)
	}
	got := strings.Join(db.Compare(".manifest", []string{"libc", "tor", "zlib"}, []string{"1.2.5-r4", "0.4.8.12-r1", "1.3"}), "\n")
	for _, want := range []string{"tor is 0.4.8.13-r1 in the image, 0.4.8.12-r1 in the .manifest", "zlib is in the .manifest but not installed", "torwrt-test 1.0.0-r1 is installed in the image but not in the .manifest"} {
		if !strings.Contains(got, want) {
			t.Errorf("differences %q lack %q", got, want)
		}
	}
}

func TestReadOPKG(t *testing.T) {
	status := "Package: tor\nVersion: 0.4.8.17-r1\nStatus: install user installed\nArchitecture: mips_24kc\nInstalled-Time: 1758316778\n\n" +
		"Package: ppp\nVersion: 2.5.1-r1\nStatus: deinstall hold not-installed\nArchitecture: mips_24kc\n\n"
	db, err := Read(fstest.MapFS{OPKGStatus: {Data: []byte(status)}}, "opkg")
	if err != nil {
		t.Fatal(err)
	}
	if len(db.Packages) != 1 || db.Packages[0].Name != "tor" || db.Packages[0].Arch != "mips_24kc" {
		t.Fatalf("%+v", db.Packages)
	}
}

func TestReadRefuses(t *testing.T) {
	twice := "P:tor\nV:1\n\nP:tor\nV:2\n\n"
	cases := map[string]struct {
		fs      fstest.MapFS
		manager string
		want    string
	}{
		"no database":     {fstest.MapFS{OPKGStatus: {Data: []byte("Package: tor\n")}}, "apk", "no /lib/apk/db/installed"},
		"listed twice":    {fstest.MapFS{APKInstalled: {Data: []byte(twice)}}, "apk", "lists tor twice"},
		"unknown manager": {fstest.MapFS{}, "rpm", "unknown package manager"},
		"oversized":       {fstest.MapFS{APKInstalled: {Data: make([]byte, maxDB+1)}}, "apk", "larger than"},
	}
	for name, c := range cases {
		_, err := Read(c.fs, c.manager)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
	if _, err := Read(fstest.MapFS{}, "opkg"); !errors.Is(err, ErrNoDatabase) {
		t.Errorf("missing database: %v", err)
	}
}
