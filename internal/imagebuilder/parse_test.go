package imagebuilder

import (
	"strings"
	"testing"
)

const infoOut = `make[1]: Entering directory '/builder'
Current Target: "ath79/generic"
Current Architecture: "mips"
Current Revision: "r28872-daca7c049b"
Default Packages: base-files ca-bundle dropbear firewall4 opkg
Available Profiles:

glinet_gl-ar150:
    GL.iNet GL-AR150
    Packages: kmod-usb-chipidea2
    hasImageMetadata: 1
    SupportedDevices: glinet,gl-ar150 gl-ar150
glinet_gl-ar300m16:
    GL.iNet GL-AR300M16
    Packages: kmod-usb2
    hasImageMetadata: 1
    SupportedDevices: glinet,gl-ar300m16
`

func TestParseInfo(t *testing.T) {
	info, err := ParseInfo([]byte(infoOut))
	if err != nil {
		t.Fatal(err)
	}
	if info.Target != "ath79/generic" || info.Architecture != "mips" || info.Revision != "r28872-daca7c049b" {
		t.Fatalf("header: %+v", info)
	}
	if strings.Join(info.DefaultPackages, " ") != "base-files ca-bundle dropbear firewall4 opkg" {
		t.Fatalf("default packages %v", info.DefaultPackages)
	}
	p, ok := info.Profile("glinet_gl-ar150")
	if !ok || p.Title != "GL.iNet GL-AR150" || !p.HasImageMetadata ||
		strings.Join(p.SupportedDevices, " ") != "glinet,gl-ar150 gl-ar150" || p.Packages[0] != "kmod-usb-chipidea2" {
		t.Fatalf("profile: %+v", p)
	}
	if len(info.Profiles) != 2 {
		t.Fatalf("want 2 profiles, got %d", len(info.Profiles))
	}
	if _, err := ParseInfo([]byte("nothing here\n")); err == nil {
		t.Fatal("want error for output without profiles")
	}
}

func TestParseManifest(t *testing.T) {
	pk, err := ParseManifest([]byte("tor - 0.4.8.17-r1\nbase-files - 1647-r28872\nmake: leaving\n"))
	if err != nil || len(pk) != 2 || pk[0].Name != "base-files" || pk[1].Version != "0.4.8.17-r1" {
		t.Fatalf("%v %v", pk, err)
	}
	if _, err := ParseManifest([]byte("tor - 1\ntor - 2\n")); err == nil {
		t.Fatal("duplicate package accepted")
	}
	if _, err := ParseManifest([]byte("")); err == nil {
		t.Fatal("empty manifest accepted")
	}
	// apk's `apk list --manifest`: "name version"; make's two-word chatter
	// is not a package.
	pk, err = ParseManifest([]byte("Building images\napk-mbedtls 3.0.5-r1\nkmod-nft-fib 6.12.94-r1\nbase-files 1678~a1b2c3d4e5-r2\n"))
	if err != nil || len(pk) != 3 || pk[0].Name != "apk-mbedtls" || pk[1].Version != "1678~a1b2c3d4e5-r2" || pk[2].Version != "6.12.94-r1" {
		t.Fatalf("apk manifest: %v %v", pk, err)
	}
	if _, err := ParseManifest([]byte("tor 1\ntor - 2\n")); err == nil {
		t.Fatal("a package listed in both formats was accepted twice")
	}
}

func TestParseSHA256Sums(t *testing.T) {
	h := strings.Repeat("a", 64)
	m, err := ParseSHA256Sums([]byte(h + " *openwrt-x.bin\n"))
	if err != nil || m["openwrt-x.bin"] != h {
		t.Fatalf("%v %v", m, err)
	}
	for _, bad := range []string{"abc *x\n", h + " *../x\n", h + "\n"} {
		if _, err := ParseSHA256Sums([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestProfilesJSONSysupgrade(t *testing.T) {
	data := `{"metadata_version":1,"profiles":{"glinet_gl-ar150":{"images":[{"filesystem":"squashfs","name":"openwrt-a-sysupgrade.bin","sha256":"x","sha256_unsigned":"y","type":"sysupgrade"}],"supported_devices":["glinet,gl-ar150"]}},"target":"ath79/generic"}`
	p, err := ParseProfilesJSON([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	img, err := p.Sysupgrade("glinet_gl-ar150")
	if err != nil || img.Name != "openwrt-a-sysupgrade.bin" {
		t.Fatalf("%v %v", img, err)
	}
	if _, err := p.Sysupgrade("nope"); err == nil {
		t.Fatal("unknown profile accepted")
	}
	evil := strings.Replace(data, "openwrt-a-sysupgrade.bin", "../../etc/shadow", 1)
	p, _ = ParseProfilesJSON([]byte(evil))
	if _, err := p.Sysupgrade("glinet_gl-ar150"); err == nil {
		t.Fatal("path in image name accepted")
	}
}

func TestCheckPackagesRefusesMetacharacters(t *testing.T) {
	for _, bad := range []string{"tor;reboot", "$(id)", "a b", "`x`", "tor\n", "-", "", "../x", "Tor"} {
		if err := checkPackages([]string{bad}); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	if err := checkPackages([]string{"tor", "-opkg", "-luci*", "kmod-usb2", "libstdcpp6", "ca-bundle"}); err != nil {
		t.Fatal(err)
	}
}

func TestTailBuffer(t *testing.T) {
	tb := &tailBuffer{max: 2}
	tb.Write([]byte("a\nb\nc"))
	tb.Write([]byte("d\ne\n"))
	if got := tb.String(); got != "cd\ne" {
		t.Fatalf("tail = %q", got)
	}
}
