package build

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/torwrt/torwrt/internal/brand"
	"github.com/torwrt/torwrt/internal/manifest"
	"github.com/torwrt/torwrt/internal/overlay"
	"github.com/torwrt/torwrt/internal/routerconf"
	"github.com/torwrt/torwrt/internal/usign"
)

// wifiCountry is the radios' regulatory country: country (imgbuild
// build --country), else the brand's. Every image enables Wi-Fi at first
// boot, so a build without one fails.
func wifiCountry(country string, b *brand.Brand) (string, error) {
	if country != "" {
		if err := brand.CheckCountry(country); err != nil {
			return "", fmt.Errorf("--country: %w", err)
		}
		return country, nil
	}
	if b.Country == "" {
		return "", fmt.Errorf("brand %s sets no Wi-Fi country and no --country was given: the router enables Wi-Fi only with a regulatory country; add \"country: XX\" (ISO 3166-1 alpha-2, e.g. DE) to %s or pass --country XX",
			b.ID, filepath.Join(b.Dir, "brand.yaml"))
	}
	return b.Country, nil
}

// renderOverlay fills the overlay input from the profile, brand, release
// keys and the daemon binary, renders it into dest and returns the tree's
// hash.
func renderOverlay(ctx context.Context, o RenderInput, dest string) (string, error) {
	// The device's facts (ports, switch, radio, RAM) come from the
	// profile, or for a variant such as gl-ar150-24.10 from its primary
	// with the variant's own sections laid over them.
	in, err := overlay.ForProfile(o.Profile)
	if err != nil {
		return "", err
	}
	b := o.Brand
	in.Hostname = b.Hostname
	in.SSIDPrefix = b.SSIDPrefix
	in.ProductName = b.ProductName
	in.Banner = b.BannerText
	in.Brand = overlay.StatusBrand{
		Vendor:  b.Vendor,
		Colors:  routerconf.Colors{Primary: b.Colors.Primary, Background: b.Colors.Background, Text: b.Colors.Text},
		Tagline: b.Texts.Tagline,
		More: routerconf.Texts{
			TorUp: b.Texts.TorUp, TorStarting: b.Texts.TorStarting, TorDown: b.Texts.TorDown,
			NetOff: b.Texts.NetOff, NetMedium: b.Texts.NetMedium, NetMax: b.Texts.NetMax, NetUnknown: b.Texts.NetUnknown,
		},
		Footer:     b.Texts.Footer,
		SupportURL: b.SupportURL,
		Language:   b.Language,
		LogoName:   b.Logo,
		Logo:       b.LogoData,
	}
	if o.Simulated {
		in.Banner += "\n  SIMULATED ImageBuilder build: a test artifact, not firmware for a real device.\n"
	}
	in.BridgeRelay = o.Profile.BridgeRelay
	for _, m := range b.Mirrors {
		// The router daemon is built without TLS to fit 16 MB flash; an
		// onion service is authenticated and encrypted by Tor itself, and
		// the manifest signatures protect the content either way.
		if !strings.HasPrefix(m, "http://") || !strings.Contains(m, ".onion") {
			return "", fmt.Errorf("brand %s: update mirror %q: the router fetches updates only from http://<address>.onion mirrors (its daemon has no TLS; Tor authenticates onion services end to end)", b.ID, m)
		}
	}
	in.UpdateMirrors = b.Mirrors
	// The threshold is the brand's, never lowered to fit: an image that
	// ships fewer distinct keys than its brand requires would either never
	// update or, clamped, accept fewer signatures than the brand promised.
	kr, err := usign.NewKeyring(o.ReleaseKeys...)
	if err != nil {
		return "", fmt.Errorf("brand %s: release keys: %w", b.ID, err)
	}
	if err := manifest.CheckKeys(kr); err != nil {
		return "", fmt.Errorf("brand %s: release keys: %w", b.ID, err)
	}
	if b.Threshold > kr.Len() {
		return "", fmt.Errorf("brand %s: update threshold %d needs at least %d distinct release keys, but the image would ship %d; pass all release keys (--release-keys DIR) or lower the brand's threshold on purpose", b.ID, b.Threshold, b.Threshold, kr.Len())
	}
	in.UpdateThreshold = b.Threshold
	in.Channel = b.Channel
	if in.Radio.Country, err = wifiCountry(o.Country, o.Brand); err != nil {
		return "", err
	}
	in.FirmwareVersion = o.Version
	// /etc/torwrt/release.json states the same build the signed manifest
	// lists for this image (release prepare takes it from the report), or
	// the router's anti-rollback would compare different numbers.
	in.FirmwareBuild = o.Build
	in.SourceDateEpoch = o.Profile.OpenWrt.SourceDateEpoch
	in.ReleaseKeys = nil
	for _, k := range o.ReleaseKeys {
		in.ReleaseKeys = append(in.ReleaseKeys, overlay.ReleaseKey{Fingerprint: k.Fingerprint.String(), PublicKey: k.Marshal()})
	}
	in.ExtraFiles = append(in.ExtraFiles, overlay.ExtraFile{Path: "/usr/sbin/torwrt-verify", Mode: 0o755, Data: o.Daemon})
	out, err := overlay.Render(ctx, in, dest)
	if err != nil {
		return "", err
	}
	return out.TreeSHA256, nil
}
