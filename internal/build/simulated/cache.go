package simulated

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/torwrt/torwrt/internal/build"
	"github.com/torwrt/torwrt/internal/container"
	"github.com/torwrt/torwrt/internal/gobuild"
	"github.com/torwrt/torwrt/internal/ibsim"
	"github.com/torwrt/torwrt/internal/profile"
)

// The simulated ImageBuilder's cache: Start keeps what does not
// change between runs in the step cache (CACHE/steps/sim-*/<key>/), each
// keyed by exactly what it is made of and checked when replayed:
//
//   - sim-tool: ibsim-tool's binary, by the module source's hash
//     (build.SourceSHA256, which covers ibsim-tool's imports), `go env
//     GOVERSION` and GOARCH; ibsim.BuildTool ignores the environment's
//     GOFLAGS, go.work and go env file. Replayed files are rehashed.
//   - sim-image: the image's manifest digest, by ibsim.InputsSHA256 (the
//     layer bytes before compression, the target, ImageVersion, imgbuild's
//     Go release); replayed only if container.Cache holds that digest and
//     every blob rehashes to it.
//   - sim-feed: the package feed directory, by the target and
//     ibsim.FeedVersion; replayed files are rehashed.
//   - sim-lock: the lock, by the image digest, the profile's sha256, the
//     feed index's sha256 and the feed keys; replayed only if it still
//     passes Lock.Check for the profile and names that image.
const (
	simToolStep, simImageStep, simFeedStep, simLockStep = "sim-tool", "sim-image", "sim-feed", "sim-lock"
	// simStepVersion: bump when Start's way of making any of the
	// four changes (lock.Resolve's output for the same inputs included).
	simStepVersion = 1
)

type simToolInput struct {
	SourceSHA256 string `json:"source_sha256"`
	GoVersion    string `json:"go_version"`
	GOARCH       string `json:"goarch"`
}

type simToolOutput struct {
	SHA256 string `json:"sha256"`
}

// simTool is ibsim-tool's binary: replayed from the cache, else built
// (and stored, unless cache is off).
func simTool(ctx context.Context, cache *build.StepCache, root string) ([]byte, bool, error) {
	var in simToolInput
	var err error
	if in.SourceSHA256, err = build.SourceSHA256(root); err != nil {
		return nil, false, fmt.Errorf("hashing ibsim-tool's source: %w", err)
	}
	if in.GoVersion, err = gobuild.GoVersion(ctx); err != nil {
		return nil, false, err
	}
	in.GOARCH = runtime.GOARCH
	key, err := cache.Key(simToolStep, simStepVersion, in)
	if err != nil {
		return nil, false, err
	}
	tmp, err := os.MkdirTemp("", "torwrt-simtool-")
	if err != nil {
		return nil, false, err
	}
	defer os.RemoveAll(tmp)
	var out simToolOutput
	if cache.Get(simToolStep, key, &out, tmp) {
		if b, err := os.ReadFile(filepath.Join(tmp, "ibsim-tool")); err == nil && sha256Hex(b) == out.SHA256 {
			return b, true, nil
		}
	}
	tool, err := ibsim.BuildTool(ctx, ibsim.BuildOptions{ModuleDir: root})
	if err != nil {
		return nil, false, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "ibsim-tool"), tool, 0o644); err != nil {
		return nil, false, err
	}
	// A failure to store only costs the next run a go build.
	_ = cache.Put(simToolStep, key, simToolOutput{SHA256: sha256Hex(tool)}, tmp)
	return tool, false, nil
}

type simImageInput struct {
	InputsSHA256 string `json:"inputs_sha256"`
}

type simImageOutput struct {
	Digest string `json:"digest"`
}

// simImageRepo is where the simulated images are stored in container.Cache:
// under the fixed name locks use, so a lock's Pull finds them.
const simImageRepo = Registry + "/" + ibsim.Repository

// simImage is t's image, from container.Cache when the cache recorded its
// digest for these inputs, else built and stored there. The image
// returned is the cached copy (compressed once, verified by digest).
func simImage(ctx context.Context, cache *build.StepCache, images *container.Cache, t ibsim.Target, bo ibsim.BuildOptions) (v1.Image, bool, error) {
	inputs, err := ibsim.InputsSHA256(t, bo)
	if err != nil {
		return nil, false, err
	}
	key, err := cache.Key(simImageStep, simStepVersion, simImageInput{InputsSHA256: inputs})
	if err != nil {
		return nil, false, err
	}
	var out simImageOutput
	if cache.Get(simImageStep, key, &out, "") {
		if img, err := openCached(ctx, images, simImageRepo+"@"+out.Digest); err == nil {
			return img, true, nil
		}
	}
	built, err := ibsim.BuildImage(ctx, t, bo)
	if err != nil {
		return nil, false, err
	}
	ci, err := images.Put(ctx, simImageRepo, built)
	if err != nil {
		return nil, false, err
	}
	img, err := ci.OpenImage()
	if err != nil {
		return nil, false, err
	}
	_ = cache.Put(simImageStep, key, simImageOutput{Digest: ci.Digest}, "")
	return img, false, nil
}

// openCached loads ref from images, every blob rehashed.
func openCached(ctx context.Context, images *container.Cache, ref string) (v1.Image, error) {
	ci, err := images.Load(ctx, ref)
	if err != nil {
		return nil, err
	}
	return ci.OpenImage()
}

type simFeedInput struct {
	Target      ibsim.Target `json:"target"`
	FeedVersion int          `json:"feed_version"`
}

// simFeed writes t's package feed into dir (emptied first): replayed, or
// written by ibsim.Packages and stored. It returns the sha256 of the feed's
// signed index (packages.adb, or Packages for opkg).
func simFeed(cache *build.StepCache, t ibsim.Target, dir string) (string, bool, error) {
	key, err := cache.Key(simFeedStep, simStepVersion, simFeedInput{Target: t, FeedVersion: ibsim.FeedVersion})
	if err != nil {
		return "", false, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", false, err
	}
	var none struct{}
	hit := cache.Get(simFeedStep, key, &none, dir)
	if !hit {
		if err := os.RemoveAll(dir); err != nil {
			return "", false, err
		}
		if _, err := ibsim.Packages(t, dir); err != nil {
			return "", false, err
		}
		_ = cache.Put(simFeedStep, key, none, dir)
	}
	index := "Packages"
	if t.APK() {
		index = "packages.adb"
	}
	b, err := os.ReadFile(filepath.Join(dir, index))
	if err != nil {
		return "", false, fmt.Errorf("simulated feed index: %w", err)
	}
	return sha256Hex(b), hit, nil
}

type simLockInput struct {
	ImageRef        string              `json:"image_ref"`
	ProfileSHA256   string              `json:"profile_sha256"`
	FeedIndexSHA256 string              `json:"feed_index_sha256"`
	FeedKey         string              `json:"feed_key"`
	APKKeys         []profile.LockedKey `json:"apk_keys"`
}

type simLockOutput struct {
	FeedIndexSHA256 string        `json:"feed_index_sha256"`
	Lock            *profile.Lock `json:"lock"`
}

// cachedLock replays the lock of in for p, if the cache holds one that
// still checks: Lock.Check for p as it is now, the same image, the same
// feed index.
func cachedLock(cache *build.StepCache, key string, in simLockInput, p *profile.Profile) *profile.Lock {
	var out simLockOutput
	if !cache.Get(simLockStep, key, &out, "") || out.Lock == nil {
		return nil
	}
	if out.FeedIndexSHA256 != in.FeedIndexSHA256 || out.Lock.Image.Ref != in.ImageRef || !out.Lock.Simulated || out.Lock.Check(p) != nil {
		return nil
	}
	return out.Lock
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
