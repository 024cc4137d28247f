package build_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/torwrt/torwrt/internal/brand"
	"github.com/torwrt/torwrt/internal/build"
	"github.com/torwrt/torwrt/internal/build/simulated"
	"github.com/torwrt/torwrt/internal/container"
	"github.com/torwrt/torwrt/internal/imagebuilder"
	"github.com/torwrt/torwrt/internal/imagediff"
	"github.com/torwrt/torwrt/internal/imagesig"
	"github.com/torwrt/torwrt/internal/lock"
	"github.com/torwrt/torwrt/internal/profile"
	"github.com/torwrt/torwrt/internal/signer"
	"github.com/torwrt/torwrt/internal/squashfs"
	"github.com/torwrt/torwrt/internal/testfixture"
	"github.com/torwrt/torwrt/internal/usign"
)

// The end-to-end tests drive the whole pipeline against the simulated
// ImageBuilder in podman (runc), served from an in-process registry. They
// need root, podman, runc, mksquashfs, qemu-user-static and signify-openbsd;
// CI installs them (scripts/install-deps.sh) and a missing one fails here.

const root = "../.."

type fixture struct {
	profiles []*profile.Profile
	sim      *simulated.Simulation
	brand    *brand.Brand
	key      *usign.SecretKey
	keyFile  string
}

var shared *fixture

func setup(t *testing.T) *fixture {
	t.Helper()
	if shared != nil {
		return shared
	}
	testfixture.RequireBuildTools(t)
	var ps []*profile.Profile
	// The 25.12 (apk) defaults for both devices, and one 24.10 (opkg)
	// variant: both package managers, end to end.
	for _, id := range []string{"gl-ar150", "gl-mt300a", "gl-ar150-24.10"} {
		p, err := profile.Load(filepath.Join(root, "profiles"), id)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	b, err := brand.Load(filepath.Join(root, "brands"), "torwrt")
	if err != nil {
		t.Fatal(err)
	}
	k, err := usign.GenerateKey(rand.Reader, "e2e test key")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "torwrt-e2e-keys-")
	if err != nil {
		t.Fatal(err)
	}
	if err := usign.WriteKeyPair(filepath.Join(dir, "release"), k); err != nil {
		t.Fatal(err)
	}
	cache, err := os.MkdirTemp("", "torwrt-e2e-simcache-")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sim, err := simulated.Start(ctx, simulated.Options{Root: root, Profiles: ps, CacheDir: cache, Engine: "podman", Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	shared = &fixture{profiles: ps, sim: sim, brand: b, key: k, keyFile: filepath.Join(dir, "release")}
	return shared
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.sim.Stop()
	}
	os.Exit(code)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (f *fixture) options(t *testing.T, p *profile.Profile, out, cache string) build.Options {
	sg, err := signer.FromUsign(f.key)
	if err != nil {
		t.Fatal(err)
	}
	return build.Options{
		Inputs: build.Inputs{
			Root: root, Profile: p, Lock: f.sim.Locks[p.ID], Brand: f.brand, ReleaseKeys: []*usign.PublicKey{f.key.Public()},
			Simulated: true, Version: "0.1.0",
		},
		Env: build.Env{
			Signer: sg, Engine: "podman", PackageSources: f.sim.PackageDirs, RegistryMirrors: f.sim.Mirrors, InsecureRegistry: true,
			OutDir: out, CacheDir: cache, WorkDir: filepath.Join(t.TempDir(), "work"), Progress: testWriter{t},
		},
	}
}

func TestBuildBothProfilesReproducibly(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	for _, p := range f.profiles {
		t.Run(p.ID, func(t *testing.T) {
			// Two clean builds: separate caches, work dirs, TMPDIR, umask,
			// and a different wall clock (the simulated IB stamps it).
			var images [2]string
			var reps [2]*build.Result
			for i := range 2 {
				out := t.TempDir()
				t.Setenv("TMPDIR", t.TempDir())
				old := syscall.Umask([]int{0o022, 0o077}[i])
				o := f.options(t, p, out, t.TempDir())
				rep, err := build.Run(ctx, o)
				syscall.Umask(old)
				if err != nil {
					t.Fatalf("build %d: %v", i+1, err)
				}
				reps[i] = rep
				images[i] = filepath.Join(out, p.ID, rep.Image)
				if i == 0 {
					time.Sleep(1100 * time.Millisecond)
				}
			}
			a, _ := os.ReadFile(images[0])
			b, _ := os.ReadFile(images[1])
			if !bytes.Equal(a, b) {
				rep, err := imagediff.Compare(ctx, images[0], images[1])
				var buf bytes.Buffer
				if err == nil {
					rep.Text(&buf)
				}
				t.Fatalf("two builds differ:\n%s%v", buf.String(), err)
			}
			sa, _ := os.ReadFile(images[0] + ".sig")
			sb, _ := os.ReadFile(images[1] + ".sig")
			if !bytes.Equal(sa, sb) {
				t.Fatal("detached signatures differ")
			}
			// Not only the image: every file the build publishes (SBOM,
			// provenance, lock, report, sums, signatures) is byte for byte
			// the same across caches, work dirs, TMPDIR, umask and out dir.
			if diff := distDiff(t, filepath.Dir(images[0]), filepath.Dir(images[1])); len(diff) > 0 {
				t.Errorf("dist/%s files differ between the two builds: %s", p.ID, strings.Join(diff, "; "))
			}
			// The simulated ImageBuilder stamps the clock, like the real one;
			// the tree is normalized inside it, before its own mksquashfs4,
			// so the host never re-packs (it would refuse to).
			if reps[0].Normalize.Repacked {
				t.Error("the root filesystem was re-packed on the host; it must come normalized out of the ImageBuilder")
			}
			if !reps[0].StrippedIBSig {
				t.Error("the simulated ImageBuilder signs with a fresh key; expected its signature to be stripped")
			}
			checkImage(t, f, p, images[0])
		})
	}
}

// distDiff compares two dist/<profile> directories file by file.
func distDiff(t *testing.T, a, b string) []string {
	t.Helper()
	list := func(dir string) map[string][]byte {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		files := map[string][]byte{}
		for _, e := range entries {
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			files[e.Name()] = data
		}
		return files
	}
	fa, fb := list(a), list(b)
	var diff []string
	for name, da := range fa {
		db, ok := fb[name]
		switch {
		case !ok:
			diff = append(diff, name+" only in the first")
		case !bytes.Equal(da, db):
			diff = append(diff, name+" differs")
		}
	}
	for name := range fb {
		if _, ok := fa[name]; !ok {
			diff = append(diff, name+" only in the second")
		}
	}
	sort.Strings(diff)
	if len(fa) < 8 {
		diff = append(diff, fmt.Sprintf("only %d files published", len(fa)))
	}
	return diff
}

func checkImage(t *testing.T, f *fixture, p *profile.Profile, img string) {
	t.Helper()
	kr, _ := usign.NewKeyring(f.key.Public())
	res, err := imagesig.VerifyFile(img, kr, imagesig.Options{Board: p.Board})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if res.Key != f.key.Fingerprint.String() {
		t.Fatalf("signed by %s", res.Key)
	}
	if out, err := exec.Command("signify-openbsd", "-V", "-p", f.keyFile+".pub", "-x", img+".sig", "-m", img).CombinedOutput(); err != nil {
		t.Fatalf("signify-openbsd -V: %v\n%s", err, out)
	}
	if got := strings.Join(res.Metadata.SupportedDevices, " "); got != strings.Join(p.SupportedDevices, " ") {
		t.Fatalf("metadata boards %q", got)
	}
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	fsys, _, err := squashfs.OpenInImage(bytes.NewReader(data), res.Layout.PayloadEnd)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"etc/tor/torrc", "etc/torwrt/firewall.nft", "etc/banner", "usr/sbin/torwrt-verify"} {
		if _, err := fsys.Stat(want); err != nil {
			t.Errorf("rootfs lacks /%s: %v", want, err)
		}
	}
	banner, err := readAll(fsys, "etc/banner")
	if err != nil || !strings.Contains(banner, "SIMULATED") {
		t.Errorf("banner does not say SIMULATED: %q %v", banner, err)
	}
	for _, dir := range []string{"etc/opkg/keys", "etc/torwrt/keys"} {
		entries, err := fsys.ReadDir(dir)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if len(entries) != 1 || entries[0].Name() != f.key.Fingerprint.String() {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("/%s holds %v; want only the release key %s", dir, names, f.key.Fingerprint)
		}
	}
	for _, pm := range []string{"bin/opkg", "usr/bin/apk", "sbin/apk"} {
		if _, err := fsys.Stat(pm); err == nil {
			t.Errorf("/%s is in the image; the profile removes the package manager", pm)
		}
	}
	// The image's own package database is the one its ImageBuilder's
	// package manager writes, and apk's keys and feeds are gone.
	pmDB, otherDB := "usr/lib/opkg/status", "lib/apk/db/installed"
	if f.sim.Locks[p.ID].Manager() == profile.APK {
		pmDB, otherDB = otherDB, pmDB
		for _, dir := range []string{"etc/apk/keys", "etc/apk/repositories.d"} {
			if entries, err := fsys.ReadDir(dir); err == nil && len(entries) > 0 {
				t.Errorf("/%s holds %d files; no package manager runs on the router", dir, len(entries))
			}
		}
	}
	if _, err := fsys.Stat(pmDB); err != nil {
		t.Errorf("the image has no /%s: %v", pmDB, err)
	}
	if _, err := fsys.Stat(otherDB); err == nil {
		t.Errorf("the image has /%s too", otherDB)
	}
	daemon, err := readAll(fsys, "usr/sbin/torwrt-verify")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "torwrt-verify")
	if err := os.WriteFile(bin, []byte(daemon), 0o755); err != nil {
		t.Fatal(err)
	}
	qemu := map[string]string{"mips": "qemu-mips-static", "mipsle": "qemu-mipsel-static"}[p.Daemon.GOARCH]
	out, err := exec.Command(qemu, bin, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "0.1.0") {
		t.Fatalf("%s %s --version: %v %q", qemu, bin, err, out)
	}
	// The wrong-endian emulator must refuse it: the binary is really MIPS
	// of the board's byte order.
	other := map[string]string{"mips": "qemu-mipsel-static", "mipsle": "qemu-mips-static"}[p.Daemon.GOARCH]
	if err := exec.Command(other, bin, "--version").Run(); err == nil {
		t.Fatalf("%s ran a %s binary", other, p.Daemon.GOARCH)
	}
}

func readAll(fsys *squashfs.FS, name string) (string, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(f)
	return b.String(), err
}

// A rebuild against the same cache replays compile and run (make image is
// not run again, so the feed is not fetched) and publishes the same bytes; with NoStepCache every
// step runs again, which is how the reproducibility checks build.
func TestStepCacheReplayAndNoStepCache(t *testing.T) {
	f := setup(t)
	p := f.profiles[0]
	cache := t.TempDir()
	// Cold, replayed, forced; then one changed overlay file (the radios'
	// country): the run restores the installed package tree the first
	// build saved, and publishes what a build that runs make image in
	// full does.
	var outs []string
	for i, tc := range []struct {
		country    string
		noCache    bool
		wantCached string
	}{{"", false, ""}, {"", false, "compile fetch run"}, {"", true, ""}, {"SE", false, "compile run/installed"}, {"SE", true, ""}} {
		o := f.options(t, p, t.TempDir(), cache)
		o.Country, o.NoStepCache = tc.country, tc.noCache
		res, err := build.Run(t.Context(), o)
		if err != nil {
			t.Fatalf("build %d: %v", i+1, err)
		}
		if got := strings.Join(res.Cached, " "); got != tc.wantCached {
			t.Errorf("build %d (country %q, NoStepCache %v): cached %q, want %q", i+1, tc.country, tc.noCache, got, tc.wantCached)
		}
		outs = append(outs, filepath.Join(o.OutDir, p.ID))
	}
	for _, pair := range [][2]int{{0, 1}, {0, 2}, {3, 4}} {
		if diff := distDiff(t, outs[pair[0]], outs[pair[1]]); len(diff) > 0 {
			t.Errorf("build %d published other files than build %d: %s", pair[1]+1, pair[0]+1, strings.Join(diff, "; "))
		}
	}
	if len(distDiff(t, outs[0], outs[3])) == 0 {
		t.Error("another Wi-Fi country published the same files")
	}
}

func TestOverlayByteChangesImage(t *testing.T) {
	f := setup(t)
	p := f.profiles[0]
	o := f.options(t, p, t.TempDir(), t.TempDir())
	rep1, err := build.Run(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	o2 := f.options(t, p, t.TempDir(), t.TempDir())
	b2 := *f.brand
	b2.BannerText += "x"
	o2.Brand = &b2
	rep2, err := build.Run(t.Context(), o2)
	if err != nil {
		t.Fatal(err)
	}
	if rep1.ImageSHA256 == rep2.ImageSHA256 {
		t.Fatal("one more byte in the overlay gave the same image")
	}
	diff, err := imagediff.Compare(t.Context(), filepath.Join(o.OutDir, p.ID, rep1.Image), filepath.Join(o2.OutDir, p.ID, rep2.Image))
	if err != nil {
		t.Fatal(err)
	}
	if len(diff.Files) != 1 || diff.Files[0].Path != "/etc/banner" {
		t.Fatalf("want only /etc/banner to differ, got %+v", diff.Files)
	}
}

func TestBuildRefusals(t *testing.T) {
	f := setup(t)
	p := f.profiles[0]
	cases := []struct {
		name string
		mut  func(o *build.Options)
		want string
	}{
		{"tag instead of digest", func(o *build.Options) {
			l := *o.Lock
			l.Image.Ref = "127.0.0.1:1/openwrt/imagebuilder:ath79-generic-v24.10.3"
			o.Lock = &l
		}, "not pinned by digest"},
		{"digest mismatch", func(o *build.Options) {
			l := *o.Lock
			l.Image.Ref = l.Image.Ref[:len(l.Image.Ref)-64] + strings.Repeat("0", 64)
			o.Lock = &l
		}, ""},
		{"package missing from lock", func(o *build.Options) {
			l := *o.Lock
			l.Packages = append([]profile.LockedPackage{}, l.Packages...)
			for i, pk := range l.Packages {
				if pk.Name == "tor" {
					l.Packages = append(l.Packages[:i], l.Packages[i+1:]...)
					break
				}
			}
			o.Lock = &l
		}, "tor"},
		{"package hash differs", func(o *build.Options) {
			l := *o.Lock
			l.Packages = append([]profile.LockedPackage{}, l.Packages...)
			l.Packages[0].SHA256 = strings.Repeat("1", 64)
			o.Lock = &l
		}, "sha256"},
		{"signer not a release key", func(o *build.Options) {
			other, _ := usign.GenerateKey(rand.Reader, "")
			o.ReleaseKeys = []*usign.PublicKey{other.Public()}
		}, "not among the release keys"},
		{"no container engine", func(o *build.Options) { o.Engine = "nosuchengine" }, "engine"},
		{"brand threshold above the keys shipped", func(o *build.Options) {
			b := *o.Brand
			b.Threshold = 2
			o.Brand = &b
		}, "update threshold 2 needs at least 2 distinct release keys, but the image would ship 1"},
		// A profile (and a lock made from it) without kmod-nft-fib: the
		// image would boot with a firewall its kernel cannot load.
		{"firewall kernel module not installed", func(o *build.Options) {
			pr := *o.Profile
			pr.Packages.Add = slices.DeleteFunc(slices.Clone(pr.Packages.Add), func(n string) bool { return n == "kmod-nft-fib" })
			o.Profile = &pr
			l := *o.Lock
			l.Packages = slices.DeleteFunc(slices.Clone(l.Packages), func(pk profile.LockedPackage) bool { return pk.Name == "kmod-nft-fib" })
			o.Lock = &l
		}, "firewall kernel modules: /etc/torwrt/firewall.nft:"},
		{"one release key under two fingerprints", func(o *build.Options) {
			twin := *o.ReleaseKeys[0]
			twin.Fingerprint = usign.Fingerprint{0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee}
			o.ReleaseKeys = append(append([]*usign.PublicKey{}, o.ReleaseKeys...), &twin)
		}, "the same Ed25519 public key under two fingerprints"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := t.TempDir()
			o := f.options(t, p, out, t.TempDir())
			c.mut(&o)
			_, err := build.Run(t.Context(), o)
			if err == nil {
				t.Fatal("build succeeded")
			}
			if c.name == "firewall kernel module not installed" {
				for _, w := range []string{"fib needs kmod-nft-fib", "add kmod-nft-fib to the profile's packages.add", "run: imgbuild lock --profile " + p.ID} {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error lacks %q: %v", w, err)
					}
				}
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want %q in error, got %v", c.want, err)
			}
			assertNoOutput(t, out)
		})
	}
}

func TestImageBuilderFailureIsReported(t *testing.T) {
	f := setup(t)
	p := *f.profiles[0]
	p.Packages.Add = append(append([]string{}, p.Packages.Add...), "no-such-package")
	out := t.TempDir()
	o := f.options(t, &p, out, t.TempDir())
	_, err := build.Run(t.Context(), o)
	if !errors.Is(err, imagebuilder.ErrMake) {
		t.Fatalf("want imagebuilder.ErrMake, got %v", err)
	}
	// The package manager's own words: opkg's, or apk's solver.
	pmSays := "Unknown package 'no-such-package'"
	if f.sim.Locks[p.ID].Manager() == profile.APK {
		pmSays = "no-such-package (no such package)"
	}
	for _, want := range []string{`package "no-such-package" is in neither`, "last lines of its output", pmSays, "full log:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	assertNoOutput(t, out)
}

func TestImageOverSizeLimit(t *testing.T) {
	f := setup(t)
	p := *f.profiles[0]
	p.ImageSizeLimit = "1000k"
	out := t.TempDir()
	o := f.options(t, &p, out, t.TempDir())
	_, err := build.Run(t.Context(), o)
	if !errors.Is(err, build.ErrTooBig) {
		t.Fatalf("want ErrTooBig, got %v", err)
	}
	assertNoOutput(t, out)
}

func assertNoOutput(t *testing.T, out string) {
	t.Helper()
	entries, _ := os.ReadDir(out)
	for _, e := range entries {
		t.Errorf("failed build left %s in dist", e.Name())
	}
}

// The real lock reads the feeds from the pinned ImageBuilder's own
// repositories.conf (opkg) or repositories (apk); the simulated one lists
// the same https feeds a real ImageBuilder of its release does.
func TestImageFeedsFromPinnedImageBuilder(t *testing.T) {
	f := setup(t)
	for _, p := range f.profiles {
		c := &container.Cache{Dir: t.TempDir(), Insecure: true, Mirrors: f.sim.Mirrors}
		img, err := c.Pull(t.Context(), f.sim.Locks[p.ID].Image.Ref)
		if err != nil {
			t.Fatal(err)
		}
		imageFeeds := lock.ImageFeeds
		if f.sim.Locks[p.ID].Manager() == profile.APK {
			imageFeeds = lock.ImageAPKFeeds
		}
		feeds, err := imageFeeds(img)
		if err != nil {
			t.Fatal(err)
		}
		if len(feeds) < 2 {
			t.Fatalf("%s: feeds %+v", p.ID, feeds)
		}
		for _, fd := range feeds {
			if !strings.HasPrefix(fd.URL, "https://downloads.openwrt.org/releases/"+p.OpenWrt.Version+"/") {
				t.Errorf("%s: feed %+v", p.ID, fd)
			}
		}
		t.Logf("%s: %d feeds, e.g. %s", p.ID, len(feeds), feeds[0].URL)
	}
}

// TestBuildWithBuildKey signs through a build key the release key
// certifies: the router accepts the chain inside its window only, and the
// same inputs still give the same bytes.
func TestBuildWithBuildKey(t *testing.T) {
	f := setup(t)
	p := f.profiles[0]
	from := time.Unix(1767225600, 0) // 2026-01-01T00:00:00Z
	var images []string
	for i := range 2 {
		out := t.TempDir()
		o := f.options(t, p, out, t.TempDir())
		o.BuildKey = &imagesig.BuildKeyOptions{NotBefore: from, Lifetime: 48 * time.Hour}
		rep, err := build.Run(t.Context(), o)
		if err != nil {
			t.Fatalf("build %d: %v", i, err)
		}
		images = append(images, filepath.Join(rep.DistDir, rep.Image))
	}
	a, _ := os.ReadFile(images[0])
	b, _ := os.ReadFile(images[1])
	if !bytes.Equal(a, b) {
		t.Fatal("two build-key builds of the same inputs differ")
	}
	kr, _ := usign.NewKeyring(f.key.Public())
	res, err := imagesig.VerifyFile(images[0], kr, imagesig.Options{Board: p.Board, Now: from.Add(time.Hour)})
	if err != nil {
		t.Fatalf("verify inside the window: %v", err)
	}
	if res.Issuer != f.key.Fingerprint.String() {
		t.Errorf("chain issued by %q, want the release key %s", res.Issuer, f.key.Fingerprint)
	}
	if _, err := imagesig.VerifyFile(images[0], kr, imagesig.Options{Board: p.Board, Now: from.Add(49 * time.Hour)}); err == nil {
		t.Error("an expired build key's image was accepted")
	}
	if out, err := exec.Command("signify-openbsd", "-V", "-p", f.keyFile+".pub", "-x", images[0]+".sig", "-m", images[0]).CombinedOutput(); err != nil {
		t.Fatalf("the detached signature is still the release key's: %v\n%s", err, out)
	}
}
