package userland

import (
	"bytes"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const (
	sha1 = "82130bb6a560cd2a7234d8018baf73f188f5dd56413d5aa0accc987b2197a6a1"
	sha2 = "ad9f1ea0537a32c9eaecc619563a9db596a5dee33afce8393b1083f22d301e1d"
)

func sampleLock() *Lock {
	return &Lock{
		Suite:   "Debian 12.15 amd64 (bookworm, bookworm-security)",
		Made:    "2026-12-06",
		Command: "scripts/userland-lock.sh",
		Entries: []Entry{
			{"bash", "5.2.15-2+b13", "amd64", sha1, 1490652, "http://deb.debian.org/debian/pool/main/b/bash/bash_5.2.15-2+b13_amd64.deb"},
			{"zlib1g", "1:1.2.13.dfsg-1+deb12u1", "amd64", sha2, 86880, "http://deb.debian.org/debian-security/pool/updates/main/z/zlib/zlib1g_1.2.13.dfsg-1+deb12u1_amd64.deb"},
		},
	}
}

func TestLockRoundTrip(t *testing.T) {
	l := sampleLock()
	b := l.Marshal()
	got, err := ParseLock(b)
	if err != nil {
		t.Fatalf("ParseLock(Marshal()): %v\n%s", err, b)
	}
	if !reflect.DeepEqual(got, l) {
		t.Fatalf("round trip:\ngot  %+v\nwant %+v", got, l)
	}
	if again := got.Marshal(); !bytes.Equal(again, b) {
		t.Fatalf("Marshal is not stable:\n%s\n---\n%s", b, again)
	}
	if !bytes.HasSuffix(b, []byte(".deb\n")) {
		t.Errorf("lock file does not end with a newline")
	}
	for _, want := range []string{"# suite: ", "# made: 2026-12-06", "# command: scripts/userland-lock.sh", "DiffID follows from"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("header lacks %q:\n%s", want, b)
		}
	}

	// Marshal sorts; the sum ignores the comments and the entry order.
	r := sampleLock()
	slices.Reverse(r.Entries)
	r.Made, r.Command = "2030-01-01", "by hand"
	if !bytes.Equal(r.Marshal()[bytes.Index(r.Marshal(), []byte("\nbash ")):], b[bytes.Index(b, []byte("\nbash ")):]) {
		t.Errorf("Marshal does not sort entries")
	}
	if r.Sum() != l.Sum() {
		t.Errorf("Sum depends on the header or the order")
	}
	if err := r.Validate(); err == nil {
		t.Errorf("Validate accepts unsorted entries")
	}
	if err := l.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	r.Entries[0].Size++
	if r.Sum() == l.Sum() {
		t.Errorf("Sum ignores the entries")
	}
}

func TestCommittedLock(t *testing.T) {
	l, err := Committed()
	if err != nil {
		t.Fatal(err)
	}
	// The committed file is in canonical form, so re-locking an
	// unchanged set gives no diff.
	if !bytes.Equal(l.Marshal(), committedLock) {
		t.Errorf("%s is not in the form Marshal writes; regenerate it with scripts/userland-lock.sh", LockFileName)
	}
	have := map[string]bool{}
	for _, e := range l.Entries {
		have[e.Name] = true
		u, _ := url.Parse(e.URL)
		if u.Host != "deb.debian.org" {
			t.Errorf("%s: URL %s is not on deb.debian.org", e.Name, e.URL)
		}
	}
	for _, p := range Packages {
		if !have[p] {
			t.Errorf("%s does not pin %q from userland.Packages; run scripts/userland-lock.sh", LockFileName, p)
		}
	}
	if l.Suite == "" || l.Made == "" || l.Command == "" {
		t.Errorf("header incomplete: %+v", l)
	}
}

func TestParseLockRejects(t *testing.T) {
	good := func(name string) string {
		return fmt.Sprintf("%s 1.0-1 amd64 %s 10 http://deb.debian.org/debian/pool/main/x/%s/%s_1.0-1_amd64.deb", name, sha1, name, name)
	}
	line := good("bash")
	repl := func(old, new string) string { return strings.Replace(line, old, new, 1) }
	tests := []struct {
		name, text, want string
	}{
		{"empty", "# only comments\n", "no packages"},
		{"fields", "bash 1.0-1 amd64 " + sha1 + " 10\n", "line 1: want 6 fields"},
		{"extra field", line + " extra\n", "line 1: want 6 fields"},
		{"name", repl("bash ", "Bash "), "line 1: name"},
		{"version", repl(" 1.0-1 ", " -1 "), "line 1: version"},
		{"arch", repl(" amd64 ", " i386 "), "line 1: arch"},
		{"sha256 uppercase", repl(sha1, strings.ToUpper(sha1)), "line 1: sha256"},
		{"sha256 short", repl(sha1, sha1[:63]), "line 1: sha256"},
		{"sha256 not hex", repl(sha1, "g"+sha1[1:]), "line 1: sha256"},
		{"size zero", repl(" 10 ", " 0 "), "line 1: size"},
		{"size negative", repl(" 10 ", " -10 "), "line 1: size"},
		{"size leading zero", repl(" 10 ", " 010 "), "line 1: size"},
		{"size not a number", repl(" 10 ", " ten "), "line 1: size"},
		{"url scheme", repl("http://", "ftp://"), "line 1: url"},
		{"url relative", repl("http://deb.debian.org", ""), "line 1: url"},
		{"url user", repl("http://", "http://me@"), "line 1: url"},
		{"url query", line + "?x=1", "line 1: url"},
		{"url not a deb", repl("_amd64.deb", "_amd64.tar"), "line 1: url"},
		{"url other package", repl("/bash_1.0-1", "/dash_1.0-1"), "line 1: url"},
		{"duplicate", "# c\n\n" + line + "\n" + line + "\n", "line 4: duplicate package \"bash\""},
		{"unsorted", good("dash") + "\n" + good("bash") + "\n", "line 2: package \"bash\" is not sorted"},
		{"second line bad", line + "\nzsh\n", "line 2:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseLock([]byte(tc.text))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseLock(%q) = %v, want an error containing %q", tc.text, err, tc.want)
			}
		})
	}
	if _, err := ParseLock([]byte(line + "\n" + good("dash") + "\n")); err != nil {
		t.Fatalf("valid lock refused: %v", err)
	}
}

func TestDiff(t *testing.T) {
	old := sampleLock()
	new := sampleLock()
	if d := Diff(old, new); d != nil {
		t.Fatalf("equal locks differ: %q", d)
	}
	new.Entries[0].Version = "5.2.15-2+b14"
	new.Entries[1].SHA256 = sha1
	new.Entries = append(new.Entries, Entry{Name: "zstd", Version: "1.5"})
	new.Entries = new.Entries[1:]
	old.Entries = append(old.Entries, Entry{Name: "dash", Version: "0.5"})
	want := []string{"-bash 5.2.15-2+b13", "-dash 0.5", "~zlib1g 1:1.2.13.dfsg-1+deb12u1 (same version, different file)", "+zstd 1.5"}
	if d := Diff(old, new); !reflect.DeepEqual(d, want) {
		t.Fatalf("Diff:\ngot  %q\nwant %q", d, want)
	}
}
