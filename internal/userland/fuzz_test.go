package userland

import (
	"archive/tar"
	"bytes"
	"io"
	"strings"
	"testing"
)

// FuzzReadDeb: no input may panic, exceed the data limit or yield a name
// that could leave the layer's root; a package that reads once reads the
// same way twice.
func FuzzReadDeb(f *testing.F) {
	ents := []ent{dir("./usr/", 0o755), exe("./usr/x", "x"), hardlink("./usr/y", "./usr/x"), symlink("./usr/z", "x"), withMode(dir("./tmp/", 0o1777), 0o1777)}
	for _, ext := range []string{".xz", ".gz", ".zst", ""} {
		d := debOf(f, "p", ext, ents...)
		f.Add(d)
		f.Add(d[:len(d)/2])
	}
	f.Add(debOf(f, "p", ".gz", file("../x", "x")))
	f.Add(debOf(f, "p", ".gz", special("./dev/null", tar.TypeChar)))
	f.Add([]byte("!<arch>\n"))
	f.Add(arOf(member{"debian-binary", []byte("2.0\n")}, member{"control.tar", nil}, member{"data.tar", nil}))
	f.Fuzz(func(t *testing.T, b []byte) {
		const maxData = 1 << 20
		var first []string
		err := readDeb(t.Context(), bytes.NewReader(b), maxData, func(e debFile, body io.Reader) error {
			if e.Name == "" || strings.HasPrefix(e.Name, "/") || strings.Contains("/"+e.Name+"/", "/../") {
				t.Fatalf("unsafe name %q", e.Name)
			}
			if e.Kind == kindHardlink && (e.Link == "" || strings.HasPrefix(e.Link, "/") || strings.Contains("/"+e.Link+"/", "/../")) {
				t.Fatalf("unsafe hard link target %q", e.Link)
			}
			n, err := io.Copy(io.Discard, body)
			if err != nil {
				return err
			}
			if n > maxData {
				t.Fatalf("file of %d bytes from a %d byte limit", n, maxData)
			}
			first = append(first, e.Name)
			return nil
		})
		if err != nil {
			return
		}
		again, err := listDeb(t.Context(), b, maxData)
		if err != nil || len(again) != len(first) {
			t.Fatalf("second read: %d entries, %v; first read %d entries", len(again), err, len(first))
		}
	})
}
