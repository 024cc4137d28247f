package userland

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// listDeb reads a .deb and returns "kind name mode link|contents" lines.
func listDeb(ctx context.Context, b []byte, maxData int64) ([]string, error) {
	var out []string
	err := readDeb(ctx, bytes.NewReader(b), maxData, func(f debFile, body io.Reader) error {
		s := fmt.Sprintf("%s %s %04o %s", f.Kind, f.Name, f.Mode, f.Link)
		if f.Kind == kindReg {
			c, err := io.ReadAll(body)
			if err != nil {
				return err
			}
			s += string(c)
		}
		out = append(out, s)
		return nil
	})
	return out, err
}

func TestReadDeb(t *testing.T) {
	ents := []ent{
		dir("./usr/", 0o755),
		dir("./usr/bin/", 0o755),
		exe("./usr/bin/tool", "#!/bin/sh\n"),
		withMode(exe("./usr/bin/su", "setuid"), 0o4755),
		hardlink("./usr/bin/tool2", "./usr/bin/tool"),
		symlink("./usr/bin/t", "tool"),
		file("usr/share/no-dot-slash", "x"),
		dir("./var/tmp/", 0o1777),
	}
	want := []string{
		"directory usr 0755 ",
		"directory usr/bin 0755 ",
		"file usr/bin/tool 0755 #!/bin/sh\n",
		"file usr/bin/su 4755 setuid",
		"hard link usr/bin/tool2 0644 usr/bin/tool",
		"symlink usr/bin/t 0777 tool",
		"file usr/share/no-dot-slash 0644 x",
		"directory var/tmp 1777 ",
	}
	for _, ext := range []string{".xz", ".gz", ".zst", ""} {
		t.Run("data.tar"+ext, func(t *testing.T) {
			got, err := listDeb(t.Context(), debOf(t, "p", ext, ents...), MaxDebData)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}

	// dpkg accepts "_"-prefixed members between and after the others, and
	// GNU ar's "name/" spelling.
	data := compress(t, ".gz", tarOf(t, file("./a", "b")))
	deb := arOf(
		member{"debian-binary/", []byte("2.0\n")},
		member{"_extra", []byte("odd")},
		member{"control.tar", tarOf(t, file("./control", "Package: p\n"))},
		member{"data.tar.gz", data},
		member{"_sig", []byte("x")},
	)
	if got, err := listDeb(t.Context(), deb, MaxDebData); err != nil || len(got) != 1 {
		t.Fatalf("deb with extra members: %q, %v", got, err)
	}
}

func TestReadDebRejects(t *testing.T) {
	good := debOf(t, "p", ".xz", file("./etc/a", strings.Repeat("data ", 1000)))
	dataGz := compress(t, ".gz", tarOf(t, file("./a", "b")))
	control := member{"control.tar.gz", compress(t, ".gz", tarOf(t, file("./control", "Package: p\n")))}
	version := member{"debian-binary", []byte("2.0\n")}
	tests := []struct {
		name string
		deb  []byte
		want error
		msg  string
	}{
		{"not ar", []byte("PK\x03\x04 not a deb"), ErrCorrupt, "not an ar archive"},
		{"empty", nil, ErrCorrupt, "not an ar archive"},
		{"magic only", []byte("!<arch>\n"), ErrCorrupt, "no debian-binary"},
		{"bad member header", append([]byte("!<arch>\n"), bytes.Repeat([]byte("x"), 60)...), ErrCorrupt, "bad ar member header"},
		{"format 3", arOf(member{"debian-binary", []byte("3.0\n")}, control, member{"data.tar.gz", dataGz}), ErrCorrupt, "debian-binary"},
		{"no control", arOf(version, member{"data.tar.gz", dataGz}), ErrCorrupt, "unexpected ar member \"data.tar.gz\""},
		{"no data", arOf(version, control), ErrCorrupt, "no data.tar"},
		{"data twice", arOf(version, control, member{"data.tar.gz", dataGz}, member{"data.tar.gz", dataGz}), ErrCorrupt, "unexpected ar member"},
		{"member after data", arOf(version, control, member{"data.tar.gz", dataGz}, member{"evil", nil}), ErrCorrupt, "unexpected ar member"},
		{"bzip2", arOf(version, control, member{"data.tar.bz2", dataGz}), ErrCorrupt, "unsupported compression"},
		{"wrong compression", arOf(version, control, member{"data.tar.xz", dataGz}), ErrCorrupt, ""},
		{"garbage after stream", arOf(version, control, member{"data.tar.gz", append(slicesClone(dataGz), "junk"...)}), ErrCorrupt, ""},
		{"device node", debOf(t, "p", ".gz", special("./dev/sda", tar.TypeBlock)), ErrSpecialFile, "/dev/sda"},
		{"char device", debOf(t, "p", ".xz", special("./dev/null", tar.TypeChar)), ErrSpecialFile, ""},
		{"fifo", debOf(t, "p", ".zst", special("./run/fifo", tar.TypeFifo)), ErrSpecialFile, ""},
		{"dot dot", debOf(t, "p", ".gz", file("./usr/../../etc/passwd", "x")), ErrUnsafePath, ".."},
		{"absolute", debOf(t, "p", ".gz", file("/etc/passwd", "x")), ErrUnsafePath, "/etc/passwd"},
		{"empty component", debOf(t, "p", ".gz", file("./usr//bin", "x")), ErrUnsafePath, ""},
		{"hard link dot dot", debOf(t, "p", ".gz", hardlink("./usr/x", "../etc/shadow")), ErrUnsafePath, ""},
		{"root as a file", debOf(t, "p", ".gz", file(".", "x")), ErrUnsafePath, ""},
		{"too large", debOf(t, "p", ".gz", file("./big", strings.Repeat("x", 10000))), ErrTooLarge, "decompresses beyond"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := listDeb(t.Context(), tc.deb, 8192)
			if !errors.Is(err, tc.want) || !strings.Contains(fmt.Sprint(err), tc.msg) {
				t.Fatalf("got %v, want %v containing %q", err, tc.want, tc.msg)
			}
		})
	}

	// Every truncation of a valid package is an error.
	for n := 0; n < len(good); n += max(1, len(good)/97) {
		if _, err := listDeb(t.Context(), good[:n], MaxDebData); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d of %d bytes: %v, want ErrCorrupt", n, len(good), err)
		}
	}
	if _, err := listDeb(t.Context(), good[:len(good)-1], MaxDebData); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("missing last byte: %v", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := listDeb(ctx, good, MaxDebData); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
}

func slicesClone(b []byte) []byte { return append([]byte(nil), b...) }

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{
		"./":           "",
		".":            "",
		"./usr/":       "usr",
		"usr/bin/x":    "usr/bin/x",
		"./usr/bin/x":  "usr/bin/x",
		"./a..b/c.d/e": "a..b/c.d/e",
	} {
		if got, err := cleanName(in); err != nil || got != want {
			t.Errorf("cleanName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"/", "/etc", "../x", "./../x", "a/../b", "a/./b", "a//b", "././a", "a\x00b", "./.."} {
		if got, err := cleanName(in); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("cleanName(%q) = %q, %v; want ErrUnsafePath", in, got, err)
		}
	}
}
