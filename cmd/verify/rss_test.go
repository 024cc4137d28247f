package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/updater/updatertest"
)

// TestUpdateRSS runs a whole update (`verify check --once`: manifest,
// download through SOCKS, hash, signature, sysupgrade stand-in) in a
// subprocess for a 16 MiB and a 64 MiB image and reads its peak resident
// size. Streaming must keep it flat: other updaters ran out of memory on
// 32 MB routers by holding the image in RAM.
//
// The peak is VmHWM from /proc/<verify>/status, read by the sysupgrade
// stand-in when verify runs it to flash, the last step of an update. (The
// rusage of a child of this test is useless here: Go starts children with
// vfork, and Linux carries the parent's high-water mark across exec.)
func TestUpdateRSS(t *testing.T) {
	bin := buildVerify(t, runtime.GOARCH)
	const budget = 16 << 20
	rss := map[int]int64{}
	for _, mib := range []int{16, 64} {
		m := newMirror(t)
		img := updatertest.Image(t, updatertest.ImageSpec{PayloadSize: mib << 20, Key: m.keys[0]})
		m.publish(t, "image.bin", img, 42, 10)
		img = nil
		// The first config is written for its sysupgrade log's path.
		_, sysLog := m.writeConfig(t, nil)
		hwm := filepath.Join(m.dir, "vmhwm")
		stand := filepath.Join(m.dir, "sysupgrade-hwm")
		script := "#!/bin/sh\necho \"$*\" >> '" + sysLog + "'\n" +
			"[ \"$1\" = --test ] || grep VmHWM /proc/$PPID/status > '" + hwm + "'\n"
		if err := os.WriteFile(stand, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		cfg, _ := m.writeConfig(t, map[string]any{"sysupgrade": stand})
		cmd := exec.Command(bin, "check", "--once", "--config", cfg)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%d MiB: %v\n%s\n%s", mib, err, stdout.String(), stderr.String())
		}
		if f := updatertest.FlashCalls(t, sysLog); len(f) != 1 {
			t.Fatalf("%d MiB: not installed: %q\n%s", mib, f, stderr.String())
		}
		line, err := os.ReadFile(hwm)
		f := strings.Fields(string(line))
		if err != nil || len(f) != 3 || f[0] != "VmHWM:" || f[2] != "kB" {
			t.Fatalf("%d MiB: VmHWM not recorded: %q %v", mib, line, err)
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		rss[mib] = kb << 10
		t.Logf("update with a %d MiB image: peak RSS %.1f MiB", mib, float64(rss[mib])/(1<<20))
		if rss[mib] > budget {
			t.Errorf("%d MiB image: peak RSS %d bytes, budget %d", mib, rss[mib], budget)
		}
	}
	if d := rss[64] - rss[16]; d > 4<<20 {
		t.Errorf("peak RSS grows with the image: %d bytes more for 64 MiB than for 16 MiB", d)
	}
}
