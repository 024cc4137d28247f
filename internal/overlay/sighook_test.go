package overlay

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSignatureHook checks the contract of the rendered
// /lib/upgrade/zz-torwrt-signature.sh: sourced after OpenWrt's fwtool.sh,
// its fwtool_check_signature accepts an image only when fwtool finds a
// signature chunk and both ucert and torwrt-verify accept it with the keys
// in KeysDir, and on every failure it marks the image broken (not
// forceable), whatever FORCE says. fwtool, ucert and torwrt-verify are
// stand-ins whose answers each case sets; validate_firmware_image's
// notify_firmware_broken is one that records the call.
func TestSignatureHook(t *testing.T) {
	tree, _ := renderTo(t, testInput(t, "gl-ar150"))
	root := filepath.Join(t.TempDir(), "root")
	copyTree(t, tree, root)
	fakes := map[string]string{
		// -s FILE IMG extracts the signature chunk; -T -s /dev/null IMG
		// prints the image without it.
		"fakebin/fwtool": `#!/bin/sh
echo "fwtool $*" >>/log/calls
case "$*" in
*-T*) cat "$4" ;;
*) [ -e /cfg/nosig ] && exit 1; echo sig >"$3" ;;
esac
`,
		"usr/bin/ucert":          "#!/bin/sh\necho \"ucert $*\" >>/log/calls\ncat >/dev/null\n[ ! -e /cfg/ucert-fail ]\n",
		"usr/sbin/torwrt-verify": "#!/bin/sh\necho \"torwrt-verify $*\" >>/log/calls\n[ -e /cfg/verify-fail ] && exit 4\nexit 0\n",
	}
	for p, body := range fakes {
		writeAt(t, root, p, body)
		if err := os.Chmod(filepath.Join(root, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeAt(t, root, "tmp/image.bin", "image bytes\n")

	for _, tc := range []struct {
		name    string
		cfg     []string // files in /cfg that make a stand-in fail
		remove  string   // a verifier missing from the image
		force   bool
		accept  bool
		message string
	}{
		{name: "signed", accept: true},
		{name: "no_signature", cfg: []string{"nosig"}, message: "no signature in image"},
		{name: "no_signature_forced", cfg: []string{"nosig"}, force: true, message: "no signature in image"},
		{name: "ucert_rejects", cfg: []string{"ucert-fail"}, message: "ucert does not accept the signature"},
		{name: "torwrt_verify_rejects", cfg: []string{"verify-fail"}, force: true, message: "torwrt-verify does not accept the image"},
		{name: "ucert_missing", remove: "usr/bin/ucert", message: "/usr/bin/ucert is missing"},
		{name: "torwrt_verify_missing", remove: "usr/sbin/torwrt-verify", message: "/usr/sbin/torwrt-verify is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.RemoveAll(filepath.Join(root, "cfg"))
			os.Remove(filepath.Join(root, "log", "calls"))
			for _, c := range tc.cfg {
				writeAt(t, root, "cfg/"+c, "")
			}
			if tc.remove != "" {
				p := filepath.Join(root, tc.remove)
				body, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				os.Remove(p)
				defer func() {
					os.WriteFile(p, body, 0o755)
					os.Chmod(p, 0o755)
				}()
			}
			force := "0"
			if tc.force {
				force = "1"
			}
			script := `FORCE=` + force + `
notify_firmware_broken() { echo BROKEN; }
. /lib/upgrade/zz-torwrt-signature.sh
fwtool_check_signature /tmp/image.bin
echo "rc=$? require=$REQUIRE_IMAGE_SIGNATURE"`
			out, err := chrootRun(t, root, script)
			if err != nil {
				t.Fatalf("running the hook: %v\n%s", err, out)
			}
			b, _ := os.ReadFile(filepath.Join(root, "log", "calls"))
			calls := string(b)
			if tc.accept {
				if !strings.Contains(out, "rc=0 require=1") || strings.Contains(out, "BROKEN") {
					t.Fatalf("signed image refused:\n%s", out)
				}
				for _, want := range []string{
					"ucert -V -m - -c /tmp/sysupgrade.ucert -P /etc/torwrt/keys",
					"torwrt-verify image -q --keys /etc/torwrt/keys --board glinet,gl-ar150 /tmp/image.bin",
				} {
					if !strings.Contains(calls, want+"\n") {
						t.Errorf("verifier call %q missing; calls:\n%s", want, calls)
					}
				}
				return
			}
			if !strings.Contains(out, "rc=1") || !strings.Contains(out, "BROKEN") || !strings.Contains(out, tc.message) {
				t.Fatalf("want the image refused as broken with %q, got:\n%s", tc.message, out)
			}
		})
	}
}
