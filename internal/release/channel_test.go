package release_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/torwrt/torwrt/internal/dist"
	"github.com/torwrt/torwrt/internal/release"
)

// The manifest's channel is the one the images were built for (their
// brand's, in the build report): routers refuse a manifest of any other.
func TestPrepareChannel(t *testing.T) {
	distDir := makeDist(t, newHolder(t, t.TempDir(), "image"))
	opts := func(channel string) release.PrepareOptions {
		return release.PrepareOptions{Dist: distDir, Channel: channel, Sequence: 1, IssuedAt: now, Lifetime: 720 * time.Hour}
	}
	// No --channel: the reports' channel.
	m, _, err := release.Prepare(t.Context(), opts(""))
	if err != nil || m.Channel != "stable" {
		t.Fatalf("channel from the reports: %v %+v", err, m)
	}
	if m, _, err := release.Prepare(t.Context(), opts("stable")); err != nil || m.Channel != "stable" {
		t.Fatalf("matching channel: %v", err)
	}
	// Another channel than the images': refused, nothing to sign.
	_, _, err = release.Prepare(t.Context(), opts("beta"))
	if !errors.Is(err, release.ErrDist) || !strings.Contains(err.Error(), `built for channel "stable"`) || !strings.Contains(err.Error(), `manifest is for channel "beta"`) {
		t.Fatalf("other channel: %v", err)
	}
	// A report without a channel (an older build): refused, fail closed.
	repPath := filepath.Join(distDir, "gl-ar150", dist.ReportFile)
	data, _ := os.ReadFile(repPath)
	var rep map[string]any
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	delete(rep, "channel")
	data, _ = json.Marshal(rep)
	os.WriteFile(repPath, data, 0o644)
	if _, _, err := release.Prepare(t.Context(), opts("stable")); !errors.Is(err, release.ErrDist) || !strings.Contains(err.Error(), "names no release channel") {
		t.Fatalf("report without channel: %v", err)
	}
}
