package apk

import (
	"bytes"
	"encoding/hex"
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/gowrite-index.adb (then rerun gen-crosscheck.sh)")

// crossCheckIndex is the index gen-crosscheck.sh hands to the real apk:
// the three test packages plus an entry that uses every dependency
// operator and the remaining info fields.
func crossCheckIndex(t *testing.T) *Index {
	x := &Index{Description: "torwrt WriteIndex cross-check"}
	for _, n := range []string{"test-pkg.apk", "test-libc.apk", "test-tor.apk"} {
		b := read(t, n)
		p, err := ReadPackage(bytes.NewReader(b), 0)
		if err != nil {
			t.Fatal(err)
		}
		x.Packages = append(x.Packages, EntryFor(p, uint64(len(b))))
	}
	id := make([]byte, 32)
	for i := range id {
		id[i] = byte(i)
	}
	x.Packages = append(x.Packages, IndexEntry{PackageInfo: PackageInfo{
		Name: "torwrt-extra", Version: "1678~a1b2c3d4e5-r2", Arch: "mips_24kc", Description: "not a real file",
		License: "GPL-2.0-only", Origin: "feeds/torwrt/torwrt-extra", RepoCommit: []byte{0xde, 0xad, 0xbe, 0xef},
		Depends:       []string{"libc>=1.2", "tor<~0.5", "!torwrt-old", "torwrt-test=1.0.0-r1", "busybox>1", "dnsmasq<2.91", "kmod-x><1"},
		Provides:      []string{"torwrt-extra-any=1678~a1b2c3d4e5-r2", "cmd:torwrt-extra"},
		Replaces:      []string{"torwrt-old"},
		InstallIf:     []string{"torwrt-test", "luci"},
		InstalledSize: 4096, FileSize: 2048, ProviderPriority: 10, BuildTime: 1700000001,
	}, Identity: id})
	return x
}

// TestWriteIndexCrossCheck checks what the real apk (3.0.6-6-g90b974f,
// see README.md) said about an index WriteIndex wrote: adbdump decodes
// every field as written and verifies the signature, `apk verify` accepts
// the file, and installing torwrt-test from it gives the same installed
// database as installing from apk mkndx's own index.
func TestWriteIndexCrossCheck(t *testing.T) {
	sk, err := ParseSecretKeyPEM(read(t, "test-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	x := crossCheckIndex(t)
	got, err := WriteIndex(x, sk)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("testdata/gowrite-index.adb", got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, read(t, "gowrite-index.adb")) {
		t.Fatal("WriteIndex output changed since apk checked it; run go test -update and gen-crosscheck.sh")
	}

	dump := string(read(t, "gowrite-index.adb.dump"))
	want := []string{"#%SCHEMA: 78646E69", "description: torwrt WriteIndex cross-check", "packages: # 4 items",
		"# sig v00 h04 " + sk.Public().ID.String()}
	for _, e := range x.Packages {
		want = append(want, "- name: "+e.Name, "version: "+e.Version, "hashes: "+hex.EncodeToString(e.Identity))
	}
	want = append(want, "  - tor<~0.5", "  - kmod-x><1", "provider-priority: 10", "repo-commit: deadbeef",
		"install-if: # 2 items", "replaces: # 1 items", "  - cmd:torwrt-extra")
	for _, w := range want {
		if !strings.Contains(dump, w) {
			t.Errorf("apk adbdump output lacks %q", w)
		}
	}
	lines := strings.Split(strings.TrimSpace(dump), "\n")
	if last := lines[len(lines)-1]; !strings.HasSuffix(last, ": OK") {
		t.Errorf("apk adbdump did not verify the signature: %s", last)
	}
	if v := strings.TrimSpace(string(read(t, "gowrite-index.adb.verify"))); !strings.HasSuffix(v, ": OK") || strings.Contains(v, "UNTRUSTED") {
		t.Errorf("apk verify: %s", v)
	}
	if !bytes.Equal(read(t, "gowrite-installed"), read(t, "test-installed-1")) {
		t.Error("installing from the WriteIndex index gave a different installed database")
	}
	// And our reader reads back what apk read.
	ix, err := ReadIndex(got, NewKeyring(sk.Public()))
	if err != nil {
		t.Fatal(err)
	}
	e := ix.Lookup("torwrt-extra")
	if e == nil || e.ProviderPriority != 10 || len(e.Depends) != 7 || e.Replaces[0] != "torwrt-old" || !bytes.Equal(e.RepoCommit, []byte{0xde, 0xad, 0xbe, 0xef}) {
		t.Fatalf("%+v", e)
	}
	// apk lists the dependencies in the order WriteIndex sorted them (YAML
	// quotes the conflict).
	var deps []string
	in := false
	for _, l := range lines {
		switch {
		case l == "    depends: # 7 items":
			in = true
		case in && strings.HasPrefix(l, "      - "):
			deps = append(deps, strings.Trim(strings.TrimPrefix(l, "      - "), "'"))
		default:
			in = false
		}
	}
	if strings.Join(deps, " ") != strings.Join(e.Depends, " ") {
		t.Errorf("apk: depends %q, ReadIndex: %q", deps, e.Depends)
	}
}
