package apk

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"testing"
)

func read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pub(t testing.TB, name string) *PublicKey {
	p, err := ParsePublicKeyPEM(read(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestKeyID(t *testing.T) {
	// Key id as apk adbdump prints it for the melmac feed's signatures.
	if got := pub(t, "real-melmac.pem").ID.String(); got != "bf8e0c844269e563e20782a19fde51e2" {
		t.Fatalf("key id %s", got)
	}
	if got := pub(t, "test-key.pub.pem").ID.String(); got != "b28bc76157482d624f183d4bc47f7e54" {
		t.Fatalf("key id %s", got)
	}
}

func TestRealIndex(t *testing.T) {
	b := read(t, "real-melmac-packages.adb")
	x, err := ReadIndex(b, NewKeyring(pub(t, "real-melmac.pem")))
	if err != nil {
		t.Fatal(err)
	}
	if len(x.Packages) != 13 {
		t.Fatalf("%d packages", len(x.Packages))
	}
	e := x.Lookup("wireless-regdb")
	if e == nil || e.Version != "2025.10.07-r2" || e.Arch != "noarch" || e.FileSize != 3397 || e.InstalledSize != 6304 ||
		hex.EncodeToString(e.Identity) != "f8296b126a2e80398738f11b7681f6fdaad777704832da2e2498521db76ec78c" ||
		len(e.Depends) != 1 || e.Depends[0] != "libc" || e.Provides[0] != "wireless-regdb-any" || e.License != "ISC" {
		t.Fatalf("entry %+v", e)
	}
	if _, err := ReadIndex(b, NewKeyring(pub(t, "test-key.pub.pem"))); !errors.Is(err, ErrUntrustedKey) {
		t.Fatalf("other key: %v", err)
	}
	bad := bytes.Clone(b)
	dec, _ := decompress(bad, 0)
	dec[100] ^= 1
	if _, err := ReadIndex(dec, NewKeyring(pub(t, "real-melmac.pem"))); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered: %v", err)
	}
}

func TestRealPackages(t *testing.T) {
	x, err := ReadIndex(read(t, "real-melmac-packages.adb"), NewKeyring(pub(t, "real-melmac.pem")))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"wireless-regdb-2025.10.07-r2.apk", "static-device-names-1.0.1-r1.apk", "luci-app-pbr-1.2.3-r67.apk"} {
		b := read(t, n)
		p, err := ReadPackage(bytes.NewReader(b), 0)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		e := x.Lookup(p.Info.Name)
		if err := p.MatchIndex(e); err != nil {
			t.Fatal(err)
		}
		if e.FileSize != uint64(len(b)) || !p.Signed {
			t.Fatalf("%s: size %d signed %v", n, e.FileSize, p.Signed)
		}
		if n[0] == 'w' {
			if len(p.Files) != 2 || p.Files[1].Path != "lib/firmware/regulatory.db" || p.Files[1].Size != 6276 ||
				hex.EncodeToString(p.Info.UniqueID) != "14f7e5baabd887c9e4d32ef9d8e4ce595c65b867" || p.Scripts["post-install"] == "" {
				t.Fatalf("%+v", p)
			}
		}
	}
}

// testFiles are the inputs gen.sh gives apk mkpkg.
func testFiles() ([]FileEntry, map[string]string) {
	f := []FileEntry{
		{Path: "etc/config/torwrt-test", Mode: 0600, MTime: 1700000000, Data: []byte("config torwrt main\n\toption enabled 1\n")},
		{Path: "usr/bin/torwrt-hello", Mode: 0755, MTime: 1700000000, Data: []byte("#!/bin/sh\necho hello\n")},
		{Path: "usr/bin/torwrt-hi", Mode: 0777 | 1<<27, MTime: 1700000000, Target: "torwrt-hello"},
		{Path: "usr/share/torwrt-test/empty", Mode: 0644, MTime: 1700000000},
	}
	f[2].Mode = 0777 | modeSymlink
	return f, map[string]string{"post-install": "#!/bin/sh\necho installed\n"}
}

func testInfo() PackageInfo {
	return PackageInfo{Name: "torwrt-test", Version: "1.0.0-r1", Arch: "mips_24kc", Description: "torwrt test package",
		License: "MIT", Origin: "feeds/torwrt/torwrt-test", Maintainer: "torwrt <dev@torwrt.invalid>", URL: "https://torwrt.invalid/",
		Depends: []string{"libc", "tor>=0.4"}, Provides: []string{"torwrt-test-any"}, BuildTime: 1700000000}
}

func TestWritePackageMatchesApk(t *testing.T) {
	files, scripts := testFiles()
	var buf bytes.Buffer
	if err := WritePackage(&buf, testInfo(), files, scripts); err != nil {
		t.Fatal(err)
	}
	if want := read(t, "test-pkg.apk"); !bytes.Equal(buf.Bytes(), want) {
		os.WriteFile(t.TempDir()+"/got.apk", buf.Bytes(), 0o644)
		t.Fatalf("WritePackage differs from apk mkpkg (%d vs %d bytes)", buf.Len(), len(want))
	}
	for _, c := range []struct {
		name string
		info PackageInfo
	}{
		{"test-libc.apk", PackageInfo{Name: "libc", Version: "1.2.5-r4", Arch: "mips_24kc", License: "MIT", Description: "fake libc", BuildTime: 1700000000}},
		{"test-tor.apk", PackageInfo{Name: "tor", Version: "0.4.8.13-r1", Arch: "mips_24kc", License: "BSD-3-Clause", Description: "fake tor", Depends: []string{"libc"}, BuildTime: 1700000000}},
	} {
		var b bytes.Buffer
		if err := WritePackage(&b, c.info, nil, nil); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b.Bytes(), read(t, c.name)) {
			t.Fatalf("%s differs", c.name)
		}
	}
	// The deflate variant apk wrote reads the same.
	p1, err := ReadPackage(bytes.NewReader(read(t, "test-pkg-deflate.apk")), 0)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := ReadPackage(bytes.NewReader(buf.Bytes()), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p1.Identity, p2.Identity) || len(p2.Files) != 4 || p2.Files[2].Target != "torwrt-hello" ||
		string(p2.Files[0].Data) != string(files[0].Data) || p2.Scripts["post-install"] != scripts["post-install"] {
		t.Fatalf("read back %+v", p2)
	}
}

const modeSymlink = 1 << (32 - 1 - 4) // fs.ModeSymlink

func TestWriteIndexMatchesApk(t *testing.T) {
	sk, err := ParseSecretKeyPEM(read(t, "test-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	x := &Index{Description: "torwrt test feed"}
	for _, n := range []string{"test-pkg.apk", "test-libc.apk", "test-tor.apk"} {
		b := read(t, n)
		p, err := ReadPackage(bytes.NewReader(b), 0)
		if err != nil {
			t.Fatal(err)
		}
		x.Packages = append(x.Packages, EntryFor(p, uint64(len(b))))
	}
	got, err := WriteIndex(x, sk)
	if err != nil {
		t.Fatal(err)
	}
	want := read(t, "test-index.adb")
	// apk signs with OpenSSL's randomized ECDSA: compare all but the SIG block.
	cg, err1 := parseContainer(got, SchemaIndex)
	cw, err2 := parseContainer(want, SchemaIndex)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if !bytes.Equal(cg.adb, cw.adb) {
		t.Fatalf("ADB block differs from apk mkndx")
	}
	if !bytes.Equal(cg.sigs[0][:18], cw.sigs[0][:18]) {
		t.Fatalf("signature header differs")
	}
	again, _ := WriteIndex(x, sk)
	if !bytes.Equal(got, again) {
		t.Fatal("WriteIndex not deterministic")
	}
	keys := NewKeyring(sk.Public())
	for _, b := range [][]byte{got, want} {
		ix, err := ReadIndex(b, keys)
		if err != nil {
			t.Fatal(err)
		}
		if ix.Lookup("torwrt-test") == nil || ix.Lookup("tor").Depends[0] != "libc" || ix.Lookup("torwrt-test").Depends[1] != "tor>=0.4" {
			t.Fatalf("%+v", ix)
		}
	}
	if _, err := ReadIndex(got, NewKeyring()); !errors.Is(err, ErrUntrustedKey) {
		t.Fatal(err)
	}
	unsigned, _ := WriteIndex(x, nil)
	if _, err := ReadIndex(unsigned, keys); !errors.Is(err, ErrUnsigned) {
		t.Fatal(err)
	}
}

func TestParseInstalled(t *testing.T) {
	a := read(t, "test-installed-1")
	if !bytes.Equal(a, read(t, "test-installed-2")) {
		t.Fatal("two installs differ")
	}
	pk, err := ParseInstalled(a)
	if err != nil {
		t.Fatal(err)
	}
	if len(pk) != 3 || pk[2].Name != "torwrt-test" || len(pk[2].Files) != 4 || pk[2].Flags != "S" ||
		pk[2].Files[0].Path != "etc/config/torwrt-test" || pk[2].Files[0].ACL != "0:0:600" {
		t.Fatalf("%+v", pk)
	}
	x, err := ReadIndex(read(t, "test-index.adb"), NewKeyring(pub(t, "test-key.pub.pem")))
	if err != nil {
		t.Fatal(err)
	}
	// With flag S the C: identity is the first 20 bytes of the index's SHA-256 identity.
	if !bytes.Equal(pk[2].Identity, x.Lookup("torwrt-test").Identity[:20]) {
		t.Fatal("installed identity does not match index")
	}
}
