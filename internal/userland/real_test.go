package userland

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/torwrt/torwrt/internal/testfixture"
)

const goldenLayer = "testdata/bookworm-amd64-layer.golden"

// tlog sends progress lines to t.Log.
type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestRealBookwormUserland fetches the committed lock from deb.debian.org
// (reachable here and in CI; without it the test fails, it never skips),
// builds the layer at epoch 0, checks what the ImageBuilder needs, compares
// the DiffID and digest with the golden file, and runs the real
// ImageBuilder fixture in it with podman. TORWRT_USERLAND_CACHE keeps the
// downloads and the layer between runs.
func TestRealBookwormUserland(t *testing.T) {
	l, err := Committed()
	if err != nil {
		t.Fatal(err)
	}
	cache := os.Getenv("TORWRT_USERLAND_CACHE")
	if cache == "" {
		cache = t.TempDir()
	}
	start := time.Now()
	if err := Fetch(t.Context(), l, cache, tlog{t}); err != nil {
		t.Fatalf("fetching the committed lock from deb.debian.org: %v", err)
	}
	fetched := time.Now()
	layer, err := Layer(t.Context(), l, cache, 0)
	if err != nil {
		t.Fatal(err)
	}
	diffID, err := layer.DiffID()
	if err != nil {
		t.Fatal(err)
	}
	digest, err := layer.Digest()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d packages; fetch %s, layer %s; DiffID %s, digest %s", len(l.Entries), fetched.Sub(start).Round(time.Millisecond), time.Since(fetched).Round(time.Millisecond), diffID, digest)

	t.Run("contents", func(t *testing.T) {
		m := byName(readLayer(t, layer))
		for _, p := range []string{
			"/usr/bin/make", "/usr/bin/gawk", "/usr/bin/awk", "/usr/bin/gcc", "/usr/bin/cc",
			"/usr/bin/g++", "/usr/bin/c++", "/usr/bin/perl", "/usr/share/perl5/Thread/Queue/Any.pm",
			"/usr/bin/python3", "/usr/bin/python", "/bin/bash", "/bin/sh", "/usr/bin/which",
			"/lib64/ld-linux-x86-64.so.2", "/usr/bin/git", "/usr/bin/unzip", "/usr/bin/xz", "/usr/bin/zstd",
			"/usr/bin/rsync", "/usr/bin/wget", "/usr/bin/file", "/usr/bin/patch", "/usr/bin/bzip2",
			"/usr/include/ncurses.h", "/usr/include/zlib.h", "/usr/include/openssl/ssl.h",
			"/etc/passwd", "/etc/group",
		} {
			if name, e := resolve(t, m, p); e.h.Typeflag != tar.TypeReg && e.h.Typeflag != tar.TypeLink {
				t.Errorf("%s resolves to /%s, a %q", p, name, e.h.Typeflag)
			}
		}
		if e := m["usr/bin/awk"]; e.h.Linkname != "gawk" {
			t.Errorf("/usr/bin/awk -> %q, want gawk", e.h.Linkname)
		}
		if name, _ := resolve(t, m, "/bin/sh"); name != "usr/bin/dash" {
			t.Errorf("/bin/sh is /%s, want /usr/bin/dash", name)
		}
		if !strings.Contains(m["etc/passwd"].body, "\nbuildbot:*:1000:1000:buildbot:/builder:/bin/bash\n") {
			t.Errorf("/etc/passwd: %q", m["etc/passwd"].body)
		}
		for name, e := range m {
			if e.h.Mode&0o6000 != 0 || e.h.Uid != 0 || e.h.Gid != 0 || e.h.ModTime.Unix() != 0 {
				t.Errorf("/%s: mode %o owner %d:%d mtime %v", name, e.h.Mode, e.h.Uid, e.h.Gid, e.h.ModTime)
			}
		}
	})

	t.Run("golden", func(t *testing.T) {
		got := fmt.Sprintf("# userland.Layer(Committed(), epoch 0): regenerate with scripts/userland-lock.sh\nlock-sum %s\ndiffid %s\ndigest %s gzip-level %d\n", l.Sum(), diffID, digest, GzipLevel)
		if *update {
			if err := os.WriteFile(goldenLayer, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		want, err := os.ReadFile(goldenLayer)
		if err != nil {
			t.Fatal(err)
		}
		if string(want) != got {
			t.Errorf("the layer of the committed lock is not the golden one.\nIf %s or the layer format changed on purpose, run scripts/userland-lock.sh (or this test with -update) and commit the result; a change of the layer format needs a new layerFormat.\ngot:\n%s\nwant:\n%s", LockFileName, got, want)
		}
	})

	t.Run("imagebuilder", func(t *testing.T) {
		podman := requireTool(t, "podman", "podman")
		requireTool(t, "runc", "runc")
		requireTool(t, "zstd", "zstd")
		dir, err := testfixture.RealIBDir()
		ib := filepath.Join(dir, testfixture.RealIBArchive)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(ib); err != nil {
			t.Fatalf("the real ImageBuilder fixture: %v", err)
		}
		tarPath, _, err := LayerTar(t.Context(), l, cache, 0)
		if err != nil {
			t.Fatal(err)
		}
		root := filepath.Join(t.TempDir(), "rootfs")
		out := filepath.Join(t.TempDir(), "out")
		for _, d := range []string{root, out} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		run := func(name string, args ...string) {
			t.Helper()
			cmd := exec.CommandContext(t.Context(), name, args...)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, lastLines(string(b), 40))
			}
		}
		run("tar", "-xf", tarPath, "-C", root, "--numeric-owner")
		run("tar", "--zstd", "-xf", ib, "-C", root, "--numeric-owner", "--transform", "s,^openwrt-imagebuilder-ramips-mt7620.Linux-x86_64,builder,")
		run("chown", "-R", "1000:1000", filepath.Join(root, "builder"), out)

		name := fmt.Sprintf("torwrt-userland-test-%d", os.Getpid())
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), 30*time.Second)
			defer cancel()
			exec.CommandContext(ctx, podman, "rm", "-f", name).Run()
		})
		script := `set -e; umask 022
make --version | head -1; gcc --version | head -1; perl -MThread::Queue::Any -e1; awk --version | head -1
python --version; which gcc; echo 'int main(void){return 0;}' > /tmp/t.c; cc /tmp/t.c -o /tmp/t; /tmp/t
make image PROFILE=gl-mt300a PACKAGES="tor nftables kmod-nft-nat -opkg -luci" BIN_DIR=/out`
		cmd := exec.CommandContext(t.Context(), podman, "--runtime", "runc", "run", "--rm", "--name", name,
			"--network", "none", "--cap-drop", "all", "--security-opt", "no-new-privileges",
			"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
			"--user", "buildbot", "--workdir", "/builder", "--volume", out+":/out",
			"--rootfs", root, "/bin/bash", "-c", script)
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
		cmd.WaitDelay = 10 * time.Second
		var log bytes.Buffer
		cmd.Stdout, cmd.Stderr = &log, &log
		begin := time.Now()
		if err := cmd.Run(); err != nil {
			t.Fatalf("make image in the userland: %v\n%s", err, lastLines(log.String(), 40))
		}
		t.Logf("make image in %s:\n%s", time.Since(begin).Round(time.Millisecond), strings.Join(strings.Split(log.String(), "\n")[:5], "\n"))
		if _, err := os.Stat(filepath.Join(out, "lede-ramips-mt7620-gl-mt300a-squashfs-sysupgrade.bin")); err != nil {
			t.Fatalf("no sysupgrade image: %v\n%s", err, lastLines(log.String(), 40))
		}
	})
}
