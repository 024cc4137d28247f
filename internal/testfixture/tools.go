package testfixture

import (
	"os"
	"os/exec"
	"testing"
)

// RequireBuildTools fails t when a tool the simulated-ImageBuilder builds
// need is missing, or the test does not run as root (podman as root, network
// namespaces). CI installs them with scripts/install-deps.sh and runs as
// root; a missing tool is a failure, never a skip.
func RequireBuildTools(t testing.TB) {
	t.Helper()
	for tool, pkg := range map[string]string{
		"podman": "podman", "runc": "runc", "mksquashfs": "squashfs-tools", "unsquashfs": "squashfs-tools",
		"qemu-mips-static": "qemu-user-static", "qemu-mipsel-static": "qemu-user-static",
		"signify-openbsd": "signify-openbsd",
	} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: install the Debian package %s (scripts/install-deps.sh)", tool, pkg)
		}
	}
	if os.Geteuid() != 0 {
		t.Fatal("this test runs podman as root; run it as root (CI does)")
	}
}
