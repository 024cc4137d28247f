package build

import (
	"os"
	"path/filepath"
	"testing"
)

// A stored step replays its output and files; a damaged file makes the
// entry a miss (and removes it), never a wrong output.
func TestStepCacheVerifiesReplayedFiles(t *testing.T) {
	c := &StepCache{Dir: t.TempDir()}
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "sub", "image.bin"), []byte("image"), 0o644)
	key, err := c.Key("run", 1, map[string]string{"files_sha256": "x"})
	if err != nil {
		t.Fatal(err)
	}
	if other, _ := c.Key("run", 2, map[string]string{"files_sha256": "x"}); other == key || len(key) != 64 {
		t.Fatalf("keys %s and %s", key, other)
	}
	if err := c.Put("run", key, Ran{Engine: "podman", PackageManager: "apk"}, src); err != nil {
		t.Fatal(err)
	}
	var ran Ran
	dst := t.TempDir()
	if !c.Get("run", key, &ran, dst) || ran.Engine != "podman" || ran.PackageManager != "apk" {
		t.Fatalf("miss or wrong output: %+v", ran)
	}
	if data, _ := os.ReadFile(filepath.Join(dst, "sub", "image.bin")); string(data) != "image" {
		t.Fatalf("replayed %q", data)
	}
	os.WriteFile(filepath.Join(c.Dir, "steps", "run", key, "files", "sub", "image.bin"), []byte("imagX"), 0o644)
	if c.Get("run", key, &ran, t.TempDir()) {
		t.Fatal("a damaged entry was replayed")
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "steps", "run", key)); !os.IsNotExist(err) {
		t.Fatalf("the damaged entry is still there: %v", err)
	}
}
