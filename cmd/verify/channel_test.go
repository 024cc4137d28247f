package main

import (
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/updater/updatertest"
)

// A router on the beta channel refuses the (validly signed) stable
// manifest with its own exit code, and flashes nothing; a config without a
// channel is a configuration error.
func TestCheckWrongChannel(t *testing.T) {
	m := newMirror(t)
	img := updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 16 << 10, Key: m.keys[0]})
	m.publish(t, "image.bin", img, 42, 10) // channel "stable"
	cfg, sysLog := m.writeConfig(t, map[string]any{"channel": "beta"})
	code, _, errs := runIn(t, m.dir, "check", "--config", cfg)
	if code != exitChannel || !strings.Contains(errs, `is for channel \"stable\", this router follows channel \"beta\"`) {
		t.Fatalf("exit %d, want %d\n%s", code, exitChannel, errs)
	}
	if len(updatertest.Calls(t, sysLog)) != 0 {
		t.Fatal("sysupgrade called")
	}
	cfg, _ = m.writeConfig(t, map[string]any{"channel": ""})
	if code, _, errs := runIn(t, m.dir, "check", "--config", cfg); code != exitUsage || !strings.Contains(errs, "channel") {
		t.Fatalf("no channel: exit %d\n%s", code, errs)
	}
}
