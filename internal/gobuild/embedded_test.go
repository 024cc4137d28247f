package gobuild

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/torwrt/torwrt"
)

// copyFS reads src into a MapFS that a test may change.
func copyFS(t *testing.T, src fs.FS) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	err := fs.WalkDir(src, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(src, p)
		m[p] = &fstest.MapFile{Data: data, Mode: 0o444}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The daemon built from the source embedded in imgbuild is byte for byte
// the daemon built from the checkout, on both router architectures.
func TestEmbeddedSourceBuildsTheSameDaemon(t *testing.T) {
	for _, arch := range []string{"mips", "mipsle"} {
		t.Run(arch, func(t *testing.T) {
			req := Request{ModuleDir: moduleDir, Package: "./cmd/verify", GOOS: "linux", GOARCH: arch, GOMIPS: "softfloat", Version: "v1.2.3-test"}
			checkout := build(t, req)
			req.ModuleDir, req.Source = "", torwrt.Source
			embedded := build(t, req)
			checkResult(t, embedded)
			if embedded.From != EmbeddedSource || checkout.From != moduleDir {
				t.Errorf("From: embedded %q, checkout %q", embedded.From, checkout.From)
			}
			if embedded.SHA256 != checkout.SHA256 || !bytes.Equal(embedded.Binary, checkout.Binary) {
				t.Fatalf("the embedded source gives %s, the checkout %s", embedded.SHA256, checkout.SHA256)
			}
			if strings.Join(embedded.Env, " ") != strings.Join(checkout.Env, " ") {
				t.Errorf("env differs: %q vs %q", embedded.Env, checkout.Env)
			}
		})
	}
}

// The build really compiles the tree it is given: a change to the embedded
// source shows up in the binary, and a tree missing a package fails with
// the go command's message.
func TestEmbeddedSourceIsWhatIsBuilt(t *testing.T) {
	ref := referenceBuild(t)
	src := copyFS(t, torwrt.Source)
	src["cmd/verify/zz_marker.go"] = &fstest.MapFile{Data: []byte("package main\n\nfunc init() { println(\"embedded-source-marker\") }\n"), Mode: 0o444}
	res := build(t, Request{Source: src, Package: "./cmd/verify", GOOS: "linux", GOARCH: "mips", GOMIPS: "softfloat", Version: "v1.2.3-test"})
	if res.SHA256 == ref.SHA256 || !bytes.Contains(res.Binary, []byte("embedded-source-marker")) {
		t.Fatal("a file added to the source tree did not reach the binary")
	}

	for p := range src {
		if strings.HasPrefix(p, "internal/usign/") {
			delete(src, p)
		}
	}
	_, err := Build(t.Context(), Request{Source: src, Package: "./cmd/verify", GOOS: "linux", GOARCH: "mips", GOMIPS: "softfloat", Version: "v1.2.3-test"})
	if err == nil || !strings.Contains(err.Error(), "internal/usign") {
		t.Fatalf("a source tree without internal/usign: err = %v", err)
	}
	if _, err := Build(t.Context(), Request{Package: "./cmd/verify", GOOS: "linux", GOARCH: "mips", Version: "v1"}); err == nil || !strings.Contains(err.Error(), "no source") {
		t.Fatalf("no ModuleDir and no Source: err = %v", err)
	}
}

func TestUnpack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "src")
	if err := Unpack(t.Context(), torwrt.Source, dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"go.mod", "go.sum", "cmd/verify/main.go", "internal/usign/usign.go"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, want 0644", f, fi.Mode())
		}
	}
	tests, _ := filepath.Glob(filepath.Join(dir, "*", "*", "*_test.go"))
	if len(tests) != 0 {
		t.Errorf("test files unpacked: %v", tests)
	}
	if err := Unpack(t.Context(), torwrt.Source, dir); err == nil {
		t.Error("unpacking into an existing directory did not fail")
	}
	if err := Unpack(t.Context(), fstest.MapFS{"a.go": {Data: []byte("package a\n")}}, filepath.Join(t.TempDir(), "x")); err == nil || !strings.Contains(err.Error(), "go.mod") {
		t.Errorf("a tree without go.mod: err = %v", err)
	}
}
