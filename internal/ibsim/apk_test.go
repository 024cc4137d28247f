package ibsim

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/torwrt/torwrt/internal/apk"
	"github.com/torwrt/torwrt/internal/container"
	"github.com/torwrt/torwrt/internal/fwimage"
)

// apkAR150 is the 25.12 (apk) GL-AR150, the default target.
var apkAR150 = mustTarget("gl-ar150")

func TestTargetsGenerations(t *testing.T) {
	want := map[string]struct{ pm, version string }{
		"gl-ar150": {APK, "25.12.5"}, "gl-mt300a": {APK, "25.12.5"},
		"gl-ar150-24.10": {Opkg, "24.10.3"}, "gl-mt300a-24.10": {Opkg, "24.10.3"},
	}
	got := Targets()
	if len(got) != len(want) {
		t.Fatalf("Targets: %d, want %d", len(got), len(want))
	}
	for _, tg := range got {
		w, ok := want[tg.Profile]
		if !ok || tg.PackageManager != w.pm || tg.Version != w.version {
			t.Errorf("%s: %s %s", tg.Profile, tg.PackageManager, tg.Version)
		}
	}
	if apkAR150.Revision != "r33051-f5dae5ece4" || apkAR150.KernelVersion != "6.12.94" || !apkAR150.APK() {
		t.Errorf("gl-ar150: %+v", apkAR150)
	}
	if ar150.Revision != "r28872-daca7c049b" || ar150.KernelVersion != "6.6.102" || ar150.SourceDateEpoch != 1758316778 || ar150.APK() {
		t.Errorf("gl-ar150-24.10: %+v", ar150)
	}
	if tg, _ := TargetByProfile("glinet_gl-ar150"); tg.Profile != "gl-ar150" {
		t.Errorf("IB profile id resolves to %s", tg.Profile)
	}
	if n := apkAR150.ImageName(""); n != "openwrt-25.12.5-ath79-generic-glinet_gl-ar150-squashfs-sysupgrade.bin" {
		t.Errorf("ImageName %s", n)
	}
	tree, err := ibTree(apkAR150)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, f := range tree {
		files[f.path] = string(f.content)
	}
	if !strings.Contains(files[".config"], "\nCONFIG_USE_APK=y\n") || files["repositories.conf"] != "" {
		t.Errorf("apk tree: .config %q, repositories.conf present: %v", files[".config"], files["repositories.conf"] != "")
	}
	repos := files["repositories"]
	for _, u := range []string{
		"https://downloads.openwrt.org/releases/25.12.5/targets/ath79/generic/packages/packages.adb\n",
		"https://downloads.openwrt.org/releases/25.12.5/packages/mips_24kc/base/packages.adb\n",
		"https://downloads.openwrt.org/releases/25.12.5/targets/ath79/generic/kmods/6.12.94-1-",
		"# SIMULATED ImageBuilder",
	} {
		if !strings.Contains(repos, u) {
			t.Errorf("repositories lacks %q:\n%s", u, repos)
		}
	}
	if _, err := apk.ParsePublicKeyPEM([]byte(files["keys/"+FeedAPKKeyName])); err != nil {
		t.Errorf("keys/%s: %v", FeedAPKKeyName, err)
	}
	if !strings.Contains(files["README.SIMULATED"], "apk-tools v3") {
		t.Error("README.SIMULATED does not describe the apk variant")
	}
	old, err := ibTree(ar150)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range old {
		if f.path == ".config" && !strings.Contains(string(f.content), "\n# CONFIG_USE_APK is not set\n") {
			t.Errorf("24.10 .config:\n%s", f.content)
		}
		if f.path == "repositories" {
			t.Error("24.10 tree has an apk repositories file")
		}
	}
}

func TestAPKPackagesDeterministic(t *testing.T) {
	for _, tg := range []Target{apkAR150, mustTarget("gl-mt300a")} {
		d1, d2 := t.TempDir(), t.TempDir()
		p1, err := Packages(tg, d1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Packages(tg, d2); err != nil {
			t.Fatal(err)
		}
		ents, _ := os.ReadDir(d1)
		if len(ents) != len(p1)+1 {
			t.Errorf("%s: %d files for %d packages + packages.adb", tg.Profile, len(ents), len(p1))
		}
		for _, e := range ents {
			a, _ := os.ReadFile(filepath.Join(d1, e.Name()))
			b, err := os.ReadFile(filepath.Join(d2, e.Name()))
			if err != nil || !bytes.Equal(a, b) {
				t.Errorf("%s: %s differs between two runs", tg.Profile, e.Name())
			}
		}
		idxb, err := os.ReadFile(filepath.Join(d1, "packages.adb"))
		if err != nil {
			t.Fatal(err)
		}
		idx, err := apk.ReadIndex(idxb, apk.NewKeyring(FeedAPKKey()))
		if err != nil {
			t.Fatalf("%s: packages.adb with the feed key: %v", tg.Profile, err)
		}
		if idx.SignedBy != FeedAPKKey().ID || len(idx.Packages) != len(p1) {
			t.Errorf("%s: index signed by %s with %d entries", tg.Profile, idx.SignedBy, len(idx.Packages))
		}
		other, err := apk.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := apk.ReadIndex(idxb, apk.NewKeyring(other.Public())); !errors.Is(err, apk.ErrUntrustedKey) {
			t.Errorf("%s: index read with another key: %v", tg.Profile, err)
		}
		byName := map[string]Package{}
		for _, p := range p1 {
			byName[p.Name] = p
			if p.Filename != p.Name+"-"+p.Version+".apk" || p.Arch != tg.Arch {
				t.Errorf("%s: %+v", tg.Profile, p)
			}
			b, _ := os.ReadFile(filepath.Join(d1, p.Filename))
			pk, err := apk.ReadPackage(bytes.NewReader(b), 0)
			if err != nil {
				t.Fatalf("%s: %v", p.Filename, err)
			}
			if err := pk.MatchIndex(idx.Lookup(p.Name)); err != nil {
				t.Errorf("%s: %v", p.Filename, err)
			}
			if !strings.Contains(pk.Info.Description, "SIMULATED") || pk.Info.License != "SIMULATED" || pk.Scripts["post-install"] == "" {
				t.Errorf("%s: info %+v", p.Filename, pk.Info)
			}
		}
		for _, n := range append(tg.DefaultPackages(), "apk-mbedtls", "tor", "tor-geoip", "kmod-nft-nat", "kmod-nft-fib", "kernel", "openwrt-keyring") {
			if _, ok := byName[n]; !ok {
				t.Errorf("%s: feed lacks %s", tg.Profile, n)
			}
		}
		if _, ok := byName["opkg"]; ok {
			t.Errorf("%s: an apk feed has opkg", tg.Profile)
		}
		if e := idx.Lookup("kmod-nft-nat"); e == nil || e.Version != "6.12.94-r1" || strings.Join(e.Depends, " ") != "kernel kmod-nf-nat kmod-nft-core" {
			t.Errorf("%s: kmod-nft-nat: %+v", tg.Profile, e)
		}
	}
}

var (
	apkServedOnce   sync.Once
	apkServedImg    *container.Image
	apkServedErr    error
	stopAPKRegistry func()
)

func apkPulled(t *testing.T) *container.Image {
	t.Helper()
	requireTools(t, buildTools...)
	apkServedOnce.Do(func() {
		img, err := BuildImage(context.Background(), apkAR150, BuildOptions{})
		if err != nil {
			apkServedErr = err
			return
		}
		refs, stop, err := Serve(context.Background(), map[string]v1.Image{apkAR150.Profile: img})
		if err != nil {
			apkServedErr = err
			return
		}
		stopAPKRegistry = stop
		apkServedImg, apkServedErr = (&container.Cache{Dir: filepath.Join(tmpRoot, "cache"), Insecure: true}).Pull(context.Background(), refs[apkAR150.Profile])
	})
	if apkServedErr != nil {
		t.Fatal(apkServedErr)
	}
	return apkServedImg
}

// apkEnv runs the 25.12 sim IB as the lead's builder will: its own
// repositories file naming a local packages.adb by absolute path, and an
// extra trusted key mounted into /builder/keys.
type apkEnv struct {
	img      *container.Image
	runner   container.Runner
	feed     string
	extraKey string // PEM file of the key that signs feed/packages.adb
	repos    string // the repositories file mounted over /builder/repositories
}

func newAPKEnv(t *testing.T, engine string) *apkEnv {
	t.Helper()
	img := apkPulled(t)
	var r container.Runner
	var err error
	if engine == "podman" {
		requireTools(t, engineTools...)
		r, err = container.NewRunner(t.Context(), "podman", container.RunnerOptions{Logf: t.Logf})
	} else {
		r, err = container.NewRunner(t.Context(), "host", container.RunnerOptions{WorkRoot: dir(t, "hostrun"), Logf: t.Logf})
	}
	if err != nil {
		t.Fatal(err)
	}
	feed := dir(t, "apkfeed")
	if _, err := Packages(apkAR150, feed); err != nil {
		t.Fatal(err)
	}
	// Re-sign the index with a key of the test's own, as a builder signs
	// its local feed, and trust it through an extra mounted key file.
	b, err := os.ReadFile(filepath.Join(feed, "packages.adb"))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := apk.ReadIndex(b, apk.NewKeyring(FeedAPKKey()))
	if err != nil {
		t.Fatal(err)
	}
	sk, err := apk.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	resigned, err := apk.WriteIndex(idx, sk)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(feed, "packages.adb"), resigned, 0o644); err != nil {
		t.Fatal(err)
	}
	pub, _ := sk.Public().MarshalPEM()
	kd := dir(t, "extrakey")
	e := &apkEnv{img: img, runner: r, feed: feed, extraKey: filepath.Join(kd, "torwrt-local-feed.pem"), repos: filepath.Join(dir(t, "apkrepos"), "repositories")}
	if err := os.WriteFile(e.extraKey, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	feedM := container.Mount{Source: feed, Target: "/feed", ReadOnly: true}
	if err := os.WriteFile(e.repos, []byte("# torwrt test feed\n"+r.Path(feedM)+"/packages.adb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *apkEnv) run(t *testing.T, env []string, out string, args ...string) (string, string, error) {
	t.Helper()
	mounts := []container.Mount{
		{Source: e.feed, Target: "/feed", ReadOnly: true},
		{Source: e.repos, Target: "/builder/repositories", ReadOnly: true},
		{Source: e.extraKey, Target: "/builder/keys/torwrt-local-feed.pem", ReadOnly: true},
	}
	argv := append([]string{"make"}, args...)
	if out != "" {
		m := container.Mount{Source: out, Target: "/out"}
		mounts = append(mounts, m)
		argv = append(argv, "BIN_DIR="+e.runner.Path(m))
	}
	runSeq++
	var stdout, stderr bytes.Buffer
	err := e.runner.Run(context.Background(), container.RunSpec{
		Name: fmt.Sprintf("torwrt-ibsim-apk-%d-%d", os.Getpid(), runSeq), Image: e.img, Argv: argv, Env: env,
		Mounts: mounts, Stdout: &stdout, Stderr: &stderr,
	})
	return stdout.String(), stderr.String(), err
}

const apkPackages = "PACKAGES=tor tor-geoip ucert -luci -ppp -ppp-mod-pppoe"

// checkAPKManifest checks `make manifest` output: apk list --manifest lines.
func checkAPKManifest(t *testing.T, m string) map[string]string {
	t.Helper()
	got := map[string]string{}
	prev := ""
	for _, l := range strings.Split(strings.TrimRight(m, "\n"), "\n") {
		f := strings.Split(l, " ")
		if len(f) != 2 || f[0] <= prev {
			t.Fatalf("manifest line %q is not `name version` in apk's order:\n%s", l, m)
		}
		prev = f[0]
		got[f[0]] = f[1]
	}
	for _, n := range []string{"tor", "tor-geoip", "ucert", "kmod-usb-chipidea2", "kernel", "base-files", "libevent2-7", "kmod-nft-nat", "apk-mbedtls", "libc"} {
		if got[n] == "" {
			t.Errorf("manifest lacks %s", n)
		}
	}
	for _, n := range []string{"luci", "ppp", "opkg", "kmod-rt2800-soc"} {
		if got[n] != "" {
			t.Errorf("manifest has %s", n)
		}
	}
	if got["kmod-nft-nat"] != "6.12.94-r1" || got["tor"] != "0.4.8.17-r1" {
		t.Errorf("versions: kmod-nft-nat %q tor %q", got["kmod-nft-nat"], got["tor"])
	}
	return got
}

// checkAPKImage checks BIN_DIR and the root filesystem of an apk build.
func checkAPKImage(t *testing.T, out, manifest string) []byte {
	t.Helper()
	img, err := os.ReadFile(filepath.Join(out, apkAR150.ImageName("")))
	if err != nil {
		ents, _ := os.ReadDir(out)
		t.Fatalf("%v (BIN_DIR has %v)", err, ents)
	}
	if b, _ := os.ReadFile(filepath.Join(out, apkAR150.ImagePrefix("")+".manifest")); string(b) != manifest {
		t.Errorf("manifest file differs from make manifest:\n%s\nvs\n%s", b, manifest)
	}
	l := layout(t, img)
	md, _, err := fwimage.ParseMetadataChunk(mustChunk(t, img, l.Chunks[0]))
	if err != nil || md.Version.Version != "25.12.5" || md.Version.Revision != "r33051-f5dae5ece4" || !md.Supports("glinet,gl-ar150") {
		t.Errorf("metadata %+v %v", md, err)
	}
	if len(l.Chunks) != 2 || l.Chunks[1].Type != fwimage.TypeSignature {
		t.Errorf("chunks %+v", l.Chunks)
	}
	payload := img[:l.PayloadEnd]
	off := bytes.Index(payload, []byte("hsqs"))
	if off <= 0 {
		t.Fatal("no squashfs")
	}
	d := t.TempDir()
	os.WriteFile(filepath.Join(d, "root.squashfs"), payload[off:], 0o644)
	root := filepath.Join(d, "root")
	if b, err := exec.Command("unsquashfs", "-no-xattrs", "-d", root, filepath.Join(d, "root.squashfs")).CombinedOutput(); err != nil {
		t.Fatalf("unsquashfs: %v\n%s", err, b)
	}
	inst, err := os.ReadFile(filepath.Join(root, "lib/apk/db/installed"))
	if err != nil {
		t.Fatalf("rootfs lacks /lib/apk/db/installed: %v", err)
	}
	// Every installed package, and only those, in the database.
	var dbm strings.Builder
	var names []string
	vers := map[string]string{}
	var name string
	sc := bufio.NewScanner(bytes.NewReader(inst))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "P:"); ok {
			name = v
		} else if v, ok := strings.CutPrefix(sc.Text(), "V:"); ok {
			names = append(names, name)
			vers[name] = v
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&dbm, "%s %s\n", n, vers[n])
	}
	if dbm.String() != manifest {
		t.Errorf("/lib/apk/db/installed lists:\n%s\nmake manifest:\n%s", dbm.String(), manifest)
	}
	if !regexp.MustCompile(`(?m)^C:Q1[A-Za-z0-9+/]{27}=\nP:tor\nV:0\.4\.8\.17-r1\nA:mips_24kc\nS:[0-9]+\nI:[0-9]+\nT:SIMULATED[^\n]*\nU:\nL:SIMULATED\n`).Match(inst) ||
		!bytes.Contains(inst, []byte("\nF:usr/sbin\nR:tor\na:0:0:755\nZ:Q1")) {
		t.Errorf("installed record of tor:\n%s", inst)
	}
	for _, gone := range []string{"usr/lib/opkg/status", "bin/opkg", "etc/opkg", "etc/apk/keys/local-public-key.pem", "www/index.html"} {
		if _, err := os.Lstat(filepath.Join(root, gone)); err == nil {
			t.Errorf("rootfs has %s", gone)
		}
	}
	for _, f := range []string{"lib/apk/db/scripts.tar.gz", "lib/apk/db/triggers", "etc/apk/arch", "etc/apk/keys/" + FeedAPKKeyName,
		"etc/apk/repositories.d/distfeeds.list", "usr/bin/apk", "usr/sbin/tor", "etc/rc.d/S50tor"} {
		if _, err := os.Lstat(filepath.Join(root, f)); err != nil {
			t.Errorf("rootfs lacks %s", f)
		}
	}
	world, _ := os.ReadFile(filepath.Join(root, "etc/apk/world"))
	if !bytes.Contains(world, []byte("\ntor\ntor-geoip\n")) || !bytes.HasPrefix(world, []byte("apk-mbedtls\n")) || bytes.Contains(world, []byte("luci")) {
		t.Errorf("world:\n%s", world)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/apk/arch")); string(b) != "mips_24kc\n" {
		t.Errorf("arch %q", b)
	}
	return img
}

func TestAPKSimIBPodman(t *testing.T) {
	requireTools(t, checkTools...)
	e := newAPKEnv(t, "podman")
	stdout, stderr, err := e.run(t, nil, "", "info")
	if err != nil || !strings.Contains(stdout, `Current Revision: "r33051-f5dae5ece4"`) || !strings.Contains(stdout, "apk-mbedtls") {
		t.Fatalf("make info: %v\n%s\n%s", err, stdout, stderr)
	}
	manifest, stderr, err := e.run(t, nil, "", "manifest", "PROFILE=glinet_gl-ar150", apkPackages)
	if err != nil {
		t.Fatalf("make manifest: %v\n%s", err, stderr)
	}
	checkAPKManifest(t, manifest)
	out := dir(t, "apkout")
	if _, stderr, err = e.run(t, nil, out, "image", "PROFILE=glinet_gl-ar150", apkPackages); err != nil {
		t.Fatalf("make image: %v\n%s", err, stderr)
	}
	checkAPKImage(t, out, manifest)
}

func TestAPKSimIBHost(t *testing.T) {
	requireTools(t, checkTools...)
	e := newAPKEnv(t, "host")
	manifest, stderr, err := e.run(t, nil, "", "manifest", apkPackages)
	if err != nil {
		t.Fatalf("make manifest: %v\n%s", err, stderr)
	}
	checkAPKManifest(t, manifest)
	sde := []string{fmt.Sprintf("SOURCE_DATE_EPOCH=%d", apkAR150.SourceDateEpoch)}
	out1, out2 := dir(t, "apkhost1"), dir(t, "apkhost2")
	if _, stderr, err := e.run(t, sde, out1, "image", apkPackages); err != nil {
		t.Fatalf("make image (host): %v\n%s", err, stderr)
	}
	img1 := checkAPKImage(t, out1, manifest)
	time.Sleep(1100 * time.Millisecond)
	if _, stderr, err := e.run(t, sde, out2, "image", apkPackages); err != nil {
		t.Fatalf("second make image (host): %v\n%s", err, stderr)
	}
	img2 := checkAPKImage(t, out2, manifest)
	// With SOURCE_DATE_EPOCH, only the fresh build key's signature differs.
	if !bytes.Equal(unsigned(t, img1), unsigned(t, img2)) {
		t.Error("with SOURCE_DATE_EPOCH, two apk builds differ before the signature")
	}
	if bytes.Equal(img1, img2) {
		t.Error("two apk builds have the same signature: the fresh local key is not simulated")
	}

	var ee *container.ExitError
	// An index signed by a key not in /builder/keys is refused.
	good, _ := os.ReadFile(filepath.Join(e.feed, "packages.adb"))
	orig, _ := os.ReadFile(e.extraKey)
	other, _ := apk.GenerateKey(rand.Reader)
	otherPEM, _ := other.Public().MarshalPEM()
	os.WriteFile(e.extraKey, otherPEM, 0o644)
	_, _, err = e.run(t, nil, "", "manifest", apkPackages)
	if !errors.As(err, &ee) || !strings.Contains(ee.Stderr, "UNTRUSTED signature") {
		t.Errorf("untrusted index: %v", err)
	}
	os.WriteFile(e.extraKey, orig, 0o644)
	// An unsigned index is refused too.
	idx, _ := apk.ReadIndex(good, nil)
	if idx == nil {
		var err error
		if idx, err = apk.ReadIndex(good, apk.NewKeyring(mustPEMKey(t, orig))); err != nil {
			t.Fatal(err)
		}
	}
	unsignedIdx, err := apk.WriteIndex(idx, nil)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(e.feed, "packages.adb"), unsignedIdx, 0o644)
	_, _, err = e.run(t, nil, "", "manifest", apkPackages)
	if !errors.As(err, &ee) || !strings.Contains(ee.Stderr, "UNTRUSTED signature") {
		t.Errorf("unsigned index: %v", err)
	}
	os.WriteFile(filepath.Join(e.feed, "packages.adb"), good, 0o644)
	// A package that is not the one the index names is refused.
	tor, _ := filepath.Glob(filepath.Join(e.feed, "tor-0*.apk"))
	geo, _ := filepath.Glob(filepath.Join(e.feed, "tor-geoip-*.apk"))
	if len(tor) != 1 || len(geo) != 1 {
		t.Fatalf("tor packages: %v %v", tor, geo)
	}
	os.Rename(geo[0], tor[0]+".orig-geoip")
	torb, _ := os.ReadFile(tor[0])
	os.WriteFile(geo[0], torb, 0o644) // tor's bytes under tor-geoip's name
	_, _, err = e.run(t, nil, dir(t, "apkhost3"), "image", apkPackages)
	if !errors.As(err, &ee) || !strings.Contains(ee.Stderr, "tor-geoip") {
		t.Errorf("substituted package: %v", err)
	}
	// The default https feeds need the network.
	os.WriteFile(e.repos, []byte("https://downloads.openwrt.org/releases/25.12.5/packages/mips_24kc/base/packages.adb\n"), 0o644)
	_, _, err = e.run(t, nil, "", "manifest", apkPackages)
	if !errors.As(err, &ee) || !strings.Contains(ee.Stderr, "no network") || !strings.Contains(ee.Stderr, "unable to select packages") {
		t.Errorf("https feed: %v", err)
	}
}

func mustPEMKey(t *testing.T, b []byte) *apk.PublicKey {
	t.Helper()
	k, err := apk.ParsePublicKeyPEM(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
