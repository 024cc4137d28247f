package build

import (
	"os"
	"path/filepath"
	"testing"
	"time"
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

// Two holders of one step/key take turns: the second gets the lock only
// after the first released it (and would then find its entry stored);
// another key is not held up.
func TestStepCacheLockSerializesOneKey(t *testing.T) {
	c := &StepCache{Dir: t.TempDir()}
	unlock, err := c.Lock("compile", "k1")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 2)
	go func() {
		u, err := c.Lock("compile", "k1")
		if err != nil {
			got <- err.Error()
			return
		}
		got <- "k1"
		u()
	}()
	u2, err := c.Lock("compile", "k2")
	if err != nil {
		t.Fatal(err)
	}
	u2()
	select {
	case s := <-got:
		t.Fatalf("second holder of k1 got %q while the first held it", s)
	case <-time.After(200 * time.Millisecond):
	}
	unlock()
	select {
	case s := <-got:
		if s != "k1" {
			t.Fatal(s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("second holder of k1 never got the lock")
	}
	if u, err := (&StepCache{}).Lock("compile", "k1"); err != nil {
		t.Fatal(err)
	} else {
		u()
	}
}
