package imagebuilder

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/torwrt/torwrt/internal/container"
	"github.com/torwrt/torwrt/internal/container/containertest"
	"github.com/torwrt/torwrt/internal/profile"
)

// Top-level Makefiles of three ImageBuilder generations, cut to what
// ParseCapabilities reads, and the .config line that selects apk.
const (
	ledeMakefile = "_call_info: FORCE\n\techo 'Current Target: \"$(BOARD)\"'\n\n_call_image:\n\t$(MAKE) package_install\n\npackage_install: FORCE\n\nimage:\nifneq ($(PROFILE),)\n"
	owrtMakefile = "manifest: FORCE\n\t$(MAKE) -s _check_profile\n\n_call_image:\n\t$(MAKE) package_install\n\npackage_install: FORCE\n\nimage:\n\t$(if $(DISABLED_SERVICES),DISABLED_SERVICES=\"$(DISABLED_SERVICES)\")\n"
	// A Makefile that installs within its image recipe: no sub-make to
	// save the installed tree after.
	monolithicMakefile = "manifest: FORCE\n\nimage:\n\topkg install $(PACKAGES)\n\t$(if $(DISABLED_SERVICES),DISABLED_SERVICES=\"$(DISABLED_SERVICES)\")\n"
	apkConfig          = "CONFIG_TARGET_ath79=y\nCONFIG_USE_APK=y\n"
	opkgConfig         = "CONFIG_TARGET_ath79=y\n# CONFIG_USE_APK is not set\n"
)

// generation is one kind of ImageBuilder image the driver must handle.
type generation struct {
	name, makefile, config string // config "": the image has no .config
	manager                string
}

var (
	lede17 = generation{"lede-17.01", ledeMakefile, "", "opkg"}
	owrt24 = generation{"openwrt-24.10", owrtMakefile, opkgConfig, "opkg"}
	owrt25 = generation{"openwrt-25.12", owrtMakefile, apkConfig, "apk"}
	mono   = generation{"monolithic", monolithicMakefile, opkgConfig, "opkg"}
)

var (
	ibImagesMu sync.Mutex
	ibImages   = map[string]*container.Image{}
	ibCacheDir string
)

// ibImage is a cached image holding only /builder/Makefile and, when the
// generation has one, /builder/.config: enough for Capabilities, and the
// fake runner never runs anything in it.
func ibImage(t testing.TB, g generation) *container.Image {
	t.Helper()
	ibImagesMu.Lock()
	defer ibImagesMu.Unlock()
	if img, ok := ibImages[g.name]; ok {
		return img
	}
	epoch := time.Unix(1700000000, 0).UTC()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "builder/", Mode: 0o755, ModTime: epoch})
	file := func(name, data string) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch})
		io.WriteString(tw, data)
	}
	file("builder/Makefile", g.makefile)
	if g.config != "" {
		file("builder/.config", g.config)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.WorkingDir = "/builder"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.CreatedAt(img, v1.Time{Time: epoch}); err != nil {
		t.Fatal(err)
	}
	if ibCacheDir == "" {
		if ibCacheDir, err = os.MkdirTemp("", "torwrt-imagebuilder-test-"); err != nil {
			t.Fatal(err)
		}
	}
	cached, err := (&container.Cache{Dir: ibCacheDir}).Put(t.Context(), "localhost/test/"+g.name, img)
	if err != nil {
		t.Fatal(err)
	}
	ibImages[g.name] = cached
	return cached
}

func TestMain(m *testing.M) {
	code := m.Run()
	if ibCacheDir != "" {
		os.RemoveAll(ibCacheDir)
	}
	os.Exit(code)
}

// fixture is a driver on a fake runner with the host directories a build
// gives it: work/{feed,files,bin} and the repositories file beside feed.
type fixture struct {
	d                      *Driver
	fake                   *containertest.Fake
	work, feed, files, bin string
}

func newFixture(t testing.TB, g generation, hostPaths bool) *fixture {
	t.Helper()
	fx := &fixture{fake: &containertest.Fake{HostPaths: hostPaths}, work: t.TempDir()}
	fx.d = &Driver{Runner: fx.fake, IBImage: ibImage(t, g)}
	fx.feed, fx.files, fx.bin = filepath.Join(fx.work, "feed"), filepath.Join(fx.work, "files"), filepath.Join(fx.work, "bin")
	for _, dir := range []string{fx.feed, fx.files, fx.bin} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if g.manager == "apk" {
		if err := os.WriteFile(filepath.Join(fx.feed, FeedKeyName), []byte("-----BEGIN PUBLIC KEY-----\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := fx.d.WriteRepositories(fx.feed, true); err != nil {
		t.Fatal(err)
	}
	return fx
}

func (fx *fixture) request() Request {
	return Request{
		Profile:          "glinet_gl-ar150",
		Packages:         []string{"tor", "luci-ssl", "-ppp", "-ppp-mod-pppoe", "-wpad*", "kmod-nft-nat"},
		DisabledServices: []string{"dnsmasq", "odhcpd"},
		ExtraImageName:   "torwrt",
		SourceDateEpoch:  1758316778,
		Files:            fx.files,
		Feed:             fx.feed,
		BinDir:           fx.bin,
	}
}

// path is where the fake's command sees host directory dir mounted at
// target.
func (fx *fixture) path(dir, target string) string {
	if fx.fake.HostPaths {
		return dir
	}
	return target
}

// wantReposMounts is the feed list mounted over the ImageBuilder's own.
func (fx *fixture) wantReposMounts(g generation) []container.Mount {
	if g.manager == "apk" {
		return []container.Mount{
			{Source: filepath.Join(fx.work, "repositories"), Target: "/builder/repositories", ReadOnly: true},
			{Source: filepath.Join(fx.feed, FeedKeyName), Target: "/builder/keys/" + FeedKeyName, ReadOnly: true},
		}
	}
	return []container.Mount{{Source: filepath.Join(fx.work, "repositories.conf"), Target: "/builder/repositories.conf", ReadOnly: true}}
}

func (fx *fixture) onlyRun(t *testing.T) containertest.Run {
	t.Helper()
	runs := fx.fake.Runs()
	if len(runs) != 1 {
		t.Fatalf("%d runs, want 1: %+v", len(runs), runs)
	}
	return runs[0]
}

var runNameRE = regexp.MustCompile(`^torwrt-(info|manifest|image)-[0-9a-f]{16}$`)

func checkName(t *testing.T, r containertest.Run, step string) {
	t.Helper()
	if m := runNameRE.FindStringSubmatch(r.Name); m == nil || m[1] != step {
		t.Errorf("run name %q, want torwrt-%s-<16 hex>", r.Name, step)
	}
}

func diff(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got  %q\n want %q", what, got, want)
	}
}

func diffMounts(t *testing.T, got, want []container.Mount) {
	t.Helper()
	if !slices.Equal(got, want) {
		var g, w strings.Builder
		for _, m := range got {
			fmt.Fprintf(&g, "\n  %+v", m)
		}
		for _, m := range want {
			fmt.Fprintf(&w, "\n  %+v", m)
		}
		t.Errorf("mounts:\n got%s\n want%s", g.String(), w.String())
	}
}

func TestImageCommandLine(t *testing.T) {
	for _, tc := range []struct {
		g         generation
		hostPaths bool
	}{
		{owrt24, false},
		{owrt25, false},
		{owrt24, true},
		{owrt25, true},
	} {
		t.Run(fmt.Sprintf("%s/hostpaths=%v", tc.g.name, tc.hostPaths), func(t *testing.T) {
			fx := newFixture(t, tc.g, tc.hostPaths)
			wantRepos, err := os.ReadFile(fx.wantReposMounts(tc.g)[0].Source)
			if err != nil {
				t.Fatal(err)
			}
			var seenRepos []byte
			fx.fake.Script = func(r containertest.Run) containertest.Outcome {
				// The file the package manager reads, as mounted.
				m := r.Mounts[3]
				seenRepos, _ = os.ReadFile(m.Source)
				return containertest.Outcome{Stdout: "Building images for ath79 - GL.iNet GL-AR150\n"}
			}
			if err := fx.d.Image(t.Context(), fx.request()); err != nil {
				t.Fatal(err)
			}
			r := fx.onlyRun(t)
			checkName(t, r, "image")
			if r.Image != fx.d.IBImage || r.WorkDir != "" {
				t.Errorf("image %v, workdir %q", r.Image, r.WorkDir)
			}
			hooks := filepath.Join(fx.work, "hooks")
			diff(t, "argv", r.Argv, []string{
				"/bin/sh", "-c", entryScript, "torwrt-build", fx.path(hooks, "/torwrt/hooks") + "/mksquashfs",
				"make", "image",
				"PROFILE=glinet_gl-ar150",
				"PACKAGES=tor luci-ssl -ppp -ppp-mod-pppoe -wpad* kmod-nft-nat",
				"FILES=" + fx.path(fx.files, "/torwrt/files"),
				"BIN_DIR=" + fx.path(fx.bin, "/torwrt/bin"),
				"EXTRA_IMAGE_NAME=torwrt",
				"DISABLED_SERVICES=dnsmasq odhcpd",
			})
			diff(t, "env", r.Env, []string{"SOURCE_DATE_EPOCH=1758316778", "TORWRT_FILES=" + fx.path(fx.files, "/torwrt/files")})
			want := []container.Mount{
				{Source: fx.files, Target: "/torwrt/files", ReadOnly: true},
				{Source: fx.feed, Target: "/torwrt/feed", ReadOnly: true},
				{Source: fx.bin, Target: "/torwrt/bin"},
			}
			want = append(want, fx.wantReposMounts(tc.g)...)
			want = append(want, container.Mount{Source: hooks, Target: "/torwrt/hooks", ReadOnly: true})
			diffMounts(t, r.Mounts, want)
			if !bytes.Equal(seenRepos, wantRepos) || len(wantRepos) == 0 {
				t.Errorf("repositories file as mounted: %q, want %q", seenRepos, wantRepos)
			}
			hook, err := os.Stat(filepath.Join(hooks, "mksquashfs"))
			if err != nil || hook.Mode().Perm() != 0o755 {
				t.Fatalf("hook: %v %v", hook, err)
			}
			if b, _ := os.ReadFile(filepath.Join(hooks, "mksquashfs")); !bytes.Equal(b, mksquashfsHook) {
				t.Error("hook content is not hooks/mksquashfs.sh")
			}
		})
	}
}

// With an InstalledTree, make reads installed.mk (which includes the
// ImageBuilder's Makefile) in save or restore mode, with the tree's
// directory mounted read-write to save into and read-only to restore from.
func TestImageInstalledTree(t *testing.T) {
	for _, restore := range []bool{false, true} {
		for _, g := range []generation{lede17, owrt24, owrt25} {
			t.Run(fmt.Sprintf("%s/restore=%v", g.name, restore), func(t *testing.T) {
				fx := newFixture(t, g, false)
				dir := filepath.Join(fx.work, "installed")
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if restore {
					if err := os.WriteFile(filepath.Join(dir, InstalledArchive), []byte("tar"), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				fx.fake.Script = func(r containertest.Run) containertest.Outcome {
					if !restore {
						// What installed.mk's save step writes.
						os.WriteFile(filepath.Join(dir, InstalledArchive), []byte("tar"), 0o644)
					}
					return containertest.Outcome{}
				}
				req := fx.request()
				req.DisabledServices = nil
				req.Installed = &InstalledTree{Dir: dir, Restore: restore}
				if err := fx.d.Image(t.Context(), req); err != nil {
					t.Fatal(err)
				}
				r := fx.onlyRun(t)
				diff(t, "make argv", r.Argv[5:9], []string{"make", "-f", "/torwrt/hooks/installed.mk", "image"})
				mode := map[bool]string{false: "save", true: "restore"}[restore]
				diff(t, "env", r.Env, []string{"SOURCE_DATE_EPOCH=1758316778", "TORWRT_FILES=/torwrt/files",
					"TORWRT_INSTALLED=" + mode, "TORWRT_INSTALLED_DIR=/torwrt/installed"})
				last := r.Mounts[len(r.Mounts)-1]
				if want := (container.Mount{Source: dir, Target: "/torwrt/installed", ReadOnly: restore}); last != want {
					t.Errorf("last mount %+v, want %+v", last, want)
				}
				if b, _ := os.ReadFile(filepath.Join(fx.work, "hooks", "installed.mk")); !bytes.Equal(b, installedMakefile) {
					t.Error("hooks/installed.mk is not the embedded makefile")
				}
			})
		}
	}
}

// The installed tree is refused where it cannot work, before make runs,
// and a save that saved nothing is an error, not a silent miss.
func TestImageInstalledTreeRefusals(t *testing.T) {
	for _, tc := range []struct {
		name    string
		g       generation
		setup   func(dir string) *InstalledTree
		wantErr string
		runs    int
	}{
		{"no package_install sub-make", mono, func(dir string) *InstalledTree { return &InstalledTree{Dir: dir} }, "no `$(MAKE) package_install` sub-make", 0},
		{"save into a non-empty directory", owrt24, func(dir string) *InstalledTree {
			os.WriteFile(filepath.Join(dir, "stale"), nil, 0o644)
			return &InstalledTree{Dir: dir}
		}, "is not empty", 0},
		{"restore without an archive", owrt24, func(dir string) *InstalledTree { return &InstalledTree{Dir: dir, Restore: true} }, "installed package tree", 0},
		{"restore from a symlink", owrt24, func(dir string) *InstalledTree {
			os.Symlink("/etc/passwd", filepath.Join(dir, InstalledArchive))
			return &InstalledTree{Dir: dir, Restore: true}
		}, "not a regular file", 0},
		{"save that saved nothing", owrt24, func(dir string) *InstalledTree { return &InstalledTree{Dir: dir} }, "saved no installed package tree", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, tc.g, false)
			dir := filepath.Join(fx.work, "installed")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			req := fx.request()
			req.DisabledServices = nil
			req.Installed = tc.setup(dir)
			err := fx.d.Image(t.Context(), req)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want it to say %q", err, tc.wantErr)
			}
			if n := len(fx.fake.Runs()); n != tc.runs {
				t.Errorf("%d make runs, want %d", n, tc.runs)
			}
		})
	}
}

func TestImageOptionalVariables(t *testing.T) {
	fx := newFixture(t, owrt24, false)
	req := fx.request()
	req.ExtraImageName, req.DisabledServices, req.Packages = "", nil, nil
	if err := fx.d.Image(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	// No EXTRA_IMAGE_NAME= or DISABLED_SERVICES= at all when unset; an
	// empty PACKAGES= gives the profile's defaults.
	diff(t, "make argv", fx.onlyRun(t).Argv[5:], []string{"make", "image", "PROFILE=glinet_gl-ar150", "PACKAGES=", "FILES=/torwrt/files", "BIN_DIR=/torwrt/bin"})
}

func TestManifestCommandLine(t *testing.T) {
	const out = "base-files - 1567-r28427\nkernel - 6.6.93-1-abc\ntor - 0.4.8.17-r1\n"
	for _, g := range []generation{owrt24, owrt25} {
		t.Run(g.name, func(t *testing.T) {
			fx := newFixture(t, g, false)
			fx.fake.Script = func(containertest.Run) containertest.Outcome { return containertest.Outcome{Stdout: out} }
			pkgs, err := fx.d.Manifest(t.Context(), fx.request())
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(pkgs); got != "[{base-files 1567-r28427} {kernel 6.6.93-1-abc} {tor 0.4.8.17-r1}]" {
				t.Errorf("packages %s", got)
			}
			r := fx.onlyRun(t)
			checkName(t, r, "manifest")
			diff(t, "argv", r.Argv, []string{"make", "manifest", "PROFILE=glinet_gl-ar150", "PACKAGES=tor luci-ssl -ppp -ppp-mod-pppoe -wpad* kmod-nft-nat"})
			diff(t, "env", r.Env, nil)
			diffMounts(t, r.Mounts, append([]container.Mount{{Source: fx.feed, Target: "/torwrt/feed", ReadOnly: true}}, fx.wantReposMounts(g)...))
		})
	}
}

func TestInfoCommandLine(t *testing.T) {
	fx := newFixture(t, owrt25, false)
	fx.fake.Script = func(containertest.Run) containertest.Outcome {
		return containertest.Outcome{Stdout: "Current Target: \"ath79/generic\"\nCurrent Architecture: \"mips\"\nDefault Packages: base-files apk-mbedtls\nAvailable Profiles:\n\nglinet_gl-ar150:\n    GL.iNet GL-AR150\n    Packages: kmod-usb-chipidea2\n"}
	}
	info, err := fx.d.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.Target != "ath79/generic" || len(info.Profiles) != 1 || info.Profiles[0].ID != "glinet_gl-ar150" {
		t.Errorf("info %+v", info)
	}
	r := fx.onlyRun(t)
	checkName(t, r, "info")
	diff(t, "argv", r.Argv, []string{"make", "info"})
	diff(t, "env", r.Env, nil)
	diffMounts(t, r.Mounts, nil)
}

// LEDE 17.01 has no `make manifest`: the package set comes from a trial
// `make image` with a throwaway FILES tree, whose .manifest is read back.
func TestTrialManifest(t *testing.T) {
	fx := newFixture(t, lede17, false)
	var trialFiles []string
	fx.fake.Script = func(r containertest.Run) containertest.Outcome {
		files, _ := r.Mount("/torwrt/files")
		filepath.WalkDir(files.Source, func(p string, e os.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				rel, _ := filepath.Rel(files.Source, p)
				trialFiles = append(trialFiles, rel)
			}
			return nil
		})
		return containertest.Outcome{Files: map[string]string{
			"/torwrt/bin/lede-ar71xx-generic-gl-ar150-squashfs-sysupgrade.bin": "image",
			"/torwrt/bin/lede-ar71xx-generic-device-gl-ar150.manifest":         "base-files - 173.3-r3727\ntor - 0.2.9.14-1\n",
			"/torwrt/bin/sha256sums": "",
		}}
	}
	req := fx.request()
	req.DisabledServices, req.ExtraImageName, req.SourceDateEpoch = nil, "", 0
	req.Files, req.BinDir = "", ""
	req.Profile = "gl-ar150" // LEDE's name for it
	pkgs, err := fx.d.Manifest(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(pkgs); got != "[{base-files 173.3-r3727} {tor 0.2.9.14-1}]" {
		t.Errorf("packages %s", got)
	}
	r := fx.onlyRun(t)
	checkName(t, r, "image")
	diff(t, "make argv", r.Argv[5:], []string{"make", "image", "PROFILE=gl-ar150", "PACKAGES=tor luci-ssl -ppp -ppp-mod-pppoe -wpad* kmod-nft-nat", "FILES=/torwrt/files", "BIN_DIR=/torwrt/bin"})
	diff(t, "env", r.Env, []string{"SOURCE_DATE_EPOCH=1", "TORWRT_FILES=/torwrt/files"})
	diff(t, "trial FILES tree", trialFiles, []string{"etc/torwrt-lock-trial"})
	files, _ := r.Mount("/torwrt/files")
	bin, _ := r.Mount("/torwrt/bin")
	if !files.ReadOnly || bin.ReadOnly || filepath.Dir(files.Source) != filepath.Dir(bin.Source) || !strings.HasPrefix(filepath.Base(filepath.Dir(bin.Source)), "trial-") || filepath.Dir(filepath.Dir(bin.Source)) != fx.work {
		t.Errorf("trial mounts: files %+v, bin %+v", files, bin)
	}
	// The scratch tree is gone; the caller's directories are untouched.
	if _, err := os.Stat(filepath.Dir(bin.Source)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("trial directory left behind: %v", err)
	}
	if entries, _ := os.ReadDir(fx.bin); len(entries) != 0 {
		t.Errorf("trial wrote into the real BIN_DIR: %v", entries)
	}
	diffMounts(t, r.Mounts[3:4], fx.wantReposMounts(lede17))
}

func TestDisabledServicesNeedsMakefileSupport(t *testing.T) {
	fx := newFixture(t, lede17, false)
	err := fx.d.Image(t.Context(), fx.request())
	if !errors.Is(err, ErrMissingInterface) || !strings.Contains(err.Error(), "no DISABLED_SERVICES") {
		t.Fatalf("err = %v, want ErrMissingInterface about DISABLED_SERVICES", err)
	}
	if n := len(fx.fake.Runs()); n != 0 {
		t.Errorf("%d runs", n)
	}
	// Without disabled services the same ImageBuilder builds.
	req := fx.request()
	req.DisabledServices = nil
	if err := fx.d.Image(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if n := len(fx.fake.Runs()); n != 1 {
		t.Errorf("%d runs", n)
	}
}

// hostile are values that would do something other than name a package,
// profile or image suffix if they reached the ImageBuilder's Makefiles,
// whose recipes expand them in shell lines and make functions.
var hostile = []string{
	"tor;id", "$(shell id)", "${shell id}", "`id`", "tor\nid", "tor\n", "tor id", "tor\tid", "tor|id", "tor&&id",
	"tor>x", "'tor'", "\"tor\"", "tor\\", "tor$", "tor#", "tor=1", "../tor", "tor/../x", "Tor", "", "-", "*", "-$(id)*", "tor\x00",
	"PROFILE=x", strings.Repeat("a", 129),
}

func TestHostileValuesRefused(t *testing.T) {
	type mutation struct {
		name string
		mut  func(*Request)
	}
	var cases []mutation
	for _, v := range hostile {
		cases = append(cases,
			mutation{"package " + fmt.Sprintf("%q", v), func(r *Request) { r.Packages = append(r.Packages, v) }},
			mutation{"disabled service " + fmt.Sprintf("%q", v), func(r *Request) { r.DisabledServices = []string{"dnsmasq", v} }},
			mutation{"profile " + fmt.Sprintf("%q", v), func(r *Request) { r.Profile = v }},
		)
		if v != "" {
			cases = append(cases, mutation{"extra image name " + fmt.Sprintf("%q", v), func(r *Request) { r.ExtraImageName = v }})
		}
	}
	for _, v := range []string{"glinet_gl-ar150;reboot", "gl-ar150 ", "GL-AR150", "-gl-ar150", ".gl-ar150"} {
		cases = append(cases, mutation{"profile " + fmt.Sprintf("%q", v), func(r *Request) { r.Profile = v }})
	}
	for _, v := range []string{"torwrt/x", "/etc", "..", "-torwrt", "torwrt-$(id)"} {
		cases = append(cases, mutation{"extra image name " + fmt.Sprintf("%q", v), func(r *Request) { r.ExtraImageName = v }})
	}
	fx := newFixture(t, owrt25, false)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := fx.request()
			tc.mut(&req)
			if err := fx.d.Image(t.Context(), req); err == nil {
				t.Error("make image accepted it")
			}
			if _, err := fx.d.Manifest(t.Context(), req); err == nil && !strings.HasPrefix(tc.name, "extra image name") && !strings.HasPrefix(tc.name, "disabled service") {
				t.Error("make manifest accepted it")
			}
		})
	}
	if runs := fx.fake.Runs(); len(runs) != 0 {
		t.Errorf("%d runs for hostile values; first: %q", len(runs), runs[0].Argv)
	}
}

// checkArgvValidated fails unless every make variable of a recorded run
// is one the driver sets, each of its words a validated name or a path
// the runner gave, and the command before make is the constant entry
// script.
func checkArgvValidated(t testing.TB, r containertest.Run, paths []string) {
	t.Helper()
	argv := r.Argv
	if len(argv) > 0 && argv[0] == "/bin/sh" {
		if len(argv) < 5 || argv[1] != "-c" || argv[2] != entryScript || argv[3] != "torwrt-build" || !slices.Contains(paths, argv[4]) {
			t.Fatalf("entry: %q", argv[:min(5, len(argv))])
		}
		argv = argv[5:]
	}
	if len(argv) < 2 || argv[0] != "make" || !slices.Contains([]string{"info", "manifest", "image"}, argv[1]) {
		t.Fatalf("not a make target: %q", argv)
	}
	seen := map[string]bool{}
	for _, a := range argv[2:] {
		k, v, ok := strings.Cut(a, "=")
		if !ok || seen[k] {
			t.Fatalf("argument %q: not one KEY=VALUE", a)
		}
		seen[k] = true
		switch k {
		case "PROFILE", "EXTRA_IMAGE_NAME":
			if !profileIDRE.MatchString(v) {
				t.Fatalf("%s=%q not validated", k, v)
			}
		case "PACKAGES", "DISABLED_SERVICES":
			for _, w := range strings.Split(v, " ") {
				if v == "" && k == "PACKAGES" {
					break
				}
				name := strings.TrimSuffix(strings.TrimPrefix(w, "-"), "*")
				if !profile.ValidPackageName(name) || (strings.HasSuffix(w, "*") && !strings.HasPrefix(w, "-")) {
					t.Fatalf("%s word %q not validated", k, w)
				}
			}
		case "FILES", "BIN_DIR":
			if !slices.Contains(paths, v) {
				t.Fatalf("%s=%q is not a runner path", k, v)
			}
		default:
			t.Fatalf("unexpected make variable %q", a)
		}
	}
}

// FuzzImageArgv: whatever the request, make image either refuses it
// before running anything or runs an argv whose every value was validated.
func FuzzImageArgv(f *testing.F) {
	f.Add("glinet_gl-ar150", "tor -ppp -wpad*", "dnsmasq", "torwrt")
	f.Add("glinet_gl-ar150", "tor", "", "")
	for _, v := range hostile {
		f.Add("glinet_gl-ar150", "tor "+v, "", "")
		f.Add(v, "tor", "", "")
		f.Add("glinet_gl-ar150", "tor", v, "")
		f.Add("glinet_gl-ar150", "tor", "", v)
	}
	fx := newFixture(f, owrt24, false)
	paths := []string{"/torwrt/files", "/torwrt/bin", "/torwrt/hooks/mksquashfs"}
	f.Fuzz(func(t *testing.T, prof, pkgs, disabled, extra string) {
		req := fx.request()
		req.Profile, req.ExtraImageName = prof, extra
		req.Packages = strings.Split(pkgs, " ")
		req.DisabledServices = nil
		if disabled != "" {
			req.DisabledServices = strings.Split(disabled, " ")
		}
		before := len(fx.fake.Runs())
		err := fx.d.Image(t.Context(), req)
		runs := fx.fake.Runs()
		if err != nil {
			if len(runs) != before {
				t.Fatalf("refused (%v) after running %q", err, runs[len(runs)-1].Argv)
			}
			return
		}
		if len(runs) != before+1 {
			t.Fatalf("%d runs", len(runs)-before)
		}
		checkArgvValidated(t, runs[len(runs)-1], paths)
	})
}

func TestRepositoriesFiles(t *testing.T) {
	const head = "# written by torwrt imgbuild: no network feeds; every package is pinned in the lock file\n"
	if got, want := string(ReposConf("/torwrt/feed")), head+"src imagebuilder file:packages\nsrc torwrt file:///torwrt/feed\n"; got != want {
		t.Errorf("ReposConf:\n%s\nwant\n%s", got, want)
	}
	if got, want := string(APKRepositories("/builder", "/torwrt/feed", true)), head+"/torwrt/feed/packages.adb\n/builder/packages/packages.adb\n"; got != want {
		t.Errorf("APKRepositories bundled:\n%s\nwant\n%s", got, want)
	}
	if got, want := string(APKRepositories("/builder", "/torwrt/feed", false)), head+"/torwrt/feed/packages.adb\n"; got != want {
		t.Errorf("APKRepositories:\n%s\nwant\n%s", got, want)
	}
	for _, tc := range []struct {
		g         generation
		hostPaths bool
		bundled   bool
		file      string
		want      func(feed string) string
	}{
		{owrt24, false, true, "repositories.conf", func(string) string { return string(ReposConf("/torwrt/feed")) }},
		{owrt24, false, false, "repositories.conf", func(string) string { return string(ReposConf("/torwrt/feed")) }},
		{lede17, true, true, "repositories.conf", func(feed string) string { return string(ReposConf(feed)) }},
		{owrt25, false, true, "repositories", func(string) string { return head + "/torwrt/feed/packages.adb\n/builder/packages/packages.adb\n" }},
		{owrt25, false, false, "repositories", func(string) string { return head + "/torwrt/feed/packages.adb\n" }},
		{owrt25, true, false, "repositories", func(feed string) string { return head + feed + "/packages.adb\n" }},
	} {
		t.Run(fmt.Sprintf("%s/hostpaths=%v/bundled=%v", tc.g.name, tc.hostPaths, tc.bundled), func(t *testing.T) {
			work := t.TempDir()
			feed := filepath.Join(work, "feed")
			d := &Driver{Runner: &containertest.Fake{HostPaths: tc.hostPaths}, IBImage: ibImage(t, tc.g)}
			if err := d.WriteRepositories(feed, tc.bundled); err != nil {
				t.Fatal(err)
			}
			entries, _ := os.ReadDir(work)
			if len(entries) != 1 || entries[0].Name() != tc.file {
				t.Fatalf("wrote %v, want only %s", entries, tc.file)
			}
			fi, _ := entries[0].Info()
			b, _ := os.ReadFile(filepath.Join(work, tc.file))
			if string(b) != tc.want(feed) || fi.Mode().Perm() != 0o644 {
				t.Errorf("%s (%v):\n%s\nwant\n%s", tc.file, fi.Mode(), b, tc.want(feed))
			}
			caps, err := d.Capabilities()
			if err != nil || caps.PackageManager != tc.g.manager {
				t.Errorf("capabilities %+v %v", caps, err)
			}
		})
	}
}

func TestMakeFailure(t *testing.T) {
	const hint = `package "tor-fake" is in neither`
	var stderr strings.Builder
	for i := 1; i <= 60; i++ {
		fmt.Fprintf(&stderr, "noise line %02d\n", i)
	}
	stderr.WriteString(" * Unknown package 'tor-fake'.\nmake[2]: *** [Makefile:183: package_install] Error 255\n")
	for _, tc := range []struct {
		name     string
		g        generation
		call     func(d *Driver, req Request) error
		step     string
		outcome  containertest.Outcome
		wantHint string
		lines    []string // each must appear exactly once
		absent   []string
	}{
		{
			name: "image, stderr", g: owrt24, step: "image",
			call:     func(d *Driver, req Request) error { return d.Image(t.Context(), req) },
			outcome:  containertest.Outcome{Stdout: "Building images for ath79\n", Stderr: stderr.String(), ExitCode: 2},
			wantHint: hint,
			lines:    []string{"make image exited with status 2 (fake run torwrt-image-", "noise line 60", " * Unknown package 'tor-fake'.", "Error 255", "--- last lines of its output ---"},
			absent:   []string{"noise line 01", "noise line 20"},
		},
		{
			// LEDE 17.01 prints its refusal on stdout.
			name: "trial image, stdout", g: lede17, step: "image",
			call: func(d *Driver, req Request) error {
				req.DisabledServices = nil
				_, err := d.Manifest(t.Context(), req)
				return err
			},
			outcome:  containertest.Outcome{Stdout: "Profile \"glinet_gl-ar150\" does not exist!\nUse \"make info\" to get a list of available profile names.\n", ExitCode: 1},
			wantHint: `no profile "glinet_gl-ar150"`,
			lines:    []string{"trial make image to learn the package set", "make image exited with status 1", "Use \"make info\"", "--- last lines of its output ---"},
		},
		{
			name: "manifest", g: owrt25, step: "manifest",
			call: func(d *Driver, req Request) error {
				_, err := d.Manifest(t.Context(), req)
				return err
			},
			outcome:  containertest.Outcome{Stderr: "ERROR: unable to select packages:\n  tor-fake (no such package):\n    required by: world[tor-fake]\n", ExitCode: 1},
			wantHint: hint,
			lines:    []string{"make manifest exited with status 1", "required by: world[tor-fake]"},
		},
		{
			// The engine never ran the command: its error, once.
			name: "engine", g: owrt24, step: "info",
			call: func(d *Driver, req Request) error {
				_, err := d.Info(t.Context())
				return err
			},
			outcome: containertest.Outcome{Err: errors.New("container: starting podman run x: exec: podman: not found")},
			lines:   []string{"make info: container: starting podman run x: exec: podman: not found"},
			absent:  []string{"--- last lines"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, tc.g, false)
			fx.d.LogDir = filepath.Join(fx.work, "logs")
			fx.fake.Script = func(containertest.Run) containertest.Outcome { return tc.outcome }
			err := tc.call(fx.d, fx.request())
			if !errors.Is(err, ErrMake) {
				t.Fatalf("err = %v, want ErrMake", err)
			}
			msg := err.Error()
			if tc.wantHint != "" && strings.Count(msg, tc.wantHint) != 1 {
				t.Errorf("hint %q appears %d times in:\n%s", tc.wantHint, strings.Count(msg, tc.wantHint), msg)
			}
			if tc.wantHint == "" && Diagnose(msg) != "" {
				t.Errorf("a hint where none applies:\n%s", msg)
			}
			for _, l := range append(tc.lines, "full log: "+filepath.Join(fx.d.LogDir, "make-"+tc.step+".log")) {
				if n := strings.Count(msg, l); n != 1 {
					t.Errorf("%q appears %d times in:\n%s", l, n, msg)
				}
			}
			for _, l := range tc.absent {
				if strings.Contains(msg, l) {
					t.Errorf("%q in:\n%s", l, msg)
				}
			}
			// The log keeps all of it.
			log, _ := os.ReadFile(filepath.Join(fx.d.LogDir, "make-"+tc.step+".log"))
			if !strings.Contains(string(log), tc.outcome.Stdout) || !strings.Contains(string(log), tc.outcome.Stderr) {
				t.Errorf("log %q lacks the output", log)
			}
		})
	}
}

// Image refuses requests it cannot run before any run starts.
func TestImageRefusesBadDirectories(t *testing.T) {
	fx := newFixture(t, owrt24, false)
	if err := os.WriteFile(filepath.Join(fx.bin, "old.bin"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := fx.d.Image(t.Context(), fx.request()); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("non-empty BIN_DIR: %v", err)
	}
	for _, mut := range []func(*Request){
		func(r *Request) { r.Files = "" },
		func(r *Request) { r.BinDir = "" },
		func(r *Request) { r.Feed = "" },
		func(r *Request) { r.SourceDateEpoch = 0 },
		func(r *Request) { r.SourceDateEpoch = -1 },
	} {
		req := fx.request()
		mut(&req)
		if err := fx.d.Image(t.Context(), req); err == nil {
			t.Errorf("accepted %+v", req)
		}
	}
	if n := len(fx.fake.Runs()); n != 0 {
		t.Errorf("%d runs", n)
	}
}
