package userland

import (
	"strings"
	"testing"
)

// Captured from apt-get 2.6.1 on Debian 12 (bookworm), 2026-12-06.
const printURIs = `'http://deb.debian.org/debian/pool/main/g/gmp/libgmp10_6.2.1%2bdfsg1-1.1_amd64.deb' libgmp10_2%3a6.2.1+dfsg1-1.1_amd64.deb 562588 MD5Sum:2209aba19c24b8f42a1d7a154ba47cd1
'http://deb.debian.org/debian-security/pool/updates/main/z/zlib/zlib1g_1.2.13.dfsg-1%2bdeb12u1_amd64.deb' zlib1g_1%3a1.2.13.dfsg-1+deb12u1_amd64.deb 86880 
'http://deb.debian.org/debian/pool/main/u/usrmerge/usr-is-merged_37%7edeb12u1_all.deb' usr-is-merged_37~deb12u1_all.deb 5616 MD5Sum:36826e1d6b6eb875e7053b3c95b02017
`

const aptShow = `Package: libgmp10
Version: 2:6.2.1+dfsg1-1.1
Architecture: amd64
Description: Multiprecision arithmetic library
 continuation: with a colon
Filename: pool/main/g/gmp/libgmp10_6.2.1+dfsg1-1.1_amd64.deb
Size: 562588
SHA256: 187aedef2ed763f425c1e523753b9719677633c7eede660401739e9c893482bd

Package: zlib1g
Version: 1:1.2.13.dfsg-1+deb12u1
Architecture: amd64
Filename: pool/updates/main/z/zlib/zlib1g_1.2.13.dfsg-1+deb12u1_amd64.deb
Size: 86880
SHA256: AD9F1EA0537A32C9EAECC619563A9DB596A5DEE33AFCE8393B1083F22D301E1D

Package: usr-is-merged
Version: 37~deb12u1
Architecture: all
Filename: pool/main/u/usrmerge/usr-is-merged_37~deb12u1_all.deb
Size: 5616
SHA256: 0b3ec3e1cd4b4d8ac9bd4e4b7a3d0c1e9c2ef8e6d2aa4b1b0b1c0e5a1f0e6c4d
`

func TestParsePrintURIsAndMatch(t *testing.T) {
	us, err := parsePrintURIs([]byte(printURIs))
	if err != nil {
		t.Fatal(err)
	}
	st, err := parseStanzas([]byte(aptShow))
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{"libgmp10", "2:6.2.1+dfsg1-1.1", "amd64", "187aedef2ed763f425c1e523753b9719677633c7eede660401739e9c893482bd", 562588, "http://deb.debian.org/debian/pool/main/g/gmp/libgmp10_6.2.1+dfsg1-1.1_amd64.deb"},
		{"zlib1g", "1:1.2.13.dfsg-1+deb12u1", "amd64", "ad9f1ea0537a32c9eaecc619563a9db596a5dee33afce8393b1083f22d301e1d", 86880, "http://deb.debian.org/debian-security/pool/updates/main/z/zlib/zlib1g_1.2.13.dfsg-1+deb12u1_amd64.deb"},
		{"usr-is-merged", "37~deb12u1", "all", "0b3ec3e1cd4b4d8ac9bd4e4b7a3d0c1e9c2ef8e6d2aa4b1b0b1c0e5a1f0e6c4d", 5616, "http://deb.debian.org/debian/pool/main/u/usrmerge/usr-is-merged_37~deb12u1_all.deb"},
	}
	if len(us) != len(want) {
		t.Fatalf("got %d URIs, want %d", len(us), len(want))
	}
	for i, u := range us {
		e, err := matchStanza(u, st)
		if err != nil {
			t.Fatalf("%s: %v", u.Name, err)
		}
		if e != want[i] {
			t.Errorf("entry %d:\ngot  %+v\nwant %+v", i, e, want[i])
		}
		if err := e.validate(); err != nil {
			t.Errorf("%s: %v", e.Name, err)
		}
	}

	// A record for another pool file or size is not a match.
	u := us[0]
	u.Size++
	if _, err := matchStanza(u, st); err == nil || !strings.Contains(err.Error(), "size") {
		t.Errorf("size mismatch: %v", err)
	}
	u = us[0]
	u.URL = strings.Replace(u.URL, "/pool/main/", "/pool/other/", 1)
	if _, err := matchStanza(u, st); err == nil {
		t.Errorf("other pool file matched")
	}
}

func TestParsePrintURIsRejects(t *testing.T) {
	for _, s := range []string{
		"",
		"E: Unable to locate package nope\n",
		"'http://x/a_1_amd64.deb' a_1_amd64.deb\n",
		"'http://x/a_1_amd64.deb' a_1_amd64.deb -5 MD5Sum:00\n",
		"'http://x/a_1.deb' a_1.deb 5 MD5Sum:00\n",
		"'http://x/a_1_amd64.deb a_1_amd64.deb 5\n",
	} {
		if _, err := parsePrintURIs([]byte(s)); err == nil {
			t.Errorf("parsePrintURIs(%q) accepted", s)
		}
	}
}

func TestCheckPolicy(t *testing.T) {
	const ok = `Package files:
 100 /tmp/status
     release a=now
 500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
     release v=12,o=Debian,a=oldstable-security,n=bookworm-security,l=Debian-Security,c=main,b=amd64
     origin deb.debian.org
 500 http://deb.debian.org/debian bookworm/main amd64 Packages
     release v=12.15,o=Debian,a=oldstable,n=bookworm,l=Debian,c=main,b=amd64
     origin deb.debian.org
Pinned packages:
`
	got, err := checkPolicy([]byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if want := "Debian 12.15 amd64 (bookworm, bookworm-security)"; got != want {
		t.Errorf("suite %q, want %q", got, want)
	}
	for name, s := range map[string]string{
		"trixie":     ok + "     release v=13,o=Debian,a=stable,n=trixie,l=Debian,c=main,b=amd64\n",
		"i386":       ok + "     release v=12.15,o=Debian,a=oldstable,n=bookworm,l=Debian,c=main,b=i386\n",
		"third":      ok + "     release o=Example,n=bookworm,b=amd64\n",
		"no release": "Package files:\n",
	} {
		if _, err := checkPolicy([]byte(s)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestResolveHost runs the host's apt (Debian 12 with current lists, as in
// CI after scripts/install-deps.sh) on a small set.
func TestResolveHost(t *testing.T) {
	requireTool(t, "apt-get", "apt")
	l, err := Resolve(t.Context(), []string{"hostname", "usr-is-merged"})
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]Entry{}
	for _, e := range l.Entries {
		have[e.Name] = e
	}
	for _, p := range []string{"hostname", "libc6", "usr-is-merged"} {
		if _, ok := have[p]; !ok {
			t.Errorf("closure lacks %s: %+v", p, l.Entries)
		}
	}
	if !strings.Contains(l.Suite, "bookworm") {
		t.Errorf("suite %q", l.Suite)
	}
	if _, err := ParseLock(l.Marshal()); err != nil {
		t.Errorf("resolved lock does not parse: %v", err)
	}
	if _, err := Resolve(t.Context(), []string{"-o"}); err == nil {
		t.Errorf("an option as a package name was accepted")
	}
}
