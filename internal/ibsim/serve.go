package ibsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Repository is where Serve pushes the simulated images (under the
// registry's 127.0.0.1:PORT host), tagged Target.ImageTag().
const Repository = "openwrt/imagebuilder"

// Serve starts an in-process OCI registry on 127.0.0.1 (plain http: pull
// with container.Cache{Insecure: true}), pushes each image under
// openwrt/imagebuilder:<target>-<subtarget>-v<version>-simulated and returns
// the digest references ("127.0.0.1:PORT/openwrt/imagebuilder@sha256:...")
// by torwrt profile name, and a func that stops the registry.
//
// images is keyed by torwrt profile name (Target.Profile): Target holds
// slices, so it cannot be a map key.
func Serve(ctx context.Context, images map[string]v1.Image) (refs map[string]string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, fmt.Errorf("ibsim: starting the registry: %w", err)
	}
	srv := &http.Server{
		Handler:           registry.New(registry.Logger(log.New(io.Discard, "", 0))),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Printf("ibsim: registry: %v", err)
		}
	}()
	stop = func() {
		// Shut down even when ctx is already done (a cancelled build
		// still stops its registry), keeping ctx's values.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}
	host := ln.Addr().String()
	refs = map[string]string{}
	profiles := make([]string, 0, len(images))
	for p := range images {
		profiles = append(profiles, p)
	}
	sort.Strings(profiles)
	for _, p := range profiles {
		t, ok := TargetByProfile(p)
		if !ok {
			stop()
			return nil, nil, fmt.Errorf("ibsim: Serve: unknown profile %q (want one of ibsim.Targets())", p)
		}
		img := images[p]
		tag, err := name.NewTag(host + "/" + Repository + ":" + t.ImageTag())
		if err != nil {
			stop()
			return nil, nil, err
		}
		if err := remote.Write(tag, img, remote.WithContext(ctx)); err != nil {
			stop()
			return nil, nil, fmt.Errorf("ibsim: pushing %s: %w", tag, err)
		}
		d, err := img.Digest()
		if err != nil {
			stop()
			return nil, nil, err
		}
		refs[t.Profile] = host + "/" + Repository + "@" + d.String()
	}
	return refs, stop, nil
}
