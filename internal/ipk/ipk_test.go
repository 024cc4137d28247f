package ipk

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const epoch = "1758316778"

func needTool(t testing.TB, tool, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Fatalf("%s not found: install the Debian package %s (apt-get install -y %s)", tool, pkg, pkg)
	}
}

func sh(t testing.TB, dir string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

const controlText = `Package: tor
Version: 0.4.8.17-r1
Depends: libc, libevent2-7, libopenssl3, zlib
Source: feeds/packages/net/tor
SourceName: tor
License: BSD-3-Clause
Section: net
Architecture: mips_24kc
Installed-Size: 1064960
Description:  Tor is a toolset for a wide range of organizations and people that want to
 improve their safety and security on the Internet.
 .
 This package contains the tor daemon.
`

var torBinary = func() []byte {
	r := rand.New(rand.NewPCG(7, 7))
	b := make([]byte, 300<<10)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}()

// pkgTree writes a package's data and control directories as OpenWrt's
// build leaves them before ipkg-build.
func pkgTree(t testing.TB) (data, control string) {
	t.Helper()
	root := t.TempDir()
	data, control = filepath.Join(root, "data"), filepath.Join(root, "control")
	files := map[string]string{
		"usr/sbin/tor":     string(torBinary),
		"etc/config/tor":   "config tor 'conf'\n\toption default '/etc/tor/torrc'\n",
		"etc/tor/torrc":    "SocksPort 9050\n",
		"etc/init.d/tor":   "#!/bin/sh /etc/rc.common\nSTART=50\n",
		"usr/share/empty0": "",
	}
	for p, c := range files {
		full := filepath.Join(data, p)
		os.MkdirAll(filepath.Dir(full), 0755)
		if err := os.WriteFile(full, []byte(c), 0644); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(data, "usr/sbin/tor"), 0755)
	os.Chmod(filepath.Join(data, "etc/init.d/tor"), 0755)
	os.Chmod(filepath.Join(data, "etc/tor/torrc"), 0600)
	os.MkdirAll(filepath.Join(data, "usr/bin"), 0755)
	os.Symlink("../sbin/tor", filepath.Join(data, "usr/bin/tor"))
	os.Link(filepath.Join(data, "etc/tor/torrc"), filepath.Join(data, "etc/tor/torrc.default"))
	os.MkdirAll(control, 0755)
	for name, c := range map[string]string{
		"control":   controlText,
		"conffiles": "/etc/config/tor\n/etc/tor/torrc\n",
		"postinst":  "#!/bin/sh\n[ -n \"${IPKG_INSTROOT}\" ] || /etc/init.d/tor enable\n",
	} {
		if err := os.WriteFile(filepath.Join(control, name), []byte(c), 0755); err != nil {
			t.Fatal(err)
		}
	}
	return data, control
}

// buildIPK runs the commands of OpenWrt's scripts/ipkg-build. With
// dotSlash the outer member names start with "./" as ipkg-build writes
// them; format "ar" builds the older ar variant instead of tar.gz.
func buildIPK(t testing.TB, format string, dotSlash bool) []byte {
	t.Helper()
	needTool(t, "tar", "tar")
	needTool(t, "gzip", "gzip")
	data, control := pkgTree(t)
	out := t.TempDir()
	tarArgs := []string{"--format=gnu", "--numeric-owner", "--owner=0", "--group=0", "--sort=name", "--mtime=@" + epoch}
	sh(t, data, "sh", "-c", "tar "+strings.Join(tarArgs, " ")+" -cpf - . | gzip -n > "+out+"/data.tar.gz")
	sh(t, control, "sh", "-c", "tar "+strings.Join(tarArgs, " ")+" -cf - . | gzip -n > "+out+"/control.tar.gz")
	if err := os.WriteFile(filepath.Join(out, "debian-binary"), []byte("2.0\n"), 0644); err != nil {
		t.Fatal(err)
	}
	members := []string{"debian-binary", "data.tar.gz", "control.tar.gz"}
	switch format {
	case "ar":
		needTool(t, "ar", "binutils")
		sh(t, out, "ar", append([]string{"rc", "pkg.ipk"}, members...)...)
	default:
		if dotSlash {
			for i, m := range members {
				members[i] = "./" + m
			}
		}
		sh(t, out, "sh", "-c", "tar "+strings.Join(tarArgs, " ")+" -cf - "+strings.Join(members, " ")+" | gzip -n > pkg.ipk")
	}
	b, err := os.ReadFile(filepath.Join(out, "pkg.ipk"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestReadOpenWrtLayouts(t *testing.T) {
	for _, tc := range []struct {
		name     string
		format   string
		dotSlash bool
	}{
		{"ipkg-build", "tar.gz", true},
		{"no-dot-slash", "tar.gz", false},
		{"ar", "ar", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := buildIPK(t, tc.format, tc.dotSlash)
			p, err := Read(t.Context(), bytes.NewReader(b), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if p.Format != tc.format {
				t.Errorf("Format %q, want %q", p.Format, tc.format)
			}
			if p.Name() != "tor" || p.Version() != "0.4.8.17-r1" || p.Architecture() != "mips_24kc" {
				t.Errorf("name/version/arch = %q %q %q", p.Name(), p.Version(), p.Architecture())
			}
			var names []string
			for _, f := range p.Control.Fields {
				names = append(names, f.Name)
			}
			if want := []string{"Package", "Version", "Depends", "Source", "SourceName", "License", "Section", "Architecture", "Installed-Size", "Description"}; !slices.Equal(names, want) {
				t.Errorf("field order %v, want %v", names, want)
			}
			if got := p.Control.List("depends"); !slices.Equal(got, []string{"libc", "libevent2-7", "libopenssl3", "zlib"}) {
				t.Errorf("Depends = %q", got)
			}
			wantDesc := "Tor is a toolset for a wide range of organizations and people that want to\nimprove their safety and security on the Internet.\n.\nThis package contains the tor daemon."
			if got := p.Control.Get("Description"); got != wantDesc {
				t.Errorf("Description = %q, want %q", got, wantDesc)
			}
			var cf []string
			for _, f := range p.ControlFiles {
				cf = append(cf, f.Name)
			}
			slices.Sort(cf)
			if !slices.Equal(cf, []string{"conffiles", "control", "postinst"}) {
				t.Errorf("control files %v", cf)
			}
			files := map[string]FileEntry{}
			for _, f := range p.Files {
				files[f.Path] = f
			}
			check := func(path string, mode fs.FileMode, content string) {
				t.Helper()
				f, ok := files[path]
				if !ok {
					t.Errorf("missing %s", path)
					return
				}
				if f.Mode != mode {
					t.Errorf("%s: mode %v, want %v", path, f.Mode, mode)
				}
				if mode.IsRegular() && (f.Size != int64(len(content)) || f.SHA256 != sha([]byte(content))) {
					t.Errorf("%s: size %d sha256 %s, want %d %s", path, f.Size, f.SHA256, len(content), sha([]byte(content)))
				}
				if f.UID != 0 || f.GID != 0 || fmt.Sprint(f.ModTime) != epoch {
					t.Errorf("%s: owner %d:%d mtime %d", path, f.UID, f.GID, f.ModTime)
				}
			}
			check("usr/sbin/tor", 0755, string(torBinary))
			check("etc/tor/torrc", 0600, "SocksPort 9050\n")
			check("usr/share/empty0", 0644, "")
			check("usr/sbin", fs.ModeDir|0755, "")
			check("usr/bin/tor", fs.ModeSymlink|0777, "")
			if l := files["usr/bin/tor"].Linkname; l != "../sbin/tor" {
				t.Errorf("symlink target %q", l)
			}
			// GNU tar stores the second name of a hard-linked pair as a link.
			a, b2 := files["etc/tor/torrc"], files["etc/tor/torrc.default"]
			if !(b2.Hardlink && b2.Linkname == "etc/tor/torrc" && b2.Mode == 0600) && !(a.Hardlink && a.Linkname == "etc/tor/torrc.default" && a.Mode == 0600) {
				t.Errorf("hard link not reported: %+v %+v", a, b2)
			}
			if _, ok := files[""]; ok {
				t.Error("package root reported as a file")
			}
			got, err := p.ReadFile(t.Context(), "usr/sbin/tor")
			if err != nil || !bytes.Equal(got, torBinary) {
				t.Errorf("ReadFile(usr/sbin/tor): %d bytes, %v", len(got), err)
			}
			if _, err := p.ReadFile(t.Context(), "nope"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("ReadFile(missing): %v", err)
			}
			n := 0
			err = p.WalkData(t.Context(), func(e FileEntry, r io.Reader) error {
				if n < len(p.Files) && e != p.Files[n] {
					t.Errorf("WalkData entry %d = %+v, Read saw %+v", n, e, p.Files[n])
				}
				n++
				return nil
			})
			if err != nil || n != len(p.Files) {
				t.Errorf("WalkData: %d entries, %v", n, err)
			}
		})
	}
}

func TestOpenVerifiesHashFirst(t *testing.T) {
	good := buildIPK(t, "tar.gz", true)
	dir := t.TempDir()
	path := filepath.Join(dir, "tor.ipk")
	if err := os.WriteFile(path, good, 0644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(t.Context(), path, sha(good), Limits{}); err != nil {
		t.Fatalf("Open with the right hash: %v", err)
	}
	if err := VerifyFile(t.Context(), path, strings.ToUpper(sha(good))); err != nil {
		t.Errorf("VerifyFile (upper-case hex): %v", err)
	}
	if _, err := Open(t.Context(), path, sha([]byte("other")), Limits{}); !errors.Is(err, ErrHashMismatch) {
		t.Errorf("wrong hash: %v, want ErrHashMismatch", err)
	}
	// A corrupt file with a wrong pin fails on the hash, before parsing.
	bad := filepath.Join(dir, "bad.ipk")
	os.WriteFile(bad, []byte("not an ipk"), 0644)
	if _, err := Open(t.Context(), bad, sha(good), Limits{}); !errors.Is(err, ErrHashMismatch) {
		t.Errorf("corrupt file, wrong hash: %v, want ErrHashMismatch", err)
	}
	if _, err := Open(t.Context(), path, "abc", Limits{}); err == nil || errors.Is(err, ErrHashMismatch) {
		t.Errorf("malformed pin: %v", err)
	}
	if _, err := ReadVerified(t.Context(), bytes.NewReader(good), sha(good), Limits{}); err != nil {
		t.Errorf("ReadVerified: %v", err)
	}
	if _, err := ReadVerified(t.Context(), bytes.NewReader(good[:len(good)-1]), sha(good), Limits{}); !errors.Is(err, ErrHashMismatch) {
		t.Errorf("ReadVerified truncated: %v", err)
	}
}

// entry is one tar entry for hand-built (hostile) packages.
type entry struct {
	name, link string
	typ        byte
	body       []byte
	size       int64 // if body is nil and size > 0, that many zero bytes
}

func tarGz(t testing.TB, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		size := int64(len(e.body))
		if e.body == nil {
			size = e.size
		}
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		if typ != tar.TypeReg {
			size = 0
		}
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: typ, Size: size, Mode: 0644, Format: tar.FormatGNU}
		if typ == tar.TypeChar {
			h.Devmajor, h.Devminor = 1, 3
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.body != nil {
			tw.Write(e.body)
		} else if size > 0 {
			io.CopyN(tw, zeroReader{}, size)
		}
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

var goodControl = []entry{{name: "./", typ: tar.TypeDir}, {name: "./control", body: []byte("Package: x\nVersion: 1\nArchitecture: all\n")}}

// makeIPK wraps members in the outer tar.gz layout.
func makeIPK(t testing.TB, data []entry, control []entry) []byte {
	return tarGz(t, []entry{
		{name: "./debian-binary", body: []byte("2.0\n")},
		{name: "./data.tar.gz", body: tarGz(t, data)},
		{name: "./control.tar.gz", body: tarGz(t, control)},
	})
}

func TestBadPackages(t *testing.T) {
	good := buildIPK(t, "tar.gz", true)
	reg := func(name string) entry { return entry{name: name, body: []byte("x")} }
	// A bomb: many highly compressible files whose sum passes the limit,
	// then a damaged gzip trailer. Stopping early reports the limit; reading
	// on would report the damaged trailer.
	var bomb []entry
	for i := 0; i < 40; i++ {
		bomb = append(bomb, entry{name: fmt.Sprintf("./zero%02d", i), size: 1 << 20})
	}
	bombData := tarGz(t, bomb)
	bombData[len(bombData)-5] ^= 0xff
	bombIPK := tarGz(t, []entry{
		{name: "./debian-binary", body: []byte("2.0\n")},
		{name: "./data.tar.gz", body: bombData},
		{name: "./control.tar.gz", body: tarGz(t, goodControl)},
	})
	cases := []struct {
		name string
		ipk  []byte
		lim  Limits
		want error
	}{
		{"empty", nil, Limits{}, ErrCorrupt},
		{"truncated outer", good[:len(good)/2], Limits{}, ErrCorrupt},
		{"truncated end", good[:len(good)-3], Limits{}, ErrCorrupt},
		{"dot-dot path", makeIPK(t, []entry{reg("./../../etc/passwd")}, goodControl), Limits{}, ErrUnsafePath},
		{"dot-dot inside", makeIPK(t, []entry{reg("./usr/../../x")}, goodControl), Limits{}, ErrUnsafePath},
		{"absolute path", makeIPK(t, []entry{reg("/etc/passwd")}, goodControl), Limits{}, ErrUnsafePath},
		{"hard link outside", makeIPK(t, []entry{{name: "./x", link: "../../etc/shadow", typ: tar.TypeLink}}, goodControl), Limits{}, ErrUnsafePath},
		{"hard link to missing", makeIPK(t, []entry{{name: "./x", link: "./y", typ: tar.TypeLink}}, goodControl), Limits{}, ErrUnsafePath},
		{"device node", makeIPK(t, []entry{{name: "./dev/null", typ: tar.TypeChar}}, goodControl), Limits{}, ErrSpecialFile},
		{"fifo", makeIPK(t, []entry{{name: "./fifo", typ: tar.TypeFifo}}, goodControl), Limits{}, ErrSpecialFile},
		{"symlink in control", makeIPK(t, nil, append(goodControl, entry{name: "./postinst", link: "/bin/sh", typ: tar.TypeSymlink})), Limits{}, ErrSpecialFile},
		{"outer traversal", tarGz(t, []entry{{name: "../data.tar.gz", body: []byte("x")}}), Limits{}, ErrUnsafePath},
		{"duplicate file", makeIPK(t, []entry{reg("./a"), reg("a")}, goodControl), Limits{}, ErrCorrupt},
		{"no control file", makeIPK(t, nil, []entry{reg("./postinst")}), Limits{}, ErrCorrupt},
		{"control without version", makeIPK(t, nil, []entry{{name: "./control", body: []byte("Package: x\n")}}), Limits{}, ErrCorrupt},
		{"missing data", tarGz(t, []entry{{name: "./debian-binary", body: []byte("2.0\n")}, {name: "./control.tar.gz", body: tarGz(t, goodControl)}}), Limits{}, ErrCorrupt},
		{"bad debian-binary", tarGz(t, []entry{{name: "./debian-binary", body: []byte("3.0\n")}, {name: "./data.tar.gz", body: tarGz(t, nil)}, {name: "./control.tar.gz", body: tarGz(t, goodControl)}}), Limits{}, ErrCorrupt},
		{"unexpected member", tarGz(t, []entry{{name: "./data.tar.xz", body: []byte("x")}}), Limits{}, ErrCorrupt},
		{"bomb over data limit", bombIPK, Limits{MaxDataBytes: 8 << 20}, ErrTooLarge},
		{"one file over data limit", makeIPK(t, []entry{{name: "./big", size: 9 << 20}}, goodControl), Limits{MaxDataBytes: 8 << 20}, ErrTooLarge},
		{"too many files", makeIPK(t, []entry{reg("a"), reg("b"), reg("c")}, goodControl), Limits{MaxFiles: 2}, ErrTooLarge},
		{"package over limit", good, Limits{MaxPackageBytes: int64(len(good)) / 2}, ErrTooLarge},
		{"not an archive", []byte("PK\x03\x04 zip file"), Limits{}, ErrCorrupt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Read(t.Context(), bytes.NewReader(tc.ipk), tc.lim)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Read: %v (package %v), want %v", err, p != nil, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "ipk: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestParseControl(t *testing.T) {
	c, err := ParseControl([]byte("Package: a\nVersion: 1\nDescription: x\n  indented\n\tmore\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Get("description"); got != "x\n indented\nmore" {
		t.Errorf("Description %q", got)
	}
	for _, bad := range []string{
		" leading continuation\nPackage: a\nVersion: 1\n",
		"Package: a\nVersion: 1\nPackage: b\n",
		"Package: a\nVersion: 1\n\nPackage: b\n",
		"Package: a\nno colon here\nVersion: 1\n",
		"Version: 1\n",
	} {
		if _, err := ParseControl([]byte(bad)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("ParseControl(%q): %v, want ErrCorrupt", bad, err)
		}
	}
}

func FuzzIPK(f *testing.F) {
	f.Add(makeIPK(f, []entry{{name: "./", typ: tar.TypeDir}, {name: "./usr/", typ: tar.TypeDir}, {name: "./usr/bin/x", body: []byte("#!/bin/sh\n")},
		{name: "./usr/bin/y", link: "x", typ: tar.TypeSymlink}, {name: "./usr/bin/z", link: "./usr/bin/x", typ: tar.TypeLink}},
		append(goodControl, entry{name: "./conffiles", body: []byte("/etc/x\n")})))
	var ar bytes.Buffer
	ar.WriteString("!<arch>\n")
	for _, m := range []struct {
		name string
		body []byte
	}{{"debian-binary", []byte("2.0\n")}, {"control.tar.gz", tarGz(f, goodControl)}, {"data.tar.gz", tarGz(f, []entry{{name: "a", body: []byte("abc")}})}} {
		fmt.Fprintf(&ar, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", m.name+"/", 0, 0, 0, "100644", len(m.body))
		ar.Write(m.body)
		if len(m.body)%2 == 1 {
			ar.WriteByte('\n')
		}
	}
	f.Add(ar.Bytes())
	f.Add([]byte("!<arch>\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := Limits{MaxPackageBytes: 1 << 20, MaxDataBytes: 4 << 20, MaxFiles: 1000, MaxControlBytes: 64 << 10}
		p, err := Read(t.Context(), bytes.NewReader(data), lim)
		if err != nil {
			if p != nil {
				t.Fatal("package returned with an error")
			}
			return
		}
		if p.Name() == "" || p.Version() == "" {
			t.Fatal("package without name or version accepted")
		}
		for _, f := range p.Files {
			if _, err := cleanPath(f.Path); err != nil || f.Path == "" || f.Mode&(fs.ModeDevice|fs.ModeNamedPipe) != 0 {
				t.Fatalf("unsafe entry accepted: %+v", f)
			}
		}
		i := 0
		if err := p.WalkData(t.Context(), func(e FileEntry, r io.Reader) error {
			if e != p.Files[i] {
				t.Fatalf("WalkData differs at %d", i)
			}
			i++
			return nil
		}); err != nil {
			t.Fatalf("WalkData after a successful Read: %v", err)
		}
	})
}
