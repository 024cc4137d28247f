package ibsim

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/torwrt/torwrt/internal/container"
	"github.com/torwrt/torwrt/internal/fwimage"
	"github.com/torwrt/torwrt/internal/imagesig"
	"github.com/torwrt/torwrt/internal/imagesig/imagesign"
	"github.com/torwrt/torwrt/internal/signer"
	"github.com/torwrt/torwrt/internal/ucert"
	"github.com/torwrt/torwrt/internal/usign"
)

// requireTools fails (never skips) when a host tool is missing, naming the
// Debian package to install.
func requireTools(t *testing.T, tools ...[2]string) {
	t.Helper()
	for _, tp := range tools {
		if _, err := exec.LookPath(tp[0]); err != nil {
			if _, err2 := os.Stat(tp[0]); err2 != nil {
				t.Fatalf("%s is missing: install it with `apt-get install -y %s`", tp[0], tp[1])
			}
		}
	}
}

var (
	buildTools  = [][2]string{{"/bin/busybox", "busybox-static"}, {"make", "make"}, {"mksquashfs", "squashfs-tools"}, {"go", "golang (or put go in PATH)"}}
	engineTools = [][2]string{{"podman", "podman"}, {"runc", "runc"}}
	checkTools  = [][2]string{{"unsquashfs", "squashfs-tools"}}
)

var tmpRoot string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "torwrt-ibsim-test-")
	if err != nil {
		panic(err)
	}
	os.Chmod(d, 0o755)
	tmpRoot = d
	code := m.Run()
	if stopRegistry != nil {
		stopRegistry()
	}
	if stopAPKRegistry != nil {
		stopAPKRegistry()
	}
	os.RemoveAll(d)
	os.Exit(code)
}

// dir makes a directory readable by the container user (t.TempDir is 0700).
func dir(t *testing.T, name string) string {
	t.Helper()
	d, err := os.MkdirTemp(tmpRoot, name+"-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0o755)
	return d
}

// ar150 is the 24.10 (opkg) GL-AR150, the target the opkg tests run on.
var ar150 = mustTarget("gl-ar150-24.10")

func mustTarget(p string) Target {
	t, ok := TargetByProfile(p)
	if !ok {
		panic("no simulated target " + p)
	}
	return t
}

var (
	builtOnce sync.Once
	builtImg  v1.Image
	builtErr  error
	builtTime time.Duration
)

func ar150Image(t *testing.T) v1.Image {
	t.Helper()
	requireTools(t, buildTools...)
	builtOnce.Do(func() {
		start := time.Now()
		builtImg, builtErr = BuildImage(context.Background(), ar150, BuildOptions{Progress: testWriter{t}})
		builtTime = time.Since(start)
	})
	if builtErr != nil {
		t.Fatal(builtErr)
	}
	return builtImg
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func TestBuildImageDeterministic(t *testing.T) {
	a := ar150Image(t)
	t.Logf("first BuildImage took %s", builtTime)
	start := time.Now()
	b, err := BuildImage(context.Background(), ar150, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second BuildImage took %s", time.Since(start))
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Fatalf("BuildImage is not deterministic: %s then %s", da, db)
	}
	cf, err := a.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "buildbot" || cf.Config.WorkingDir != "/builder" || cf.Config.Labels["io.torwrt.simulated"] != "true" ||
		!strings.Contains(cf.Config.Labels["org.opencontainers.image.description"], "SIMULATED") || !cf.Created.Time.Equal(ar150.epoch()) {
		t.Errorf("image config: %+v created %s", cf.Config, cf.Created)
	}
	mt, _ := a.MediaType()
	if mt != "application/vnd.oci.image.manifest.v1+json" {
		t.Errorf("media type %s", mt)
	}
	// The other target builds too, with a different digest.
	c, err := BuildImage(context.Background(), mustTarget("gl-mt300a-24.10"), BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if dc, _ := c.Digest(); dc == da {
		t.Errorf("both targets have digest %s", dc)
	}
}

func TestPackagesDeterministic(t *testing.T) {
	for _, tg := range []Target{ar150, mustTarget("gl-mt300a-24.10")} {
		d1, d2 := t.TempDir(), t.TempDir()
		p1, err := Packages(tg, d1)
		if err != nil {
			t.Fatal(err)
		}
		p2, err := Packages(tg, d2)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(p1) != fmt.Sprint(p2) {
			t.Fatalf("%s: Packages differ between runs", tg.Profile)
		}
		names := map[string]Package{}
		for _, p := range p1 {
			names[p.Name] = p
			b, err := os.ReadFile(filepath.Join(d1, p.Filename))
			if err != nil {
				t.Fatal(err)
			}
			b2, _ := os.ReadFile(filepath.Join(d2, p.Filename))
			s := sha256.Sum256(b)
			if hex.EncodeToString(s[:]) != p.SHA256 || int64(len(b)) != p.Size || !bytes.Equal(b, b2) || p.Arch != tg.Arch {
				t.Errorf("%s: %s hash/size/arch mismatch", tg.Profile, p.Filename)
			}
		}
		need := append([]string{"base-files", "busybox", "dropbear", "ucert", "usign", "fwtool", "opkg", "tor", "tor-geoip",
			"nftables-json", "kmod-nft-nat", "procd", "uci", "netifd", "dnsmasq", "odhcpd-ipv6only", "firewall4", "luci", "kernel"}, tg.DevicePackages...)
		need = append(need, tg.DefaultPackages()...)
		for _, n := range need {
			if _, ok := names[n]; !ok {
				t.Errorf("%s: feed lacks %s", tg.Profile, n)
			}
		}
		if v := names["tor"].Version; v != "0.4.8.17-r1" {
			t.Errorf("tor version %q", v)
		}
		idx, _ := os.ReadFile(filepath.Join(d1, "Packages"))
		sig, err := usign.ReadSignatureFile(filepath.Join(d1, "Packages.sig"))
		if err != nil {
			t.Fatal(err)
		}
		if err := FeedKey().Verify(idx, sig); err != nil {
			t.Errorf("Packages.sig: %v", err)
		}
		if !bytes.Contains(idx, []byte("Package: tor\nVersion: 0.4.8.17-r1\nDepends: libc, libevent2-7, libopenssl3, zlib\n")) {
			t.Errorf("Packages index stanza for tor:\n%s", idx)
		}
	}
}

// simEnv is the simulated IB served, pulled and ready to run.
type simEnv struct {
	img    *container.Image
	runner container.Runner
	feed   string
}

var (
	servedOnce   sync.Once
	servedImg    *container.Image
	servedErr    error
	stopRegistry func()
)

func pulled(t *testing.T) *container.Image {
	t.Helper()
	img := ar150Image(t)
	servedOnce.Do(func() {
		refs, stop, err := Serve(context.Background(), map[string]v1.Image{ar150.Profile: img})
		if err != nil {
			servedErr = err
			return
		}
		stopRegistry = stop
		ref := refs[ar150.Profile]
		if !regexp.MustCompile(`^127\.0\.0\.1:[0-9]+/openwrt/imagebuilder@sha256:[0-9a-f]{64}$`).MatchString(ref) {
			servedErr = fmt.Errorf("Serve ref %q", ref)
			return
		}
		var progress bytes.Buffer
		c := &container.Cache{Dir: filepath.Join(tmpRoot, "cache"), Insecure: true, Progress: &progress}
		servedImg, servedErr = c.Pull(context.Background(), ref)
		t.Logf("pull:\n%s", progress.String())
	})
	if servedErr != nil {
		t.Fatal(servedErr)
	}
	return servedImg
}

func newEnv(t *testing.T, engine string) *simEnv {
	t.Helper()
	img := pulled(t)
	var r container.Runner
	var err error
	switch engine {
	case "podman":
		requireTools(t, engineTools...)
		r, err = container.NewRunner(t.Context(), "podman", container.RunnerOptions{Logf: t.Logf})
	default:
		r, err = container.NewRunner(t.Context(), "host", container.RunnerOptions{WorkRoot: dir(t, "hostrun"), Logf: t.Logf})
	}
	if err != nil {
		t.Fatal(err)
	}
	feed := dir(t, "feed")
	if _, err := Packages(ar150, feed); err != nil {
		t.Fatal(err)
	}
	return &simEnv{img: img, runner: r, feed: feed}
}

var runSeq int

// run runs make with args; files/out may be "". It returns stdout, stderr.
func (e *simEnv) run(t *testing.T, env []string, files, out string, args ...string) (string, string, error) {
	t.Helper()
	feedM := container.Mount{Source: e.feed, Target: "/feed", ReadOnly: true}
	repoDir := dir(t, "repos")
	repos := filepath.Join(repoDir, "repositories.conf")
	conf := fmt.Sprintf("# torwrt test feed\nsrc/gz torwrt_sim file://%s\noption check_signature\n", e.runner.Path(feedM))
	if err := os.WriteFile(repos, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	mounts := []container.Mount{feedM, {Source: repos, Target: "/builder/repositories.conf", ReadOnly: true}}
	argv := append([]string{"make"}, args...)
	if files != "" {
		m := container.Mount{Source: files, Target: "/files", ReadOnly: true}
		mounts = append(mounts, m)
		argv = append(argv, "FILES="+e.runner.Path(m))
	}
	if out != "" {
		m := container.Mount{Source: out, Target: "/out"}
		mounts = append(mounts, m)
		argv = append(argv, "BIN_DIR="+e.runner.Path(m))
	}
	runSeq++
	var stdout, stderr bytes.Buffer
	spec := container.RunSpec{
		Name:   fmt.Sprintf("torwrt-ibsim-test-%d-%d", os.Getpid(), runSeq),
		Image:  e.img,
		Argv:   argv,
		Env:    env,
		Mounts: mounts,
		Stdout: &stdout, Stderr: &stderr,
	}
	start := time.Now()
	err := e.runner.Run(context.Background(), spec)
	t.Logf("%s: %s took %s", e.runner.Engine(), strings.Join(args[:1], " "), time.Since(start).Round(time.Millisecond))
	return stdout.String(), stderr.String(), err
}

// filesTree is a FILES overlay with un-normalized mtimes and an init script.
func filesTree(t *testing.T) string {
	d := dir(t, "files")
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(d, "etc/torwrt"), 0o755))
	must(os.MkdirAll(filepath.Join(d, "etc/init.d"), 0o755))
	must(os.MkdirAll(filepath.Join(d, "usr/sbin"), 0o755))
	must(os.WriteFile(filepath.Join(d, "etc/torwrt/config.json"), []byte(`{"overlay":"from FILES"}`+"\n"), 0o644))
	must(os.WriteFile(filepath.Join(d, "usr/sbin/torwrt-verify"), []byte("#!/bin/sh\necho verify\n"), 0o755))
	must(os.WriteFile(filepath.Join(d, "etc/init.d/torwrt"), []byte("#!/bin/sh /etc/rc.common\nSTART=60\nUSE_PROCD=1\n"), 0o755))
	must(os.Symlink("torwrt/config.json", filepath.Join(d, "etc/torwrt.json")))
	return d
}

func TestSimIBPodman(t *testing.T) {
	requireTools(t, checkTools...)
	e := newEnv(t, "podman")

	// make info
	stdout, stderr, err := e.run(t, nil, "", "", "info")
	if err != nil {
		t.Fatalf("make info: %v\n%s", err, stderr)
	}
	checkInfo(t, stdout)
	if !strings.Contains(stderr, "SIMULATED") {
		t.Errorf("make info does not say SIMULATED on stderr: %q", stderr)
	}

	// make manifest
	pk := "PACKAGES=tor tor-geoip ucert -luci -ppp -ppp-mod-pppoe -opkg"
	stdout, stderr, err = e.run(t, nil, "", "", "manifest", "PROFILE=glinet_gl-ar150", pk)
	if err != nil {
		t.Fatalf("make manifest: %v\n%s", err, stderr)
	}
	manifest := stdout
	checkManifest(t, manifest)

	// make image, twice, as the real IB would run in two fresh containers.
	files := filesTree(t)
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	os.Chtimes(filepath.Join(files, "etc/torwrt/config.json"), old, old)
	imageArgs := []string{"image", "PROFILE=glinet_gl-ar150", pk, "EXTRA_IMAGE_NAME=test", "DISABLED_SERVICES=dnsmasq odhcpd"}
	out1, out2 := dir(t, "out1"), dir(t, "out2")
	stdout, stderr, err = e.run(t, nil, files, out1, imageArgs...)
	if err != nil {
		t.Fatalf("make image: %v\n%s\n%s", err, stdout, stderr)
	}
	t.Logf("make image output:\n%s\n%s", stdout, stderr)
	img1 := checkImageOutputs(t, out1, manifest, files)
	time.Sleep(1100 * time.Millisecond) // a different second for the clock-dependent parts
	if _, stderr, err = e.run(t, nil, files, out2, imageArgs...); err != nil {
		t.Fatalf("second make image: %v\n%s", err, stderr)
	}
	img2 := checkImageOutputs(t, out2, manifest, files)
	if bytes.Equal(img1, img2) {
		t.Fatal("two runs of the simulated IB gave identical images: the real IB's non-reproducibility is not simulated")
	}
	u1, u2 := unsigned(t, img1), unsigned(t, img2)
	if bytes.Equal(u1, u2) {
		t.Error("two runs differ only in their signature: the squashfs/opkg times are not simulated")
	}
	if bytes.Equal(signatureChunk(t, img1), signatureChunk(t, img2)) {
		t.Error("two runs have the same signature chunk: the fresh local key is not simulated")
	}

	// With SOURCE_DATE_EPOCH in make's environment (what the real tools
	// honour) and the same FILES, only the signature (fresh key) differs:
	// the builder can neutralize the rest.
	sde := []string{fmt.Sprintf("SOURCE_DATE_EPOCH=%d", ar150.SourceDateEpoch)}
	out3, out4 := dir(t, "out3"), dir(t, "out4")
	if _, stderr, err = e.run(t, sde, files, out3, imageArgs...); err != nil {
		t.Fatalf("make image with SOURCE_DATE_EPOCH: %v\n%s", err, stderr)
	}
	time.Sleep(1100 * time.Millisecond)
	if _, stderr, err = e.run(t, sde, files, out4, imageArgs...); err != nil {
		t.Fatalf("make image with SOURCE_DATE_EPOCH: %v\n%s", err, stderr)
	}
	img3, img4 := readImage(t, out3), readImage(t, out4)
	if !bytes.Equal(unsigned(t, img3), unsigned(t, img4)) {
		t.Error("with SOURCE_DATE_EPOCH set and identical FILES, the unsigned images still differ")
	}
	if bytes.Equal(img3, img4) {
		t.Error("signed images are identical although each run has a fresh key")
	}

	// Size limit: a huge incompressible file.
	big := dir(t, "bigfiles")
	junk := make([]byte, 17<<20)
	rand.Read(junk)
	if err := os.WriteFile(filepath.Join(big, "junk.bin"), junk, 0o644); err != nil {
		t.Fatal(err)
	}
	out5 := dir(t, "out5")
	_, stderr, err = e.run(t, nil, big, out5, imageArgs...)
	var ee *container.ExitError
	if !errors.As(err, &ee) || !strings.Contains(ee.Stderr, "is too big") || !strings.Contains(ee.Stderr, "16384000") {
		t.Fatalf("oversized image: err %v\nstderr %s", err, stderr)
	}
	if ents, _ := os.ReadDir(out5); len(ents) != 0 {
		t.Errorf("oversized build left outputs: %v", ents)
	}

	// Invalid names are make errors, before any shell runs.
	_, stderr, err = e.run(t, nil, "", "", "manifest", "PACKAGES=tor $(shell id)")
	if !errors.As(err, &ee) || !strings.Contains(ee.Stderr, "Invalid package name(s) in PACKAGES: $(shell id)") {
		t.Errorf("invalid package name: %v\n%s", err, stderr)
	}
	_, stderr, err = e.run(t, nil, "", "", "manifest", "PACKAGES=tor no-such-package")
	if !errors.As(err, &ee) || !strings.Contains(ee.Stderr, "no-such-package") {
		t.Errorf("unknown package: %v\n%s", err, stderr)
	}
}

func checkInfo(t *testing.T, out string) {
	t.Helper()
	want := []string{
		`Current Target: "ath79/generic"`,
		`Current Architecture: "mips"`,
		`Current Revision: "r28872-daca7c049b"`,
		"Default Packages: " + strings.Join(ar150.DefaultPackages(), " "),
		"Available Profiles:",
		"",
		"glinet_gl-ar150:",
		"    GL.iNet GL-AR150",
		"    Packages: kmod-usb-chipidea2",
		"    hasImageMetadata: 1",
		"    SupportedDevices: glinet,gl-ar150 gl-ar150",
	}
	if got := strings.TrimRight(out, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("make info:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

func checkManifest(t *testing.T, m string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(m, "\n"), "\n")
	got := map[string]string{}
	prev := ""
	for _, l := range lines {
		n, v, ok := strings.Cut(l, " - ")
		if !ok || n <= prev {
			t.Fatalf("manifest line %q not `name - version` in sorted order:\n%s", l, m)
		}
		prev = n
		got[n] = v
	}
	for _, n := range []string{"tor", "tor-geoip", "ucert", "kmod-usb-chipidea2", "kernel", "base-files", "libevent2-7", "kmod-nft-nat", "dropbear"} {
		if got[n] == "" {
			t.Errorf("manifest lacks %s", n)
		}
	}
	for _, n := range []string{"luci", "luci-base", "ppp", "ppp-mod-pppoe", "opkg", "kmod-rt2800-soc"} {
		if got[n] != "" {
			t.Errorf("manifest has %s", n)
		}
	}
	if got["tor"] != "0.4.8.17-r1" {
		t.Errorf("tor version %q", got["tor"])
	}
}

func readImage(t *testing.T, out string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(out, ar150.ImageName("test")))
	if err != nil {
		ents, _ := os.ReadDir(out)
		t.Fatalf("%v (BIN_DIR has %v)", err, ents)
	}
	return b
}

func layout(t *testing.T, img []byte) *fwimage.Image {
	t.Helper()
	l, err := fwimage.Parse(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func unsigned(t *testing.T, img []byte) []byte {
	return img[:layout(t, img).SignedEnd()]
}

func signatureChunk(t *testing.T, img []byte) []byte {
	l := layout(t, img)
	c, ok := l.Last(fwimage.TypeSignature)
	if !ok {
		t.Fatal("no signature chunk")
	}
	b, err := fwimage.ReadChunk(bytes.NewReader(img), c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const stockAR150Metadata = `{  "metadata_version": "1.1", "compat_version": "1.0",   "supported_devices":["glinet,gl-ar150","gl-ar150"], "version": { "dist": "OpenWrt", "version": "24.10.3", "revision": "r28872-daca7c049b", "target": "ath79/generic", "board": "glinet_gl-ar150" } }`

// checkImageOutputs checks BIN_DIR after make image and returns the image.
func checkImageOutputs(t *testing.T, out, manifest, files string) []byte {
	t.Helper()
	img := readImage(t, out)
	prefix := ar150.ImagePrefix("test")
	if prefix != "openwrt-24.10.3-test-ath79-generic-glinet_gl-ar150" {
		t.Errorf("prefix %s", prefix)
	}
	for _, f := range []string{prefix + ".manifest", "profiles.json", "sha256sums", "SIMULATED"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("BIN_DIR lacks %s", f)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(out, prefix+".manifest")); string(b) != manifest {
		t.Errorf("manifest file differs from make manifest:\n%s\nvs\n%s", b, manifest)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "SIMULATED")); !bytes.Contains(b, []byte("SIMULATED")) {
		t.Error("SIMULATED file does not say so")
	}

	// Chunks: metadata (stock JSON), then a signature (ucert chain).
	l := layout(t, img)
	if len(l.Chunks) != 2 || l.Chunks[0].Type != fwimage.TypeMetadata || l.Chunks[1].Type != fwimage.TypeSignature {
		t.Fatalf("chunks: %+v", l.Chunks)
	}
	mdata, _ := fwimage.ReadChunk(bytes.NewReader(img), l.Chunks[0])
	md, js, err := fwimage.ParseMetadataChunk(mdata)
	if err != nil {
		t.Fatal(err)
	}
	if string(js) != stockAR150Metadata+"\n" && string(js) != stockAR150Metadata {
		t.Errorf("metadata JSON:\n%q\nwant\n%q", js, stockAR150Metadata)
	}
	if !md.Supports("glinet,gl-ar150") {
		t.Error("metadata does not support glinet,gl-ar150")
	}
	payload := img[:l.PayloadEnd]
	if len(payload)%(64<<10) != 4 || !bytes.HasSuffix(payload, []byte{0xde, 0xad, 0xc0, 0xde}) {
		t.Errorf("payload of %d bytes does not end in pad-rootfs + deadc0de", len(payload))
	}
	if !bytes.HasPrefix(payload, []byte("SIMULATED KERNEL")) {
		t.Error("kernel is not labelled SIMULATED KERNEL")
	}

	// The signature verifies with the fresh key its own certificate names.
	chain, err := ucert.Decode(signatureChunk(t, img))
	if err != nil || len(chain) != 2 || chain[0].Payload == nil || chain[1].Payload != nil {
		t.Fatalf("signature chunk chain: %v %d", err, len(chain))
	}
	i := bytes.Index(chain[0].Payload, []byte("untrusted comment: "))
	j := bytes.IndexByte(chain[0].Payload[i:], 0)
	pub, err := usign.ParsePublicKey(chain[0].Payload[i : i+j])
	if err != nil {
		t.Fatalf("public key in the certificate: %v", err)
	}
	// The real IB's chunk is a chain (self-issued certificate + signature),
	// as here; the image-covering signature is the last element.
	sigFile, err := ucert.SigningSignature(chain)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := usign.ParseSignature(sigFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Verify(img[:l.SignedEnd()], sig); err != nil {
		t.Fatalf("image does not verify with the local build key: %v", err)
	}
	// The certificate is signed by the same (self-issued) key.
	csig, err := usign.ParseSignature(chain[0].Signature)
	if err != nil || pub.Verify(chain[0].Payload, csig) != nil {
		t.Errorf("self-issued certificate does not verify: %v", err)
	}
	// Stripped of its signature chunk (what the builder does), the image is
	// one that imagesig signs and verifies.
	hexsum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	res := struct{ SHA256, SHA256Unsigned string }{hexsum(img), hexsum(img[:l.SignedEnd()])}
	rk, err := usign.GenerateKey(rand.Reader, "test release key")
	if err != nil {
		t.Fatal(err)
	}
	sg, err := signer.FromUsign(rk)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := imagesign.Sign(t.Context(), bytes.NewReader(img), int64(len(img)), sg)
	if err != nil {
		t.Fatal(err)
	}
	var rs bytes.Buffer
	if err := fwimage.AppendChunk(&rs, bytes.NewReader(img[:signed.SignedLen]), fwimage.TypeSignature, signed.Chunk); err != nil {
		t.Fatal(err)
	}
	kr, _ := usign.NewKeyring(rk.Public())
	if _, err := imagesig.Verify(bytes.NewReader(rs.Bytes()), int64(rs.Len()), kr, imagesig.Options{Board: "glinet,gl-ar150"}); err != nil {
		t.Errorf("re-signed image does not verify: %v", err)
	}

	// profiles.json
	var pj struct {
		ArchPackages string `json:"arch_packages"`
		Profiles     map[string]struct {
			ImagePrefix string `json:"image_prefix"`
			Images      []struct {
				Name, Sha256, Type, Filesystem string
				Sha256Unsigned                 string `json:"sha256_unsigned"`
			}
			SupportedDevices []string `json:"supported_devices"`
		}
		SourceDateEpoch int64  `json:"source_date_epoch"`
		Target          string `json:"target"`
		VersionNumber   string `json:"version_number"`
		VersionCode     string `json:"version_code"`
	}
	pjb, _ := os.ReadFile(filepath.Join(out, "profiles.json"))
	if err := json.Unmarshal(pjb, &pj); err != nil {
		t.Fatal(err)
	}
	var canon bytes.Buffer
	json.Compact(&canon, pjb)
	if canon.String() != string(pjb) {
		t.Error("profiles.json is not compact")
	}
	p := pj.Profiles["glinet_gl-ar150"]
	if pj.Target != "ath79/generic" || pj.ArchPackages != "mips_24kc" || pj.SourceDateEpoch != ar150.SourceDateEpoch || pj.VersionNumber != "24.10.3" ||
		pj.VersionCode != ar150.Revision || p.ImagePrefix != prefix || len(p.Images) != 1 || p.Images[0].Name != ar150.ImageName("test") ||
		p.Images[0].Sha256 != res.SHA256 || p.Images[0].Sha256Unsigned != res.SHA256Unsigned || p.Images[0].Type != "sysupgrade" {
		t.Errorf("profiles.json: %s\nverify result %+v", pjb, res)
	}

	// sha256sums
	sums, _ := os.ReadFile(filepath.Join(out, "sha256sums"))
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		h, name, ok := strings.Cut(line, " *")
		b, err := os.ReadFile(filepath.Join(out, name))
		s := sha256.Sum256(b)
		if !ok || err != nil || hex.EncodeToString(s[:]) != h {
			t.Errorf("sha256sums line %q does not match", line)
		}
		n++
	}
	if n != 4 {
		t.Errorf("sha256sums has %d lines:\n%s", n, sums)
	}

	checkSquashfs(t, payload, files)
	return img
}

// checkSquashfs unpacks the root filesystem with the real unsquashfs.
func checkSquashfs(t *testing.T, payload []byte, files string) {
	t.Helper()
	off := bytes.Index(payload, []byte("hsqs"))
	if off <= 0 || off%(64<<10) != 0 {
		t.Fatalf("no squashfs at a 64 KiB boundary after the kernel (found at %d)", off)
	}
	d := t.TempDir()
	fsimg := filepath.Join(d, "root.squashfs")
	os.WriteFile(fsimg, payload[off:], 0o644)
	root := filepath.Join(d, "root")
	cmd := exec.Command("unsquashfs", "-no-xattrs", "-d", root, fsimg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("unsquashfs: %v\n%s", err, out)
	}
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Errorf("rootfs lacks %s: %v", p, err)
		}
		return string(b)
	}
	if !strings.Contains(read("etc/banner"), "SIMULATED OpenWrt ImageBuilder - not a real firmware") {
		t.Error("banner does not say SIMULATED")
	}
	if !strings.Contains(read("etc/openwrt_release"), "DISTRIB_RELEASE='24.10.3'") {
		t.Error("openwrt_release")
	}
	if !strings.Contains(read("usr/sbin/tor"), "0.4.8.17") {
		t.Error("tor placeholder")
	}
	read("usr/share/tor/geoip")
	read("usr/bin/ucert")
	if read("etc/torwrt/config.json") != `{"overlay":"from FILES"}`+"\n" {
		t.Error("FILES content not in the rootfs")
	}
	fi, err := os.Stat(filepath.Join(root, "etc/torwrt/config.json"))
	if err == nil && fi.ModTime().Year() != 2001 {
		t.Errorf("FILES mtime not kept: %s", fi.ModTime())
	}
	if l, err := os.Readlink(filepath.Join(root, "etc/torwrt.json")); err != nil || l != "torwrt/config.json" {
		t.Errorf("FILES symlink: %q %v", l, err)
	}
	if fi, err := os.Stat(filepath.Join(root, "usr/sbin/torwrt-verify")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("FILES executable: %v %v", fi, err)
	}
	for _, gone := range []string{"www/index.html", "bin/opkg", "usr/sbin/pppd", "etc/rc.d/S19dnsmasq", "etc/rc.d/K10dnsmasq", "etc/rc.d/S35odhcpd"} {
		if _, err := os.Lstat(filepath.Join(root, gone)); err == nil {
			t.Errorf("rootfs has %s", gone)
		}
	}
	for _, l := range []string{"etc/rc.d/S19dropbear", "etc/rc.d/S50tor", "etc/rc.d/S60torwrt", "etc/rc.d/S19firewall"} {
		if _, err := os.Lstat(filepath.Join(root, l)); err != nil {
			t.Errorf("rootfs lacks the enabled service link %s", l)
		}
	}
	if !regexp.MustCompile(`Package: tor\nVersion: 0.4.8.17-r1\nDepends: [^\n]*\nStatus: install user installed\nArchitecture: mips_24kc\nInstalled-Time: [0-9]+\n`).MatchString(read("usr/lib/opkg/status")) {
		t.Error("opkg status lacks tor")
	}
	if fi, err := os.Stat(filepath.Join(root, "tmp")); err != nil || fi.Mode()&os.ModeSticky == 0 {
		t.Errorf("/tmp is not sticky: %v", fi)
	}
}

// The host runner runs the same IB tree with the host's make and
// mksquashfs (development mode), and the feed is checked.
func TestSimIBHost(t *testing.T) {
	requireTools(t, checkTools...)
	e := newEnv(t, "host")
	stdout, stderr, err := e.run(t, nil, "", "", "info")
	if err != nil {
		t.Fatalf("make info: %v\n%s", err, stderr)
	}
	checkInfo(t, stdout)
	pk := "PACKAGES=tor tor-geoip ucert -luci -ppp -ppp-mod-pppoe -opkg"
	manifest, stderr, err := e.run(t, nil, "", "", "manifest", pk)
	if err != nil {
		t.Fatalf("make manifest: %v\n%s", err, stderr)
	}
	checkManifest(t, manifest)
	files := filesTree(t)
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	os.Chtimes(filepath.Join(files, "etc/torwrt/config.json"), old, old)
	out := dir(t, "hostout")
	if _, stderr, err := e.run(t, nil, files, out, "image", "PROFILE=glinet_gl-ar150", pk, "EXTRA_IMAGE_NAME=test", "DISABLED_SERVICES=dnsmasq odhcpd"); err != nil {
		t.Fatalf("make image (host): %v\n%s", err, stderr)
	}
	checkImageOutputs(t, out, manifest, files)

	// A package whose bytes do not match the index is refused.
	ipks, _ := filepath.Glob(filepath.Join(e.feed, "tor_*.ipk"))
	if len(ipks) != 1 {
		t.Fatalf("tor ipk: %v", ipks)
	}
	f, _ := os.OpenFile(ipks[0], os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("tampered"))
	f.Close()
	_, _, err = e.run(t, nil, "", dir(t, "hostout2"), "image", pk)
	var ee *container.ExitError
	if !errors.As(err, &ee) || !strings.Contains(ee.Stderr, "package tor:") || !strings.Contains(ee.Stderr, "Packages index") {
		t.Errorf("tampered ipk: %v", err)
	}
	// A tampered index fails its signature check.
	idx := filepath.Join(e.feed, "Packages")
	b, _ := os.ReadFile(idx)
	os.WriteFile(idx, bytes.Replace(b, []byte("0.4.8.17-r1"), []byte("0.4.8.18-r1"), 1), 0o644)
	_, _, err = e.run(t, nil, "", "", "manifest", pk)
	if !errors.As(err, &ee) || !strings.Contains(ee.Stderr, "signature") {
		t.Errorf("tampered index: %v", err)
	}
}

// Without a local feed the IB's default repositories.conf needs the network,
// which the simulated IB (like a hermetic real one) does not have.
func TestSimIBDefaultFeedsNeedNetwork(t *testing.T) {
	requireTools(t, buildTools...)
	img := pulled(t)
	r, err := container.NewRunner(t.Context(), "host", container.RunnerOptions{WorkRoot: dir(t, "hostrun")})
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	err = r.Run(context.Background(), container.RunSpec{Name: "torwrt-ibsim-nofeed", Image: img, Argv: []string{"make", "manifest"}, Stderr: &stderr, Stdout: io.Discard})
	var ee *container.ExitError
	if !errors.As(err, &ee) || !strings.Contains(ee.Stderr, "no network") || !strings.Contains(ee.Stderr, "downloads.openwrt.org") {
		t.Errorf("default feeds: %v\n%s", err, stderr.String())
	}
}

// The GL-MT300A simulation (ramips/mt7620, mipsel, no kernel padding) runs
// through the host runner.
func TestSimIBMT300AHost(t *testing.T) {
	requireTools(t, buildTools...)
	mt := mustTarget("gl-mt300a-24.10")
	vimg, err := BuildImage(context.Background(), mt, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	refs, stop, err := Serve(context.Background(), map[string]v1.Image{mt.Profile: vimg})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	img, err := (&container.Cache{Dir: filepath.Join(tmpRoot, "cache"), Insecure: true}).Pull(context.Background(), refs[mt.Profile])
	if err != nil {
		t.Fatal(err)
	}
	r, err := container.NewRunner(t.Context(), "host", container.RunnerOptions{WorkRoot: dir(t, "hostrun")})
	if err != nil {
		t.Fatal(err)
	}
	feed, out := dir(t, "feed"), dir(t, "out")
	if _, err := Packages(mt, feed); err != nil {
		t.Fatal(err)
	}
	repos := filepath.Join(dir(t, "repos"), "repositories.conf")
	os.WriteFile(repos, []byte("src/gz sim file://"+feed+"\n"), 0o644)
	run := func(args ...string) string {
		var stdout, stderr bytes.Buffer
		err := r.Run(context.Background(), container.RunSpec{Name: fmt.Sprintf("torwrt-ibsim-mt-%d", len(args)), Image: img,
			Argv:   append([]string{"make"}, args...),
			Mounts: []container.Mount{{Source: repos, Target: "/builder/repositories.conf", ReadOnly: true}},
			Stdout: &stdout, Stderr: &stderr})
		if err != nil {
			t.Fatalf("make %v: %v\n%s", args, err, stderr.String())
		}
		return stdout.String()
	}
	info := run("info")
	for _, want := range []string{`Current Target: "ramips/mt7620"`, `Current Architecture: "mipsel"`, "glinet_gl-mt300a:\n    GL.iNet GL-MT300A\n    Packages: kmod-usb2 kmod-usb-ohci\n", "SupportedDevices: glinet,gl-mt300a gl-mt300a"} {
		if !strings.Contains(info, want) {
			t.Errorf("make info lacks %q:\n%s", want, info)
		}
	}
	run("image", "PROFILE=glinet_gl-mt300a", "PACKAGES=tor", "BIN_DIR="+out)
	b, err := os.ReadFile(filepath.Join(out, "openwrt-24.10.3-ramips-mt7620-glinet_gl-mt300a-squashfs-sysupgrade.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if mt.ImageName("") != "openwrt-24.10.3-ramips-mt7620-glinet_gl-mt300a-squashfs-sysupgrade.bin" {
		t.Errorf("ImageName %s", mt.ImageName(""))
	}
	l := layout(t, b)
	md, _, err := fwimage.ParseMetadataChunk(mustChunk(t, b, l.Chunks[0]))
	if err != nil || md.Version.Board != "glinet_gl-mt300a" || md.Version.Target != "ramips/mt7620" || !md.Supports("glinet,gl-mt300a") {
		t.Errorf("metadata %+v %v", md, err)
	}
	// No pad-to 64k after the kernel: the squashfs follows it directly.
	k := len(fakeKernel(mt))
	if string(b[k:k+4]) != "hsqs" {
		t.Errorf("squashfs does not start right after the %d-byte kernel", k)
	}
	if manifest, _ := os.ReadFile(filepath.Join(out, "openwrt-24.10.3-ramips-mt7620-glinet_gl-mt300a.manifest")); !bytes.Contains(manifest, []byte("kmod-usb-ohci - ")) || !bytes.Contains(manifest, []byte("kmod-rt2800-soc - ")) {
		t.Errorf("manifest:\n%s", manifest)
	}
}

func mustChunk(t *testing.T, img []byte, c fwimage.Chunk) []byte {
	t.Helper()
	b, err := fwimage.ReadChunk(bytes.NewReader(img), c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
