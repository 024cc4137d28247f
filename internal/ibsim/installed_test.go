package ibsim

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/torwrt/torwrt/internal/container"
)

// The simulated IB runs make image as the real one does, one $(MAKE)
// <target> sub-make per step, so torwrt's hooks/installed.mk (make -f
// installed.mk image) can save the tree package_install leaves in
// $(TARGET_DIR) and restore it instead of installing. These tests run the
// hook from internal/imagebuilder/hooks as torwrt mounts it, in podman
// (the IB's busybox userland runs its tar), in the three ways: no hook,
// save, restore.

// installedHookPath is torwrt's hook, read where internal/imagebuilder
// keeps it (the test does not import that package: it imports this one).
const installedHookPath = "../imagebuilder/hooks/installed.mk"

// hookRun runs make image in one simulated IB with the feed mounts of its
// package manager, with or without the installed.mk hook.
type hookRun struct {
	target Target
	img    *container.Image
	runner container.Runner
	mounts []container.Mount // the feed and the feed list over the IB's
	hooks  string            // directory holding installed.mk
}

func newHookRun(t *testing.T, target Target, img *container.Image, runner container.Runner, mounts []container.Mount) *hookRun {
	t.Helper()
	b, err := os.ReadFile(installedHookPath)
	if err != nil {
		t.Fatalf("torwrt's installed.mk hook: %v", err)
	}
	hooks := dir(t, "hooks")
	if err := os.WriteFile(filepath.Join(hooks, "installed.mk"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return &hookRun{target: target, img: img, runner: runner, mounts: mounts, hooks: hooks}
}

// image runs make image; mode is "" (the IB's own Makefile), "save" or
// "restore" (make -f installed.mk, TORWRT_INSTALLED=mode, the archive in
// installed). It returns make's stdout and stderr together.
func (h *hookRun) image(t *testing.T, mode, installed, files, out string, args ...string) string {
	t.Helper()
	mounts := append([]container.Mount{}, h.mounts...)
	filesM := container.Mount{Source: files, Target: "/files", ReadOnly: true}
	outM := container.Mount{Source: out, Target: "/out"}
	mounts = append(mounts, filesM, outM)
	env := []string{fmt.Sprintf("SOURCE_DATE_EPOCH=%d", h.target.SourceDateEpoch)}
	argv := []string{"make", "image"}
	if mode != "" {
		hooksM := container.Mount{Source: h.hooks, Target: "/torwrt/hooks", ReadOnly: true}
		instM := container.Mount{Source: installed, Target: "/torwrt/installed", ReadOnly: mode == "restore"}
		mounts = append(mounts, hooksM, instM)
		argv = []string{"make", "-f", h.runner.Path(hooksM) + "/installed.mk", "image"}
		env = append(env, "TORWRT_INSTALLED="+mode, "TORWRT_INSTALLED_DIR="+h.runner.Path(instM))
	}
	argv = append(argv, args...)
	argv = append(argv, "FILES="+h.runner.Path(filesM), "BIN_DIR="+h.runner.Path(outM))
	runSeq++
	var stdout, stderr bytes.Buffer
	start := time.Now()
	err := h.runner.Run(context.Background(), container.RunSpec{
		Name:  fmt.Sprintf("torwrt-ibsim-hook-%d-%d", os.Getpid(), runSeq),
		Image: h.img, Argv: argv, Env: env, Mounts: mounts,
		Stdout: &stdout, Stderr: &stderr,
	})
	t.Logf("%s: make image (installed.mk mode %q) took %s", h.runner.Engine(), mode, time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("make image (installed.mk mode %q): %v\n%s\n%s", mode, err, stdout.String(), stderr.String())
	}
	return stdout.String() + stderr.String()
}

// otherFilesTree is a second FILES overlay: another config, a file and an
// init script of its own, and none of filesTree's other files.
func otherFilesTree(t *testing.T) string {
	t.Helper()
	d := dir(t, "files-b")
	for p, c := range map[string]string{
		"etc/torwrt/config.json": `{"overlay":"the second one"}` + "\n",
		"etc/torwrt/only-in-b":   "B\n",
		"etc/init.d/torwrt-b":    "#!/bin/sh /etc/rc.common\nSTART=70\nUSE_PROCD=1\n",
	} {
		if err := os.MkdirAll(filepath.Join(d, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(p, "etc/init.d/") {
			mode = 0o755
		}
		if err := os.WriteFile(filepath.Join(d, p), []byte(c), mode); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// rootTree unpacks the root filesystem of the sysupgrade image in out with
// the real unsquashfs and describes every entry by type, mode and content
// or link target. Times are left out: torwrt's mksquashfs hook sets them
// all to SOURCE_DATE_EPOCH, which makes equal trees equal images.
func rootTree(t *testing.T, tg Target, out, extra string) map[string]string {
	t.Helper()
	img, err := os.ReadFile(filepath.Join(out, tg.ImageName(extra)))
	if err != nil {
		ents, _ := os.ReadDir(out)
		t.Fatalf("%v (BIN_DIR has %v)", err, ents)
	}
	payload := img[:layout(t, img).PayloadEnd]
	k := len(fakeKernel(tg))
	off := bytes.Index(payload[k:], []byte("hsqs"))
	if off < 0 {
		t.Fatalf("%s: no squashfs after the kernel", out)
	}
	d := t.TempDir()
	fsimg := filepath.Join(d, "root.squashfs")
	if err := os.WriteFile(fsimg, payload[k+off:], 0o644); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(d, "root")
	if b, err := exec.Command("unsquashfs", "-no-xattrs", "-d", root, fsimg).CombinedOutput(); err != nil {
		t.Fatalf("unsquashfs: %v\n%s", err, b)
	}
	tree := map[string]string{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		desc := fmt.Sprintf("%v", fi.Mode())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + l
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %q", b)
		}
		tree[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// sameTree reports every entry in which two root trees differ.
func sameTree(t *testing.T, what string, a, b map[string]string) bool {
	t.Helper()
	var diffs []string
	for p, da := range a {
		if db, ok := b[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("  %s: only in the first: %.120s", p, da))
		} else if da != db {
			diffs = append(diffs, fmt.Sprintf("  %s: %.120s\n    vs %.120s", p, da, db))
		}
	}
	for p, db := range b {
		if _, ok := a[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("  %s: only in the second: %.120s", p, db))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		if len(diffs) > 30 {
			diffs = append(diffs[:30], fmt.Sprintf("  ... and %d more", len(diffs)-30))
		}
		t.Errorf("%s: the root trees differ in %d entries:\n%s", what, len(diffs), strings.Join(diffs, "\n"))
	}
	return len(diffs) == 0
}

// busyboxTarHint explains the likely cause when a restored tree's modes
// lost bits: the IB's userland is busybox, whose tar, run as the
// container's non-root user, accepts -p but ignores it and applies the
// umask (and drops setuid/setgid), so /tmp (1777) comes back 1755 under
// umask 022. Extracting under umask 000 restores the modes.
const busyboxTarHint = "if modes lost bits (tmp 1777 -> 1755): busybox tar as a non-root user ignores -p and applies the umask; installed.mk's restore must extract under umask 000"

// archived lists the entries of the installed.tar a save run wrote.
func archived(t *testing.T, installed string) map[string]bool {
	t.Helper()
	f, err := os.Open(filepath.Join(installed, "installed.tar"))
	if err != nil {
		t.Fatalf("the save run wrote no archive: %v", err)
	}
	defer f.Close()
	names := map[string]bool{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatalf("installed.tar: %v", err)
		}
		names[strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")] = true
	}
}

// checkInstalledHook runs make image without the hook, in save mode and in
// restore mode with the same FILES (filesA), which must give the same root
// tree; then in restore mode and without the hook with another overlay
// (filesB), which must also agree, carry filesB's files and not filesA's,
// and have the same packages installed.
//
// check checks the outputs of each run with filesA.
func checkInstalledHook(t *testing.T, h *hookRun, db, extra string, args []string, check func(out, files string)) {
	t.Helper()
	filesA, filesB := filesTree(t), otherFilesTree(t)
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	os.Chtimes(filepath.Join(filesA, "etc/torwrt/config.json"), old, old)
	installed := dir(t, "installed")

	plainA, saveA, restoreA := dir(t, "plain-a"), dir(t, "save-a"), dir(t, "restore-a")
	h.image(t, "", "", filesA, plainA, args...)
	saveLog := h.image(t, "save", installed, filesA, saveA, args...)
	if !strings.Contains(saveLog, "torwrt: saving the installed package tree") {
		t.Errorf("save mode did not save:\n%s", saveLog)
	}
	// The archive is package_install's tree: the package database, and
	// nothing of FILES or of what prepare_rootfs does.
	names := archived(t, installed)
	if !names[db] {
		t.Errorf("installed.tar lacks %s", db)
	}
	for _, p := range []string{"etc/torwrt/config.json", "usr/sbin/torwrt-verify", "etc/init.d/torwrt", "etc/rc.d"} {
		if names[p] {
			t.Errorf("installed.tar has %s, which package_install does not make", p)
		}
	}
	restoreLog := h.image(t, "restore", installed, filesA, restoreA, args...)
	if !strings.Contains(restoreLog, "torwrt: restoring the installed package tree") || (strings.Contains(restoreLog, "Installing ") && strings.Contains(restoreLog, " packages [SIMULATED")) {
		t.Errorf("restore mode did not restore, or ran the package manager:\n%s", restoreLog)
	}
	for _, out := range []string{plainA, saveA, restoreA} {
		check(out, filesA)
	}
	treeA := rootTree(t, h.target, plainA, extra)
	sameTree(t, "no hook vs save mode, same FILES", treeA, rootTree(t, h.target, saveA, extra))
	if !sameTree(t, "no hook vs restore mode, same FILES", treeA, rootTree(t, h.target, restoreA, extra)) {
		t.Log(busyboxTarHint)
	}

	plainB, restoreB := dir(t, "plain-b"), dir(t, "restore-b")
	h.image(t, "", "", filesB, plainB, args...)
	h.image(t, "restore", installed, filesB, restoreB, args...)
	treeB := rootTree(t, h.target, restoreB, extra)
	sameTree(t, "no hook vs restore mode, the second FILES", rootTree(t, h.target, plainB, extra), treeB)
	if !strings.Contains(treeB["etc/torwrt/config.json"], "the second one") || treeB["etc/torwrt/only-in-b"] == "" || !strings.Contains(treeB["etc/rc.d/S70torwrt-b"], "-> ../init.d/torwrt-b") {
		t.Errorf("restore with the second FILES lacks its files: config %q, only-in-b %q, S70torwrt-b %q",
			treeB["etc/torwrt/config.json"], treeB["etc/torwrt/only-in-b"], treeB["etc/rc.d/S70torwrt-b"])
	}
	for _, p := range []string{"usr/sbin/torwrt-verify", "etc/init.d/torwrt", "etc/rc.d/S60torwrt", "etc/torwrt.json"} {
		if d, ok := treeB[p]; ok {
			t.Errorf("restore with the second FILES has the first one's %s: %s", p, d)
		}
	}
	// The same packages: the manifest, the package database, and every
	// file the packages installed.
	prefix := h.target.ImagePrefix(extra)
	ma, _ := os.ReadFile(filepath.Join(saveA, prefix+".manifest"))
	mb, err := os.ReadFile(filepath.Join(restoreB, prefix+".manifest"))
	if err != nil || len(ma) == 0 || !bytes.Equal(ma, mb) {
		t.Errorf("manifests differ (%v):\n%s\nvs\n%s", err, ma, mb)
	}
	if treeA[db] == "" || treeA[db] != treeB[db] {
		t.Errorf("%s differs between the save run and the restore with the second FILES", db)
	}
	for p := range names {
		if p == "" || p == "." || strings.HasPrefix(p, "etc/rc.d") || strings.HasPrefix(p, "etc/torwrt") {
			continue
		}
		if treeA[p] != treeB[p] {
			t.Errorf("installed %s differs after the restore with the second FILES: %.120s vs %.120s", p, treeA[p], treeB[p])
		}
	}
}

func TestSimIBInstalledHookPodman(t *testing.T) {
	requireTools(t, checkTools...)
	e := newEnv(t, "podman")
	feedM := container.Mount{Source: e.feed, Target: "/feed", ReadOnly: true}
	repos := filepath.Join(dir(t, "repos"), "repositories.conf")
	// As torwrt writes it: the IB's own packages/ and the local feed.
	conf := fmt.Sprintf("src imagebuilder file:packages\nsrc/gz torwrt_sim file://%s\noption check_signature\n", e.runner.Path(feedM))
	if err := os.WriteFile(repos, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	mounts := []container.Mount{feedM, {Source: repos, Target: "/builder/repositories.conf", ReadOnly: true}}
	h := newHookRun(t, ar150, e.img, e.runner, mounts)
	pk := "PACKAGES=tor tor-geoip ucert -luci -ppp -ppp-mod-pppoe -opkg"
	manifest, stderr, err := e.run(t, nil, "", "", "manifest", "PROFILE=glinet_gl-ar150", pk)
	if err != nil {
		t.Fatalf("make manifest: %v\n%s", err, stderr)
	}
	checkManifest(t, manifest)
	args := []string{"PROFILE=glinet_gl-ar150", pk, "EXTRA_IMAGE_NAME=test", "DISABLED_SERVICES=dnsmasq odhcpd"}
	checkInstalledHook(t, h, "usr/lib/opkg/status", "test", args, func(out, files string) {
		checkImageOutputs(t, out, manifest, files)
	})
}

func TestAPKSimIBInstalledHookPodman(t *testing.T) {
	requireTools(t, checkTools...)
	e := newAPKEnv(t, "podman")
	mounts := []container.Mount{
		{Source: e.feed, Target: "/feed", ReadOnly: true},
		{Source: e.repos, Target: "/builder/repositories", ReadOnly: true},
		{Source: e.extraKey, Target: "/builder/keys/torwrt-local-feed.pem", ReadOnly: true},
	}
	h := newHookRun(t, apkAR150, e.img, e.runner, mounts)
	manifest, stderr, err := e.run(t, nil, "", "manifest", "PROFILE=glinet_gl-ar150", apkPackages)
	if err != nil {
		t.Fatalf("make manifest: %v\n%s", err, stderr)
	}
	checkAPKManifest(t, manifest)
	args := []string{"PROFILE=glinet_gl-ar150", apkPackages}
	checkInstalledHook(t, h, "lib/apk/db/installed", "", args, func(out, _ string) {
		checkAPKImage(t, out, manifest)
	})
}

// The Makefile has the real IB's structure: image and manifest reach the
// steps through sub-makes spelled $(MAKE) <target> (what installed.mk's
// MAKE redefinition needs), _call_image runs them in the real order, and
// CONFIG_USE_APK and TARGET_DIR are make variables as there.
func TestMakefileSubMakes(t *testing.T) {
	recipe := func(mk, target string) []string {
		_, after, ok := strings.Cut(mk, "\n"+target+":")
		if !ok {
			t.Fatalf("no %s target", target)
		}
		var lines []string
		for _, l := range strings.Split(after, "\n")[1:] {
			if !strings.HasPrefix(l, "\t") {
				break
			}
			lines = append(lines, strings.TrimSpace(l))
		}
		return lines
	}
	subMakes := func(lines []string) []string {
		var out []string
		for _, l := range lines {
			if _, rest, ok := strings.Cut(l, "$(MAKE) "); ok {
				f := strings.Fields(strings.TrimPrefix(rest, "-s "))
				out = append(out, strings.TrimSuffix(f[0], ";"))
			}
		}
		return out
	}
	for _, tg := range []Target{ar150, apkAR150} {
		tree, err := ibTree(tg)
		if err != nil {
			t.Fatal(err)
		}
		var mk string
		for _, f := range tree {
			if f.path == "Makefile" {
				mk = string(f.content)
			}
		}
		if got := strings.Join(subMakes(recipe(mk, "image")), " "); got != "_check_profile _call_image" {
			t.Errorf("%s: image runs %q", tg.Profile, got)
		}
		if got := strings.Join(subMakes(recipe(mk, "_call_image")), " "); got != "package_reload package_install prepare_rootfs build_image checksum" {
			t.Errorf("%s: _call_image runs %q", tg.Profile, got)
		}
		if got := strings.Join(subMakes(recipe(mk, "_call_manifest")), " "); got != "package_reload" {
			t.Errorf("%s: _call_manifest runs %q", tg.Profile, got)
		}
		// package_reload is defined once per package manager; both run
		// package_index.
		if n := strings.Count(mk, "\t\t$(MAKE) package_index; \\\n"); n != 2 {
			t.Errorf("%s: %d package_reload definitions run $(MAKE) package_index, want 2", tg.Profile, n)
		}
		for _, target := range []string{"package_index", "package_install", "prepare_rootfs", "build_image", "checksum"} {
			if !strings.Contains(mk, "\n"+target+": FORCE\n") {
				t.Errorf("%s: no %s target", tg.Profile, target)
			}
		}
		if strings.Contains(mk, "\tmake ") || strings.Contains(mk, "$(MAKE) -C") {
			t.Errorf("%s: a sub-make not spelled $(MAKE) <target>", tg.Profile)
		}
		want := "\nCONFIG_USE_APK:=\n"
		if tg.APK() {
			want = "\nCONFIG_USE_APK:=y\n"
		}
		if !strings.Contains(mk, want) || !strings.Contains(mk, "\nTARGET_DIR:=$(BUILD_DIR)/root-$(BOARD)\n") {
			t.Errorf("%s: Makefile lacks %q or TARGET_DIR", tg.Profile, want)
		}
		// package_install reads nothing prepare_rootfs is given.
		for _, l := range recipe(mk, "package_install") {
			for _, v := range []string{"FILES", "DISABLED_SERVICES", "ADD_LOCAL_KEY"} {
				if strings.Contains(l, v) {
					t.Errorf("%s: package_install reads %s: %s", tg.Profile, v, l)
				}
			}
		}
	}
}
