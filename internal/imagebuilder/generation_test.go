package imagebuilder

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseCapabilities(t *testing.T) {
	// Cut from the real LEDE 17.01.4 (GL.iNet) and OpenWrt 24.10 Makefiles.
	lede := "_call_info: FORCE\n\techo 'Current Target: \"$(BOARD)\"'\n\nimage:\nifneq ($(PROFILE),)\n"
	owrt := "manifest: FORCE\n\t$(MAKE) -s _check_profile\n\nimage:\n\t$(if $(DISABLED_SERVICES),DISABLED_SERVICES=\"$(DISABLED_SERVICES)\")\n"
	if c := ParseCapabilities([]byte(lede)); c.ManifestTarget || c.DisabledServices {
		t.Errorf("LEDE 17.01: %+v", c)
	}
	if c := ParseCapabilities([]byte(owrt)); !c.ManifestTarget || !c.DisabledServices {
		t.Errorf("OpenWrt 24.10: %+v", c)
	}
	// The install sub-make, as both spell it, and as a recipe line only.
	for _, mk := range []string{"_call_image:\n\t$(MAKE) package_install\n\npackage_install: FORCE\n", "x:\n\t@$(MAKE) -s package_install\npackage_install:\n"} {
		if c := ParseCapabilities([]byte(mk)); !c.InstallTarget {
			t.Errorf("%q: no install target found", mk)
		}
	}
	for _, mk := range []string{"image:\n\topkg install x\n", "# $(MAKE) package_install\npackage_install:\n", "x:\n\t$(MAKE) package_install\n"} {
		if c := ParseCapabilities([]byte(mk)); c.InstallTarget {
			t.Errorf("%q: taken for an install sub-make", mk)
		}
	}
	// A mention of "manifest:" inside a recipe is not a target.
	if c := ParseCapabilities([]byte("image:\n\techo manifest: x\n")); c.ManifestTarget {
		t.Errorf("recipe text taken for a target: %+v", c)
	}
}

func TestOutputs(t *testing.T) {
	write := func(dir string, files ...string) {
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	// LEDE 17.01: no profiles.json; the image is found by name.
	lede := t.TempDir()
	write(lede, "lede-ramips-mt7620-gl-mt300a-squashfs-sysupgrade.bin", "lede-ramips-mt7620-device-gl-mt300a.manifest", "sha256sums")
	out, err := Outputs(lede, "gl-mt300a")
	if err != nil || out.Sysupgrade != "lede-ramips-mt7620-gl-mt300a-squashfs-sysupgrade.bin" || out.FromProfilesJSON || string(out.Manifest) != "lede-ramips-mt7620-device-gl-mt300a.manifest" {
		t.Fatalf("LEDE outputs: %+v %v", out, err)
	}
	if _, err := Outputs(lede, "gl-mt300n"); err == nil || !strings.Contains(err.Error(), "no *-gl-mt300n-*-squashfs-sysupgrade.bin") {
		t.Errorf("another profile: %v", err)
	}
	write(lede, "lede-ramips-mt7620-gl-mt300a-v2-squashfs-sysupgrade.bin")
	if _, err := Outputs(lede, "gl-mt300a"); err == nil || !strings.Contains(err.Error(), "2 files match") {
		t.Errorf("two candidates: %v", err)
	}
	two := t.TempDir()
	write(two, "a-gl-mt300a-squashfs-sysupgrade.bin", "a.manifest", "b.manifest")
	if _, err := Outputs(two, "gl-mt300a"); err == nil || !strings.Contains(err.Error(), "2 files match *.manifest") {
		t.Errorf("two manifests: %v", err)
	}
}

func TestDiagnose(t *testing.T) {
	for _, tc := range []struct{ out, want string }{
		// LEDE 17.01 prints this on stdout and exits 1.
		{"Profile \"gl-ar150\" does not exist!\nUse \"make info\" to get a list of available profile names.\n", `no profile "gl-ar150"`},
		{"make: *** No rule to make target 'manifest'.  Stop.\n", `no make target "manifest"`},
		{"Collected errors:\n * opkg_install_cmd: Cannot install package tor-fake.\n * Unknown package 'tor-fake'.\n", `package "tor-fake"`},
		{"ERROR: unable to select packages:\n  tor-fake (no such package):\n    required by: world[tor-fake]\n", `package "tor-fake"`},
		{"Prerequisite check failed. Use FORCE=1 to override.\n", "prerequisite check"},
		{" * pkg_hash_check_unresolved: cannot find dependency libfoo for tor\n", `package "libfoo"`},
		{"all fine until the disk broke\n", ""},
	} {
		got := Diagnose(tc.out)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("Diagnose(%q) = %q, want it to contain %q", tc.out, got, tc.want)
		}
	}
}
