package profile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func repoProfiles(t *testing.T) string {
	t.Helper()
	return filepath.Join("..", "..", "profiles")
}

func TestLoadShippedProfiles(t *testing.T) {
	// The 25.12 defaults remove apk, the 24.10 variants opkg: no package
	// manager at runtime either way.
	runtimePM := map[string]string{"gl-ar150": "-apk-mbedtls", "gl-mt300a": "-apk-mbedtls", "gl-ar150-24.10": "-opkg", "gl-mt300a-24.10": "-opkg"}
	for id, pm := range runtimePM {
		p, err := Load(repoProfiles(t), id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if p.SHA256 == "" || p.Board == "" || !strings.HasPrefix(p.Board, "glinet,") {
			t.Errorf("%s: incomplete profile %+v", id, p)
		}
		n, err := p.ImageSizeBytes()
		if err != nil || n < 15*1024*1024 {
			t.Errorf("%s: size limit %d, %v", id, n, err)
		}
		words := p.MakePackages()
		if !contains(words, pm) || !contains(words, "tor") {
			t.Errorf("%s: make packages %v lack %s or tor", id, words, pm)
		}
		if primary := !strings.HasSuffix(id, "-24.10"); p.Primary() != primary || p.DeviceID() != strings.TrimSuffix(id, "-24.10") {
			t.Errorf("%s: primary %v, device %s", id, p.Primary(), p.DeviceID())
		}
	}
	ids, err := List(repoProfiles(t))
	if err != nil || strings.Join(ids, " ") != "gl-ar150 gl-ar150-24.10 gl-mt300a gl-mt300a-24.10 gl-mt300a-lede17 gl-mt300n-lede17" {
		t.Fatalf("List = %v, %v", ids, err)
	}
	// The real-ImageBuilder test profile: an imported archive, marked as
	// no release target (--all leaves it out).
	p, err := Load(repoProfiles(t), "gl-mt300a-lede17")
	if err != nil {
		t.Fatal(err)
	}
	if p.TestProfile == "" || !p.ImageBuilder.Imported() || p.ImageBuilder.Ref != "" || p.Board != "gl-mt300a" {
		t.Errorf("gl-mt300a-lede17: %+v", p)
	}
	// Its committed lock pins the imported image by digest and every
	// bundled package by sha256.
	l, err := ReadLock(p.LockPath(), p)
	if err != nil {
		t.Fatal(err)
	}
	for _, pk := range l.Packages {
		if !pk.Bundled || len(pk.SHA256) != 64 || pk.Size <= 0 {
			t.Errorf("gl-mt300a-lede17 lock: %+v is not a bundled package pinned by sha256", pk)
		}
	}
	// A second device of the same ImageBuilder, added as data only: its
	// own board, the same imported image, a test profile too.
	p2, err := Load(repoProfiles(t), "gl-mt300n-lede17")
	if err != nil {
		t.Fatal(err)
	}
	l2, err := ReadLock(p2.LockPath(), p2)
	if err != nil {
		t.Fatal(err)
	}
	if p2.TestProfile == "" || p2.Primary() || p2.Board != "gl-mt300n" || p2.IBProfile != "gl-mt300n" || l2.Image.Ref != l.Image.Ref {
		t.Errorf("gl-mt300n-lede17: board %q, ib profile %q, image %s (gl-mt300a-lede17's: %s)", p2.Board, p2.IBProfile, l2.Image.Ref, l.Image.Ref)
	}
}

func contains(s []string, w string) bool {
	for _, x := range s {
		if x == w {
			return true
		}
	}
	return false
}

func TestUnknownProfile(t *testing.T) {
	_, err := Load(repoProfiles(t), "gl-nope")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "gl-ar150") {
		t.Fatalf("want ErrNotFound listing known profiles, got %v", err)
	}
	if _, err := Load(repoProfiles(t), "../etc"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("path-like id: %v", err)
	}
}

func TestBadProfiles(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(repoProfiles(t), "gl-ar150", "profile.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, old, new, want string
	}{
		{"shell in package", "add: [tor, ucert", "add: [tor, 'ucert;rm -rf /'", "packages.add"},
		{"dollar in package", "add: [tor, ucert", "add: [tor, '$(reboot)'", "packages.add"},
		{"unknown key", "bridge_relay: false", "bridge_relay: false\nbridge_realy: true", "field bridge_realy not found"},
		{"bad epoch", "source_date_epoch: 1780000000", "source_date_epoch: 0", "openwrt.source_date_epoch"},
		{"board not supported", `supported_devices: ["glinet,gl-ar150", gl-ar150]`, "supported_devices: [gl-ar150]", "supported_devices"},
		{"bad size", "image_size_limit: 16000k", "image_size_limit: lots", "image_size_limit"},
		{"hard float", "gomips: softfloat", "gomips: hardfloat", "daemon.gomips"},
		{"bad revision", "revision: r33051-f5dae5ece4", "revision: latest", "openwrt.revision"},
		{"syntax", "id: gl-ar150", "id: [gl-ar150", "profile.yaml"},
		{"daemon for the wrong endianness", "goarch: mips\n", "goarch: mipsle\n", "daemon.goarch"},
		{"ref and archive", "ref: ghcr.io/openwrt/imagebuilder:ath79-generic-v25.12.5", "ref: ghcr.io/openwrt/imagebuilder:ath79-generic-v24.10.3\n  archive_sha256: " + strings.Repeat("a", 64), "not both"},
		{"no image builder", "ref: ghcr.io/openwrt/imagebuilder:ath79-generic-v25.12.5", "ref: ''", "imagebuilder.ref"},
		{"archive short hash", "ref: ghcr.io/openwrt/imagebuilder:ath79-generic-v25.12.5", "archive: ib.tar.zst\n  archive_sha256: abc", "imagebuilder.archive_sha256"},
		{"archive path", "ref: ghcr.io/openwrt/imagebuilder:ath79-generic-v25.12.5", "archive: ../ib.tar.zst\n  archive_sha256: " + strings.Repeat("a", 64), "imagebuilder.archive"},
		{"archive not a tar", "ref: ghcr.io/openwrt/imagebuilder:ath79-generic-v25.12.5", "archive: ib.zip\n  archive_sha256: " + strings.Repeat("a", 64), "imagebuilder.archive"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := strings.Replace(string(good), c.old, c.new, 1)
			if data == string(good) {
				t.Fatalf("test bug: %q not in profile", c.old)
			}
			_, err := Parse("profiles/gl-ar150/profile.yaml", []byte(data))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want error mentioning %q, got %v", c.want, err)
			}
			if !strings.Contains(err.Error(), "profiles/gl-ar150/profile.yaml") {
				t.Errorf("error does not name the file: %v", err)
			}
		})
	}
}

func TestErrorHasLine(t *testing.T) {
	data := "id: gl-ar150\ntitle: x\nopenwrt:\n  version: 24.10.3\n  revision: nope\n"
	_, err := Parse("p.yaml", []byte(data))
	var pe *Error
	if !errors.As(err, &pe) || pe.Line != 5 || pe.Field != "openwrt.revision" {
		t.Fatalf("want p.yaml:5 openwrt.revision, got %v", err)
	}
}

func testLock(p *Profile) *Lock {
	return &Lock{
		LockVersion: LockVersion, Profile: p.ID, ProfileSHA256: p.SHA256,
		Image: LockedImage{Ref: "ghcr.io/openwrt/imagebuilder@sha256:" + strings.Repeat("ab", 32)},
		Packages: []LockedPackage{{
			Name: "tor", Version: "0.4.8.17-r1", Arch: "mips_24kc", Filename: "tor_0.4.8.17-r1_mips_24kc.ipk",
			Size: 10, SHA256: strings.Repeat("0f", 32),
		}},
	}
}

func TestLockChecks(t *testing.T) {
	p, err := Load(repoProfiles(t), "gl-ar150")
	if err != nil {
		t.Fatal(err)
	}
	if err := testLock(p).Check(p); err != nil {
		t.Fatalf("good lock: %v", err)
	}
	cases := []struct {
		name string
		mut  func(l *Lock)
		want string
	}{
		{"tag only", func(l *Lock) { l.Image.Ref = "ghcr.io/openwrt/imagebuilder:ath79-generic-v25.12.5" }, "not pinned by digest"},
		{"short digest", func(l *Lock) { l.Image.Ref = "ghcr.io/openwrt/imagebuilder@sha256:abcd" }, "not pinned by digest"},
		{"profile changed", func(l *Lock) { l.ProfileSHA256 = strings.Repeat("0", 64) }, "imgbuild lock --profile gl-ar150"},
		{"bad package name", func(l *Lock) { l.Packages[0].Name = "tor`id`" }, "invalid name"},
		{"bad hash", func(l *Lock) { l.Packages[0].SHA256 = "xyz" }, "sha256"},
		{"http url", func(l *Lock) { l.Packages[0].URL = "http://example.org/tor.ipk" }, "https"},
		{"dup", func(l *Lock) { l.Packages = append(l.Packages, l.Packages[0]) }, "twice"},
		{"traversal filename", func(l *Lock) { l.Packages[0].Filename = "../../etc/passwd.ipk" }, "filename"},
		{"bundled with url", func(l *Lock) { l.Packages[0].Bundled, l.Packages[0].URL = true, "https://example.org/tor.ipk" }, "has no url"},
		{"bundled with bad hash", func(l *Lock) { l.Packages[0].Bundled, l.Packages[0].SHA256 = true, "xyz" }, "must all be valid"},
		{"bundled file without hash", func(l *Lock) { l.Packages[0].Bundled, l.Packages[0].SHA256 = true, "" }, "needs its sha256"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := testLock(p)
			c.mut(l)
			if err := l.Check(p); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want %q, got %v", c.want, err)
			}
		})
	}
}

func TestMissingLockSaysWhatToRun(t *testing.T) {
	p, err := Load(repoProfiles(t), "gl-ar150")
	if err != nil {
		t.Fatal(err)
	}
	_, err = ReadLock(filepath.Join(t.TempDir(), "lock.json"), p)
	if !errors.Is(err, ErrNoLock) || !strings.Contains(err.Error(), "imgbuild lock --profile gl-ar150") {
		t.Fatalf("got %v", err)
	}
}

func TestLockRoundTripAndDiff(t *testing.T) {
	p, _ := Load(repoProfiles(t), "gl-ar150")
	l := testLock(p)
	data, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "lock.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	back, err := ReadLock(path, p)
	if err != nil {
		t.Fatal(err)
	}
	if d := back.Diff(l); len(d) != 0 {
		t.Fatalf("round trip diff: %v", d)
	}
	n := testLock(p)
	n.Packages[0].Version = "0.4.8.18-r1"
	if d := n.Diff(l); len(d) != 1 || !strings.Contains(d[0], "0.4.8.17-r1 -> 0.4.8.18-r1") {
		t.Fatalf("diff = %v", d)
	}
}
