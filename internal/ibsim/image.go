package ibsim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/torwrt/torwrt"
	"github.com/torwrt/torwrt/internal/gobuild"
)

// BuildOptions configures BuildImage.
type BuildOptions struct {
	// ModuleDir is the torwrt checkout ibsim-tool is built from. Default:
	// the module source embedded in this binary (torwrt.Source), the
	// source it was itself built from, so a `go install`ed imgbuild needs
	// no checkout.
	ModuleDir string
	// Go is the go command (default: "go" from PATH).
	Go string
	// Busybox is a statically linked busybox (default /bin/busybox, Debian
	// package busybox-static).
	Busybox string
	// Progress receives one line per step (may be nil).
	Progress io.Writer
	// Tool is ibsim-tool's binary as BuildTool made it; nil: BuildImage
	// builds it. A caller that caches images passes it so that it can
	// hash the image's inputs (InputsSHA256) without building twice.
	Tool []byte
}

// ImageVersion names how BuildImage assembles an image from its layers
// (media types, config, labels, history). Change it whenever that changes:
// InputsSHA256 includes it, so an image cached under the old inputs hash
// is not replayed as the new one.
const ImageVersion = 1

// Image user: the real IB containers run as buildbot (uid 1000) in /builder.
const (
	imageUser = "buildbot"
	imageUID  = 1000
	builder   = "/builder"
	toolPkg   = "github.com/torwrt/torwrt/internal/ibsim/cmd/ibsim-tool"
	modPath   = "github.com/torwrt/torwrt"
)

func (o *BuildOptions) logf(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "ibsim: "+format+"\n", args...)
	}
}

// BuildImage assembles the OCI image of the simulated ImageBuilder for t:
// a base layer made from the host's busybox-static, GNU make and mksquashfs
// (with the shared libraries they load) plus /etc/passwd, and a layer with
// the /builder tree (Makefile, repositories.conf, keys, the prebuilt fake
// kernel and staging_dir/host/bin/ibsim-tool, built here with CGO_ENABLED=0).
// Times are fixed and entries sorted, so the digest is the same on every run
// on one machine (it depends on the host's binaries and Go toolchain; the
// simulated IB's lock is made at run time).
func BuildImage(ctx context.Context, t Target, opts BuildOptions) (v1.Image, error) {
	if t.IBProfile == "" || t.Target == "" || t.Arch == "" {
		return nil, fmt.Errorf("ibsim: incomplete target %+v: use one of ibsim.Targets()", t)
	}
	start := time.Now()
	if opts.Tool == nil {
		tool, err := buildTool(ctx, &opts)
		if err != nil {
			return nil, err
		}
		opts.Tool = tool
	}
	base, treeTar, err := layerTars(t, &opts)
	if err != nil {
		return nil, err
	}

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	epochTime := t.epoch()
	for _, l := range []struct {
		b   []byte
		how string
	}{
		{base, "torwrt ibsim: base layer from the host's busybox-static, GNU make, mksquashfs (SIMULATED ImageBuilder)"},
		{treeTar, fmt.Sprintf("torwrt ibsim: /builder tree of the SIMULATED OpenWrt %s ImageBuilder for %s", t.Version, t.TargetName())},
	} {
		b := l.b
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
			tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return nil, fmt.Errorf("ibsim: making layer: %w", err)
		}
		img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
			Created: v1.Time{Time: epochTime}, CreatedBy: l.how, Comment: "SIMULATED"}})
		if err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = runtime.GOARCH
	cf.Author = "torwrt ibsim (SIMULATED ImageBuilder test fixture)"
	cf.Config = v1.Config{
		User:       imageUser,
		WorkingDir: builder,
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/home/buildbot"},
		Cmd:        []string{"/bin/sh"},
		Labels: map[string]string{
			"org.opencontainers.image.title":       fmt.Sprintf("SIMULATED OpenWrt ImageBuilder %s %s", t.Version, t.TargetName()),
			"org.opencontainers.image.description": Notice,
			"org.opencontainers.image.version":     t.Version + "-simulated",
			"io.torwrt.simulated":                  "true",
		},
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	img, err = mutate.CreatedAt(img, v1.Time{Time: epochTime})
	if err != nil {
		return nil, err
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	opts.logf("image for %s: %s (%s)", t.IBProfile, d, time.Since(start).Round(time.Millisecond))
	return img, nil
}

// layerTars are the two layers of t's image, uncompressed: the base
// layer from the host's tools and the /builder tree with o.Tool.
func layerTars(t Target, o *BuildOptions) (base, tree []byte, err error) {
	if base, err = baseLayer(o, t.epoch()); err != nil {
		return nil, nil, err
	}
	files, err := ibTree(t)
	if err != nil {
		return nil, nil, err
	}
	var entries []tarEntry
	entries = append(entries, tarEntry{name: "builder/", mode: 0o755, uid: imageUID})
	for _, f := range files {
		entries = append(entries, tarEntry{name: "builder/" + f.path, mode: f.mode, uid: imageUID, content: f.content})
	}
	entries = append(entries, tarEntry{name: "builder/staging_dir/host/bin/ibsim-tool", mode: 0o755, uid: imageUID, content: o.Tool})
	entries = append(entries, tarEntry{name: "builder/staging_dir/host/bin/mksquashfs4", uid: imageUID, link: "/usr/bin/mksquashfs"})
	if tree, err = buildTar(entries, "", false, t.epoch()); err != nil {
		return nil, nil, err
	}
	return base, tree, nil
}

// BuildTool compiles ibsim-tool as BuildImage does (CGO_ENABLED=0,
// -trimpath, no build ID, the environment's GOFLAGS, go.work, go env file
// and GOEXPERIMENT ignored): its bytes are a function of the module source
// (opts.ModuleDir, else the embedded copy), `go env GOVERSION` and GOARCH.
func BuildTool(ctx context.Context, opts BuildOptions) ([]byte, error) {
	return buildTool(ctx, &opts)
}

// InputsSHA256 is the SHA-256 of everything t's image is made of, taken
// before the slow part (compressing the layers): ImageVersion, the target,
// the Go release imgbuild runs on (its compress/gzip writes the layers),
// and the bytes of both layers (the host's busybox, make, mksquashfs and
// their libraries; the /builder tree with opts.Tool, which must be set).
// Equal inputs give an image with the same digest, so a cache keyed by
// this hash may replay the image it recorded, by digest.
func InputsSHA256(t Target, opts BuildOptions) (string, error) {
	if opts.Tool == nil {
		return "", errors.New("ibsim: InputsSHA256 needs BuildOptions.Tool (from BuildTool)")
	}
	base, tree, err := layerTars(t, &opts)
	if err != nil {
		return "", err
	}
	tj, err := json.Marshal(t)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "torwrt ibsim image v%d\n%s\n%s\n", ImageVersion, runtime.Version(), tj)
	for _, l := range [][]byte{base, tree} {
		s := sha256.Sum256(l)
		fmt.Fprintf(h, "%d %x\n", len(l), s)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// moduleDir is the module root to build ibsim-tool in: o.ModuleDir, or
// the embedded source unpacked below tmp.
func moduleDir(ctx context.Context, o *BuildOptions, tmp string) (string, error) {
	if o.ModuleDir != "" {
		if !isTorwrtModule(o.ModuleDir) {
			return "", fmt.Errorf("ibsim: %s is not the root of the %s module (its go.mod)", o.ModuleDir, modPath)
		}
		return o.ModuleDir, nil
	}
	dir := filepath.Join(tmp, "src")
	if err := gobuild.Unpack(ctx, torwrt.Source, dir); err != nil {
		return "", fmt.Errorf("ibsim: %w", err)
	}
	return dir, nil
}

func isTorwrtModule(d string) bool {
	b, err := os.ReadFile(filepath.Join(d, "go.mod"))
	return err == nil && bytes.HasPrefix(b, []byte("module "+modPath+"\n"))
}

func goBin(o *BuildOptions) string {
	if o.Go != "" {
		return o.Go
	}
	// "go" from PATH; where it is missing the run fails and says so.
	return "go"
}

// buildTool compiles ibsim-tool statically and reproducibly.
func buildTool(ctx context.Context, o *BuildOptions) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "ibsim-tool-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	dir, err := moduleDir(ctx, o, tmp)
	if err != nil {
		return nil, err
	}
	out := filepath.Join(tmp, "ibsim-tool")
	cmd := exec.CommandContext(ctx, goBin(o), "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", out, toolPkg)
	cmd.Dir = dir
	// Nothing from the environment may change the bytes (BuildTool's
	// promise): GOFLAGS and the go env file (GOENV=off, or an empty GOFLAGS
	// falls back to it), a go.work above the module, another toolchain.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH,
		"GOFLAGS=", "GOENV=off", "GOWORK=off", "GOTOOLCHAIN=local", "GOEXPERIMENT=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	from := dir
	if o.ModuleDir == "" {
		from = gobuild.EmbeddedSource
	}
	o.logf("building ibsim-tool (CGO_ENABLED=0) from %s", from)
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("ibsim: go build %s: %v\n%s", toolPkg, err, stderr.String())
	}
	return os.ReadFile(out)
}

// hostTool finds a host program the base layer needs, or says which Debian
// package provides it.
func hostTool(name, pkg string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("ibsim: %s is missing on this host: install it with `apt-get install -y %s`", name, pkg)
	}
	return p, nil
}

// baseLayer is the root filesystem the IB Makefile runs in: static busybox
// (sh, tar, gzip, coreutils...), GNU make and mksquashfs with their shared
// libraries and loader, /etc/passwd with buildbot (uid 1000), /tmp.
func baseLayer(o *BuildOptions, epochTime time.Time) ([]byte, error) {
	bb := o.Busybox
	if bb == "" {
		bb = "/bin/busybox"
	}
	if _, err := os.Stat(bb); err != nil {
		return nil, fmt.Errorf("ibsim: %s is missing: install a static busybox with `apt-get install -y busybox-static`", bb)
	}
	if interp, _, err := elfDeps(bb); err != nil {
		return nil, fmt.Errorf("ibsim: %s: %v", bb, err)
	} else if interp != "" {
		return nil, fmt.Errorf("ibsim: %s is dynamically linked; the image needs a static one: `apt-get install -y busybox-static`", bb)
	}
	makeBin, err := hostTool("make", "make")
	if err != nil {
		return nil, err
	}
	mksq, err := hostTool("mksquashfs", "squashfs-tools")
	if err != nil {
		return nil, err
	}
	entries := map[string]tarEntry{}
	add := func(e tarEntry) { entries[e.name] = e }
	addFile := func(inImage, host string, mode int64) error {
		b, err := os.ReadFile(host)
		if err != nil {
			return fmt.Errorf("ibsim: reading %s: %v", host, err)
		}
		add(tarEntry{name: strings.TrimPrefix(inImage, "/"), mode: mode, content: b})
		return nil
	}
	if err := addFile("/bin/busybox", bb, 0o755); err != nil {
		return nil, err
	}
	list, err := exec.Command(bb, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("ibsim: %s --list-full: %v", bb, err)
	}
	for _, a := range strings.Fields(string(list)) {
		a = strings.TrimPrefix(a, "/")
		if a == "bin/busybox" || a == "" {
			continue
		}
		add(tarEntry{name: a, link: "/bin/busybox"})
	}
	libs := map[string]string{} // in-image path -> host path
	for _, bin := range []struct{ host, inImage string }{{makeBin, "/usr/bin/make"}, {mksq, "/usr/bin/mksquashfs"}} {
		real, err := filepath.EvalSymlinks(bin.host)
		if err != nil {
			return nil, err
		}
		if err := addFile(bin.inImage, real, 0o755); err != nil {
			return nil, err
		}
		if err := collectLibs(real, libs); err != nil {
			return nil, fmt.Errorf("ibsim: shared libraries of %s: %v", bin.host, err)
		}
	}
	// glibc dlopens libgcc_s when a thread exits (mksquashfs is threaded).
	if err := collectNeeded([]string{"libgcc_s.so.1"}, libs); err != nil {
		return nil, fmt.Errorf("ibsim: %v (Debian package libgcc-s1)", err)
	}
	for inImage, host := range libs {
		if err := addFile(inImage, host, 0o755); err != nil {
			return nil, err
		}
	}
	add(tarEntry{name: "etc/passwd", mode: 0o644, content: []byte("root:x:0:0:root:/root:/bin/sh\nbuildbot:x:1000:1000:buildbot (SIMULATED ImageBuilder):/home/buildbot:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")})
	add(tarEntry{name: "etc/group", mode: 0o644, content: []byte("root:x:0:\nbuildbot:x:1000:\nnogroup:x:65534:\n")})
	add(tarEntry{name: "etc/os-release", mode: 0o644, content: []byte("PRETTY_NAME=\"SIMULATED OpenWrt ImageBuilder base (host busybox, make, mksquashfs)\"\nID=torwrt-ibsim\n")})
	add(tarEntry{name: "tmp/", mode: 0o1777})
	add(tarEntry{name: "var/tmp/", mode: 0o1777})
	add(tarEntry{name: "root/", mode: 0o700})
	add(tarEntry{name: "home/", mode: 0o755})
	add(tarEntry{name: "home/buildbot/", mode: 0o755, uid: imageUID})
	for _, d := range []string{"proc/", "sys/", "dev/", "etc/", "usr/local/bin/"} {
		if _, ok := entries[d]; !ok {
			add(tarEntry{name: d, mode: 0o755})
		}
	}
	list2 := make([]tarEntry, 0, len(entries))
	for _, e := range entries {
		list2 = append(list2, e)
	}
	sort.Slice(list2, func(i, j int) bool { return list2[i].name < list2[j].name })
	return buildTar(list2, "", false, epochTime)
}

// libDirs is where the dynamic loader looks (Debian multiarch first).
var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}

// collectLibs adds the loader and the transitive DT_NEEDED libraries of bin.
func collectLibs(bin string, libs map[string]string) error {
	interp, needed, err := elfDeps(bin)
	if err != nil {
		return err
	}
	if interp != "" {
		if _, ok := libs[interp]; !ok {
			real, err := filepath.EvalSymlinks(interp)
			if err != nil {
				return fmt.Errorf("loader %s: %v", interp, err)
			}
			libs[interp] = real
		}
	}
	return collectNeeded(needed, libs)
}

// collectNeeded adds libraries by soname, and what they need.
func collectNeeded(needed []string, libs map[string]string) error {
	for _, n := range needed {
		found := false
		for _, d := range libDirs {
			p := filepath.Join(d, n)
			if _, err := os.Stat(p); err != nil {
				continue
			}
			found = true
			if _, ok := libs[p]; ok {
				break
			}
			real, err := filepath.EvalSymlinks(p)
			if err != nil {
				return err
			}
			libs[p] = real
			if err := collectLibs(real, libs); err != nil {
				return err
			}
			break
		}
		if !found {
			return fmt.Errorf("library %s not found in %v", n, libDirs)
		}
	}
	return nil
}

func elfDeps(p string) (interp string, needed []string, err error) {
	f, err := elf.Open(p)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			b, err := io.ReadAll(prog.Open())
			if err != nil {
				return "", nil, err
			}
			interp = strings.TrimRight(string(b), "\x00")
		}
	}
	needed, err = f.ImportedLibraries()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return "", nil, err
	}
	return interp, needed, nil
}
