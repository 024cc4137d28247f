package apk

import (
	"bytes"
	"strings"
	"testing"
)

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1.2.3-r1", "1.2.3-r10", -1},
		{"1.2.3-r2", "1.2.3-r10", -1}, // numbers, not text
		{"1.2.3", "1.2.3-r0", -1},
		{"1.2.3_rc1", "1.2.3", -1}, // pre-release suffixes sort first
		{"1.2.3_rc2", "1.2.3_rc10", -1},
		{"1.2.3_alpha", "1.2.3_beta1", -1},
		{"1.2.3_p1", "1.2.3", 1},    // patch suffixes sort after
		{"1.2.3_p1", "1.2.3-r1", 1}, // an earlier-kind token wins over -r
		{"1.2.3a", "1.2.3", 1},
		{"1.2.3a", "1.2.3.1", -1},
		{"1.2.10", "1.2.3", 1},
		{"1.2.03", "1.2.3", -1}, // leading zero: compared as text
		{"1.01", "1.001", 1},
		{"1678~a1b2c3d4e5-r2", "1678~a1b2c3d4e5-r10", -1}, // OpenWrt git-snapshot versions
		{"1678~a1b2c3d4e4-r2", "1678~a1b2c3d4e5-r2", -1},
		{"1678~a1b2c3d4e5-r2", "1679~0a1b2c3d-r1", -1},
		{"1678", "1678~a1b2c3d4e5-r2", -1},
		{"2024.07.04-r1", "2025.10.07-r2", -1},
		{"25.12.0_rc1-r1", "25.12.0-r1", -1},
		{"0.4.8.9-r1", "0.4.8.13-r1", -1},
		{"1.0", "1.0", 0},
	} {
		if got := CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := CompareVersions(c.b, c.a); got != -c.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", c.b, c.a, got, -c.want)
		}
	}
}

// TestCompareVersionsApk replays testdata/versions.txt: every ordered pair
// of a list of versions as `apk version -t` compared them, and which
// versions `apk version -c` called invalid (gen-versions.sh).
func TestCompareVersionsApk(t *testing.T) {
	ops := map[string]int{"<": -1, "=": 0, ">": 1}
	pairs, valid := 0, 0
	for i, l := range strings.Split(strings.TrimSpace(string(read(t, "versions.txt"))), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) == 2 && (f[0] == "valid" || f[0] == "invalid"):
			if got := ValidVersion(f[1]); got != (f[0] == "valid") {
				t.Errorf("ValidVersion(%q) = %v, apk says %s", f[1], got, f[0])
			}
			valid++
		case len(f) == 3:
			want, ok := ops[f[2]]
			if !ok {
				t.Fatalf("versions.txt:%d: %q", i+1, l)
			}
			if got := CompareVersions(f[0], f[1]); got != want {
				t.Errorf("CompareVersions(%q, %q) = %d, apk says %s", f[0], f[1], got, f[2])
			}
			pairs++
		default:
			t.Fatalf("versions.txt:%d: %q", i+1, l)
		}
	}
	if pairs < 2000 || valid < 60 {
		t.Fatalf("only %d pairs and %d validity lines", pairs, valid)
	}
}

func FuzzCompareVersions(f *testing.F) {
	f.Add("1.2.3_rc1-r1", "1678~a1b2c3d4e5-r2")
	f.Fuzz(func(t *testing.T, a, b string) {
		if x, y := CompareVersions(a, b), CompareVersions(b, a); x != -y {
			t.Fatalf("not antisymmetric: %d, %d", x, y)
		}
		ValidVersion(a)
	})
}

// TestWriteIndexVersionsMatchApk: apk mkndx sorted three versions of one
// package by version (1.0_rc1-r1, 1.0-r2, 1.0-r10); WriteIndex gives the
// same ADB block from the same packages given in another order.
func TestWriteIndexVersionsMatchApk(t *testing.T) {
	want, err := parseContainer(read(t, "versions-index.adb"), SchemaIndex)
	if err != nil {
		t.Fatal(err)
	}
	x := &Index{Description: "torwrt versions"}
	for _, v := range []string{"1.0-r10", "1.0-r2", "1.0_rc1-r1"} {
		var b bytes.Buffer
		info := PackageInfo{Name: "torwrt-ver", Version: v, Arch: "mips_24kc", License: "MIT", Description: "version order", BuildTime: 1700000000}
		if err := WritePackage(&b, info, nil, nil); err != nil {
			t.Fatal(err)
		}
		if v == "1.0-r10" && !bytes.Equal(b.Bytes(), read(t, "torwrt-ver-1.0-r10.apk")) {
			t.Fatal("WritePackage differs from apk mkpkg")
		}
		p, err := ReadPackage(bytes.NewReader(b.Bytes()), 0)
		if err != nil {
			t.Fatal(err)
		}
		x.Packages = append(x.Packages, EntryFor(p, uint64(b.Len())))
	}
	sk, err := ParseSecretKeyPEM(read(t, "test-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := WriteIndex(x, sk)
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseContainer(got, SchemaIndex)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.adb, want.adb) {
		t.Fatal("WriteIndex ADB block differs from apk mkndx")
	}
	ix, err := ReadIndex(got, NewKeyring(sk.Public()))
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, e := range ix.Packages {
		order = append(order, e.Version)
	}
	if strings.Join(order, " ") != "1.0_rc1-r1 1.0-r2 1.0-r10" {
		t.Fatalf("order %v", order)
	}
}
