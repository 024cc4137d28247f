package build

import (
	"context"

	"github.com/torwrt/torwrt/internal/overlay"
)

// renderOverlay fills the overlay input from the profile, brand, release
// keys and the daemon binary, renders it into dest and returns the tree's
// hash.
func renderOverlay(ctx context.Context, o Options, daemon []byte, dest string) (string, error) {
	in, err := overlay.Defaults(o.Profile.ID)
	if err != nil {
		return "", err
	}
	b := o.Brand
	in.Hostname = b.Hostname
	in.SSIDPrefix = b.SSIDPrefix
	in.ProductName = b.ProductName
	in.Banner = b.BannerText
	if o.Simulated {
		in.Banner += "\n  SIMULATED ImageBuilder build: a test artifact, not firmware for a real device.\n"
	}
	in.BridgeRelay = o.Profile.BridgeRelay
	in.UpdateMirrors = b.Mirrors
	in.UpdateThreshold = b.Threshold
	if in.UpdateThreshold > len(o.ReleaseKeys) {
		in.UpdateThreshold = len(o.ReleaseKeys)
	}
	in.FirmwareVersion = o.Version
	in.SourceDateEpoch = o.Profile.OpenWrt.SourceDateEpoch
	in.ReleaseKeys = nil
	for _, k := range o.ReleaseKeys {
		in.ReleaseKeys = append(in.ReleaseKeys, overlay.ReleaseKey{Fingerprint: k.Fingerprint.String(), PublicKey: k.Marshal()})
	}
	in.ExtraFiles = append(in.ExtraFiles, overlay.ExtraFile{Path: "/usr/sbin/torwrt-verify", Mode: 0o755, Data: daemon})
	out, err := overlay.Render(ctx, in, dest)
	if err != nil {
		return "", err
	}
	return out.TreeSHA256, nil
}
