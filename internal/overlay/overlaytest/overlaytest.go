// Package overlaytest gives tests of other packages the overlay inputs of
// the shipped profiles (the copies embedded in imgbuild, so the tests need
// no path to the checkout).
package overlaytest

import (
	"io/fs"
	"testing"

	"github.com/torwrt/torwrt"
	"github.com/torwrt/torwrt/internal/overlay"
	"github.com/torwrt/torwrt/internal/profile"
)

// Profiles is the lookup path of the shipped profiles.
func Profiles(t testing.TB) profile.Path {
	t.Helper()
	sub, err := fs.Sub(torwrt.Profiles, "profiles")
	if err != nil {
		t.Fatal(err)
	}
	return profile.Path{profile.EmbeddedLayer(sub)}
}

// Defaults is overlay.ForProfile of the shipped profile id: its device
// facts and torwrt's defaults, the release left to the caller.
func Defaults(t testing.TB, id string) overlay.Input {
	t.Helper()
	p, err := Profiles(t).Load(id)
	if err != nil {
		t.Fatal(err)
	}
	in, err := overlay.ForProfile(p)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// Devices returns the ids of the shipped profiles that state their device
// facts themselves (no device:), sorted: one per board and ImageBuilder
// generation whose tree differs. A variant such as gl-ar150-24.10
// renders its primary's tree.
func Devices(t testing.TB) []string {
	t.Helper()
	pp := Profiles(t)
	ids, err := pp.List()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, id := range ids {
		p, err := pp.Load(id)
		if err != nil {
			t.Fatal(err)
		}
		if p.DeviceID() == id {
			out = append(out, id)
		}
	}
	if len(out) == 0 {
		t.Fatal("overlaytest: no shipped device profiles")
	}
	return out
}
