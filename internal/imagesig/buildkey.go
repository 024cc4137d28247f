package imagesig

import (
	"errors"
	"fmt"
	"time"
)

// MaxBuildKeyLifetime bounds BuildKeyOptions.Lifetime. `ucert -I` issues
// certificates for a year; a build key is meant to live for hours.
const MaxBuildKeyLifetime = 366 * 24 * time.Hour

// BuildKeyOptions asks imagesign for a delegation chain: the release key
// certifies a build key for [NotBefore, NotBefore+Lifetime) and the build
// key signs the image, as OpenWrt's own build does with `ucert -I` and
// `ucert -A`.
type BuildKeyOptions struct {
	// NotBefore is the certificate's validfrom (whole seconds). It is an
	// input, not the clock, so that signing is reproducible.
	NotBefore time.Time
	// Lifetime is how long the certificate is valid: at least one second,
	// at most MaxBuildKeyLifetime, whole seconds.
	Lifetime time.Duration
}

// Window is the certificate's validity [from, to) in unix seconds, or an
// error for options no certificate may carry.
func (o BuildKeyOptions) Window() (from, to int64, err error) {
	if o.NotBefore.IsZero() || o.NotBefore.Unix() < 0 {
		return 0, 0, errors.New("build key: a not-before time (unix seconds >= 0) is required")
	}
	if o.Lifetime < time.Second || o.Lifetime > MaxBuildKeyLifetime || o.Lifetime%time.Second != 0 {
		return 0, 0, fmt.Errorf("build key: lifetime %s: want whole seconds between 1s and %s", o.Lifetime, MaxBuildKeyLifetime)
	}
	from = o.NotBefore.Unix()
	return from, from + int64(o.Lifetime/time.Second), nil
}
