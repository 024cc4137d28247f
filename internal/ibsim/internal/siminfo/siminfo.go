// Package siminfo is the description of a simulated ImageBuilder that
// BuildImage bakes into the image (/builder/.ibsim-target.json) and that
// ibsim-tool reads at run time.
package siminfo

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Release facts of the simulated ImageBuilders.
const (
	Dist = "OpenWrt"
	// InfoFile is the target description inside the IB tree.
	InfoFile = ".ibsim-target.json"
	// Notice is printed (on stderr) by every make target and written into
	// every non-stock output.
	Notice = "SIMULATED OpenWrt ImageBuilder (torwrt test fixture): not a real OpenWrt build, the firmware it writes does not boot"
)

// Package managers of the simulated generations.
const (
	Opkg = "opkg" // OpenWrt <= 24.10: .ipk, Packages + usign Packages.sig
	APK  = "apk"  // OpenWrt >= 25.12: apk-tools v3, .apk + signed packages.adb
)

// Release is one OpenWrt release the sim imitates.
type Release struct {
	Version         string
	Revision        string
	KernelVersion   string
	SourceDateEpoch int64
	PackageManager  string // Opkg or APK
}

// Releases the sim knows. 24.10.3's revision, kernel and epoch are the real
// release's (imagebuilder.md). 25.12.5's revision and kernel are the real
// release's; its SOURCE_DATE_EPOCH is not known here, so the sim's own value
// (a plausible 2026 time) is used and said to be SIMULATED wherever the
// sim writes it down.
var (
	OpenWrt2410 = Release{Version: "24.10.3", Revision: "r28872-daca7c049b", KernelVersion: "6.6.102", SourceDateEpoch: 1758316778, PackageManager: Opkg}
	OpenWrt2512 = Release{Version: "25.12.5", Revision: "r33051-f5dae5ece4", KernelVersion: "6.12.94", SourceDateEpoch: 1780000000, PackageManager: APK}
)

// Profile is one device profile of the simulated IB.
type Profile struct {
	ID               string   `json:"id"`
	Vendor           string   `json:"vendor"`
	Model            string   `json:"model"`
	DevicePackages   []string `json:"device_packages"`
	SupportedDevices []string `json:"supported_devices"`
	ImageSizeKiB     int      `json:"image_size_kib"`
	PadKernel64k     bool     `json:"pad_kernel_64k"`
	// KernelImage is the prebuilt (fake) kernel, relative to the IB root.
	KernelImage string `json:"kernel_image"`
}

// Title is what make info prints under the profile id.
func (p Profile) Title() string { return p.Vendor + " " + p.Model }

// TargetInfo describes the IB.
type TargetInfo struct {
	Simulated       string    `json:"_simulated"`
	Board           string    `json:"board"`     // ath79
	Subtarget       string    `json:"subtarget"` // generic
	Arch            string    `json:"arch"`      // package arch, mips_24kc
	CPUArch         string    `json:"cpu_arch"`  // make info's Architecture, mips
	DefaultPackages []string  `json:"default_packages"`
	Profiles        []Profile `json:"profiles"`
	KernelVermagic  string    `json:"kernel_vermagic"`
	SourceDateEpoch int64     `json:"source_date_epoch"`
	Dist            string    `json:"dist"`
	Version         string    `json:"version"`
	Revision        string    `json:"revision"`
	KernelVersion   string    `json:"kernel_version"`
	// PackageManager is Opkg or APK ("" in older descriptions: Opkg).
	PackageManager string `json:"package_manager"`
	// Feeds are the release's default feed URLs (repositories.conf or
	// repositories), for the messages of a run without network.
	Feeds []string `json:"feeds,omitempty"`
}

// APK reports whether the IB uses apk-tools (OpenWrt 25.12 and later).
func (t *TargetInfo) APK() bool { return t.PackageManager == APK }

// Target is board/subtarget.
func (t *TargetInfo) Target() string { return t.Board + "/" + t.Subtarget }

// Profile returns the profile with id, or the first when id is empty.
func (t *TargetInfo) Profile(id string) (*Profile, error) {
	if id == "" && len(t.Profiles) > 0 {
		return &t.Profiles[0], nil
	}
	for i := range t.Profiles {
		if t.Profiles[i].ID == id {
			return &t.Profiles[i], nil
		}
	}
	return nil, fmt.Errorf("Profile %q not found; use 'make info' to get a list of available profiles", id)
}

// Load reads the IB description from topdir.
func Load(topdir string) (*TargetInfo, error) {
	b, err := os.ReadFile(filepath.Join(topdir, InfoFile))
	if err != nil {
		return nil, fmt.Errorf("reading the simulated IB description: %w", err)
	}
	var t TargetInfo
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", InfoFile, err)
	}
	return &t, nil
}
