package build

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/fwimage"
	"github.com/torwrt/torwrt/internal/profile"
)

// The check step runs on bytes alone: these inputs are crafted, no
// container and no ImageBuilder involved.

// checkInput is a consistent ImageBuilder output for gl-ar150's committed
// profile and lock: a manifest listing exactly the locked packages, an
// image whose metadata names the board and version, and its sha256sums.
// The payload is not a root filesystem, so a check that passes everything
// else stops at reading the image's package database.
func checkInput(t *testing.T, mut func(p *profile.Profile, meta *fwimage.Metadata, manifest *[]string)) CheckInput {
	t.Helper()
	p, err := profile.Load(filepath.Join(root, "profiles"), "gl-ar150")
	if err != nil {
		t.Fatal(err)
	}
	// A lock pinning the profile's packages (profiles/gl-ar150 commits no
	// lock: builds lock it against the simulated ImageBuilder).
	l := &profile.Lock{LockVersion: 1, Profile: p.ID, ProfileSHA256: p.SHA256, PackageManager: profile.APK}
	for i, name := range append([]string{"base-files", "kernel"}, p.Packages.Add...) {
		l.Packages = append(l.Packages, profile.LockedPackage{Name: name, Version: fmt.Sprintf("1.%d-r0", i), SHA256: strings.Repeat("ab", 32)})
	}
	var lines []string
	for _, pk := range l.Packages {
		lines = append(lines, pk.Name+" "+pk.Version)
	}
	meta := &fwimage.Metadata{
		MetadataVersion: "1.1", CompatVersion: "1.0", SupportedDevices: []string{p.Board},
		Version: fwimage.Version{Dist: "OpenWrt", Version: p.OpenWrt.Version, Revision: "r1-test", Target: "ath79/generic", Board: "glinet_gl-ar150"},
	}
	pc := *p
	if mut != nil {
		mut(&pc, meta, &lines)
	}
	metaJSON, err := meta.MarshalStock()
	if err != nil {
		t.Fatal(err)
	}
	var img bytes.Buffer
	payload := bytes.Repeat([]byte{0x5a}, 4096)
	if err := fwimage.AppendChunk(&img, bytes.NewReader(payload), fwimage.TypeMetadata, fwimage.MetadataChunk(metaJSON)); err != nil {
		t.Fatal(err)
	}
	name := "openwrt-ath79-generic-glinet_gl-ar150-squashfs-sysupgrade.bin"
	return CheckInput{
		Profile: &pc, Lock: l, ImageName: name, Image: img.Bytes(),
		Sums:     fmt.Appendf(nil, "%s *%s\n", sha256Hex(img.Bytes()), name),
		Manifest: []byte(strings.Join(lines, "\n") + "\n"),
		Firewall: []byte("table inet torwrt {\n}\n"),
	}
}

func TestCheck(t *testing.T) {
	cases := []struct {
		name string
		mut  func(p *profile.Profile, meta *fwimage.Metadata, manifest *[]string)
		in   func(in *CheckInput)
		is   error
		want []string
	}{
		{name: "consistent output reaches the image's package database",
			want: []string{"reading the image's root filesystem"}},
		{name: "image differs from sha256sums", in: func(in *CheckInput) { in.Image = append(bytes.Clone(in.Image), 0) },
			want: []string{"its sha256sums says"}},
		{name: "package installed but not pinned", mut: func(_ *profile.Profile, _ *fwimage.Metadata, m *[]string) {
			*m = append(*m, "extra-pkg 1.0-r1")
		}, is: ErrDrift, want: []string{"extra-pkg 1.0-r1 is installed but not pinned", "run: imgbuild lock --profile gl-ar150"}},
		{name: "package pinned but not installed", mut: func(_ *profile.Profile, _ *fwimage.Metadata, m *[]string) {
			*m = (*m)[1:]
		}, is: ErrDrift, want: []string{"is pinned but not installed"}},
		{name: "package at another version", mut: func(_ *profile.Profile, _ *fwimage.Metadata, m *[]string) {
			name, _, _ := strings.Cut((*m)[0], " ")
			(*m)[0] = name + " 999.0-r0"
		}, is: ErrDrift, want: []string{"installed at 999.0-r0, lock pins"}},
		{name: "wrong board", mut: func(_ *profile.Profile, meta *fwimage.Metadata, _ *[]string) {
			meta.SupportedDevices = []string{"glinet,gl-mt300a"}
		}, want: []string{`not the profile's board "glinet,gl-ar150"`}},
		{name: "wrong OpenWrt version", mut: func(_ *profile.Profile, meta *fwimage.Metadata, _ *[]string) {
			meta.Version.Version = "23.05.0"
		}, want: []string{"image metadata says OpenWrt 23.05.0"}},
		{name: "over the size limit", mut: func(p *profile.Profile, _ *fwimage.Metadata, _ *[]string) {
			p.ImageSizeLimit = "2k"
		}, is: ErrTooBig, want: []string{"4096 bytes, limit 2048"}},
		{name: "no metadata chunk", in: func(in *CheckInput) {
			in.Image = bytes.Repeat([]byte{0x5a}, 4096)
			in.Sums = fmt.Appendf(nil, "%s *%s\n", sha256Hex(in.Image), in.ImageName)
		}, want: []string{"no metadata chunk"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := checkInput(t, c.mut)
			if c.in != nil {
				c.in(&in)
			}
			_, err := Check(in)
			if err == nil {
				t.Fatal("check passed")
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("want %v, got %v", c.is, err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
		})
	}
}

// A firewall the installed kernel modules cannot load fails a release
// profile and warns for a test profile.
func TestCheckFirewallModules(t *testing.T) {
	in := checkInput(t, func(_ *profile.Profile, _ *fwimage.Metadata, m *[]string) {
		for i, l := range *m {
			if strings.HasPrefix(l, "kmod-nft-fib ") {
				*m = append((*m)[:i:i], (*m)[i+1:]...)
				return
			}
		}
		t.Fatal("the lock has no kmod-nft-fib")
	})
	in.Lock.Packages = func() []profile.LockedPackage {
		var out []profile.LockedPackage
		for _, pk := range in.Lock.Packages {
			if pk.Name != "kmod-nft-fib" {
				out = append(out, pk)
			}
		}
		return out
	}()
	in.Firewall = []byte("table inet torwrt {\n  chain c {\n    fib daddr type local accept\n  }\n}\n")
	_, err := Check(in)
	if err == nil || !strings.Contains(err.Error(), "firewall kernel modules") || !strings.Contains(err.Error(), "kmod-nft-fib") {
		t.Fatalf("release profile: %v", err)
	}
	p := *in.Profile
	p.TestProfile = "a test profile"
	in.Profile = &p
	_, err = Check(in)
	if err == nil || !strings.Contains(err.Error(), "reading the image's root filesystem") {
		t.Fatalf("test profile: want only the package database to fail, got %v", err)
	}
}
