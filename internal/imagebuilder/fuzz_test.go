package imagebuilder

import (
	"os"
	"sort"
	"strings"
	"testing"
)

// FuzzParseOutputs feeds one input to every parser of what an ImageBuilder
// writes or prints (its output is as untrusted as the image it runs): none
// may panic, and what they accept keeps the properties the build relies on.
func FuzzParseOutputs(f *testing.F) {
	for _, p := range []string{"testdata/lede-17.01.4-gl-mt300a.manifest", "testdata/lede-17.01.4-sha256sums"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("Current Target: \"ath79/generic\"\nCurrent Architecture: \"mips\"\nDefault Packages: base-files busybox\nAvailable Profiles:\n\nglinet_gl-ar150:\n    GL.iNet GL-AR150\n    Packages: kmod-usb-chipidea2\n    hasImageMetadata: 1\n    SupportedDevices: glinet,gl-ar150 gl-ar150\n"))
	f.Add([]byte(`{"metadata_version":1,"profiles":{"glinet_gl-ar150":{"images":[{"filesystem":"squashfs","type":"sysupgrade","name":"x-squashfs-sysupgrade.bin"}]}}}`))
	f.Add([]byte(`{"profiles":{"p":{"images":[{"filesystem":"squashfs","type":"sysupgrade","name":"../../etc/passwd"}]}}}`))
	f.Add([]byte("tor - 1\ntor - 2\n"))
	f.Add([]byte("Profile \"x\" does not exist!\nmanifest: FORCE\nDISABLED_SERVICES"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ParseInfo(data)
		if pkgs, err := ParseManifest(data); err == nil {
			if len(pkgs) == 0 || !sort.SliceIsSorted(pkgs, func(i, j int) bool { return pkgs[i].Name < pkgs[j].Name }) {
				t.Fatalf("manifest: %v", pkgs)
			}
			for i := 1; i < len(pkgs); i++ {
				if pkgs[i].Name == pkgs[i-1].Name {
					t.Fatalf("manifest lists %s twice", pkgs[i].Name)
				}
			}
		}
		if sums, err := ParseSHA256Sums(data); err == nil {
			for name, sum := range sums {
				if name == "" || strings.Contains(name, "/") || len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "" {
					t.Fatalf("sha256sums entry %q %q", name, sum)
				}
			}
		}
		if pj, err := ParseProfilesJSON(data); err == nil {
			for id := range pj.Profiles {
				if img, err := pj.Sysupgrade(id); err == nil {
					if img.Name == "" || strings.ContainsAny(img.Name, "/\\") || strings.HasPrefix(img.Name, ".") {
						t.Fatalf("sysupgrade image name %q", img.Name)
					}
				}
			}
		}
		ParseCapabilities(data)
		Diagnose(string(data))
	})
}
