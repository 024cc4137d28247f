package userland

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

var update = flag.Bool("update", false, "rewrite golden files")

// testTime is the mtime of the test packages' files; the layer must not
// keep it.
var testTime = time.Unix(1700000000, 0)

// requireTool fails (never skips) when a host tool is missing, naming the
// Debian package that provides it.
func requireTool(t *testing.T, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s is missing: install it with `apt-get install -y %s`", tool, pkg)
	}
	return p
}

// ent is one tar entry of a test package.
type ent struct {
	name string
	typ  byte // tar type; 0 means a regular file
	mode int64
	body string
	link string
}

func file(name, body string) ent      { return ent{name: name, typ: tar.TypeReg, mode: 0o644, body: body} }
func exe(name, body string) ent       { return ent{name: name, typ: tar.TypeReg, mode: 0o755, body: body} }
func dir(name string, mode int64) ent { return ent{name: name, typ: tar.TypeDir, mode: mode} }
func symlink(name, target string) ent {
	return ent{name: name, typ: tar.TypeSymlink, mode: 0o777, link: target}
}
func hardlink(name, target string) ent {
	return ent{name: name, typ: tar.TypeLink, mode: 0o644, link: target}
}
func special(name string, typ byte) ent      { return ent{name: name, typ: typ, mode: 0o644} }
func withMode(e ent, mode int64) ent         { e.mode = mode; return e }
func tarOf(t testing.TB, ents ...ent) []byte { return tarBytes(t, ents) }

func tarBytes(t testing.TB, ents []ent) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range ents {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Mode: e.mode, Linkname: e.link, Uname: "root", Gname: "root", ModTime: testTime}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// compress returns b compressed as a .deb member with suffix ext.
func compress(t testing.TB, ext string, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	var w io.WriteCloser
	var err error
	switch ext {
	case "":
		return b
	case ".gz":
		w = gzip.NewWriter(&out)
	case ".xz":
		w, err = xz.NewWriter(&out)
	case ".zst":
		w, err = zstd.NewWriter(&out)
	default:
		t.Fatalf("compress: unknown %q", ext)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

type member struct {
	name string
	data []byte
}

// arOf writes a common ar archive, as dpkg-deb does.
func arOf(members ...member) []byte {
	var b bytes.Buffer
	b.WriteString("!<arch>\n")
	for _, m := range members {
		fmt.Fprintf(&b, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", m.name, 0, 0, 0, "100644", len(m.data))
		b.Write(m.data)
		if len(m.data)%2 == 1 {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// debOf builds a .deb whose data.tar (compressed as ext) holds ents.
func debOf(t testing.TB, pkg, ext string, ents ...ent) []byte {
	t.Helper()
	control := tarOf(t, dir("./", 0o755), file("./control", "Package: "+pkg+"\nVersion: 1.0-1\nArchitecture: amd64\n"))
	data := tarOf(t, append([]ent{dir("./", 0o755)}, ents...)...)
	return arOf(
		member{"debian-binary", []byte("2.0\n")},
		member{"control.tar.gz", compress(t, ".gz", control)},
		member{"data.tar" + ext, compress(t, ext, data)},
	)
}

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// repo serves .debs over HTTP on 127.0.0.1 and counts requests.
type repo struct {
	srv   *httptest.Server
	files map[string][]byte
	hits  atomic.Int64
}

func newRepo(t *testing.T) *repo {
	r := &repo{files: map[string][]byte{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.hits.Add(1)
		b, ok := r.files[req.URL.Path]
		if !ok {
			http.NotFound(w, req)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// add serves deb and returns its lock entry.
func (r *repo) add(name, version string, deb []byte) Entry {
	p := fmt.Sprintf("/debian/pool/main/%s/%s_%s_amd64.deb", name, name, version)
	r.files[p] = deb
	return Entry{Name: name, Version: version, Arch: "amd64", SHA256: hexSHA(deb), Size: int64(len(deb)), URL: r.srv.URL + p}
}

func lockOf(es ...Entry) *Lock {
	return &Lock{Suite: "test", Made: "2026-12-06", Command: "go test", Entries: es}
}

// layerEntry is a header plus contents, read back from a layer.
type layerEntry struct {
	h    *tar.Header
	body string
}

// readLayer returns the layer's uncompressed entries in order.
func readLayer(t *testing.T, l v1.Layer) []layerEntry {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	return readTar(t, rc)
}

func readTar(t *testing.T, r io.Reader) []layerEntry {
	t.Helper()
	var out []layerEntry
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, layerEntry{h, string(b)})
	}
}

func byName(es []layerEntry) map[string]layerEntry {
	m := map[string]layerEntry{}
	for _, e := range es {
		m[strings.TrimSuffix(e.h.Name, "/")] = e
	}
	return m
}

// resolve follows symlinks inside the layer (absolute targets are relative
// to its root) and returns the entry p finally names.
func resolve(t *testing.T, m map[string]layerEntry, p string) (string, layerEntry) {
	t.Helper()
	parts := strings.Split(strings.Trim(p, "/"), "/")
	cur := ""
	for hops := 0; len(parts) > 0; {
		next := path.Join(cur, parts[0])
		parts = parts[1:]
		e, ok := m[next]
		if !ok {
			t.Fatalf("%s: /%s is not in the layer", p, next)
		}
		if e.h.Typeflag != tar.TypeSymlink {
			cur = next
			continue
		}
		if hops++; hops > 40 {
			t.Fatalf("%s: too many symlinks", p)
		}
		target := e.h.Linkname
		if !strings.HasPrefix(target, "/") {
			target = path.Join(path.Dir(next), target)
		}
		parts = append(strings.Split(strings.Trim(path.Clean("/"+target), "/"), "/"), parts...)
		cur = ""
	}
	return cur, m[cur]
}

func writeFile(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
