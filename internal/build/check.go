package build

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/torwrt/torwrt/internal/fwimage"
	"github.com/torwrt/torwrt/internal/imagebuilder"
	"github.com/torwrt/torwrt/internal/nftmods"
	"github.com/torwrt/torwrt/internal/pkgdb"
	"github.com/torwrt/torwrt/internal/profile"
	"github.com/torwrt/torwrt/internal/squashfs"
)

// FirewallPath is where the rendered firewall lives on the router.
const FirewallPath = "/etc/torwrt/firewall.nft"

// CheckInput is what `make image` wrote (read by the run step's
// IBOutput), and what it must agree with. It holds bytes, not paths: the
// check runs on crafted inputs in tests.
type CheckInput struct {
	Profile *profile.Profile
	Lock    *profile.Lock
	// Sums is the ImageBuilder's sha256sums file.
	Sums []byte
	// ImageName and Image are its sysupgrade image.
	ImageName string
	Image     []byte
	// Manifest is its .manifest (the installed package list).
	Manifest []byte
	// Firewall is the rendered FirewallPath.
	Firewall []byte
}

// Checked is the checked ImageBuilder image, taken apart.
type Checked struct {
	// Payload is the image without its fwtool chunks (kernel + root
	// filesystem); Metadata is its metadata chunk's content.
	Payload  []byte
	Metadata []byte
	// Manifest is the .manifest, Installed its packages; DB is the image's
	// own package database, which lists the same.
	Manifest  []byte
	Installed []imagebuilder.Package
	DB        *pkgdb.Installed
	// StrippedIBSig: the ImageBuilder had signed the image (with its own
	// throwaway key); the signature is dropped.
	StrippedIBSig bool
	SizeLimit     int64
	// Warnings are problems a test profile is built with.
	Warnings []string
}

// Packages lists the installed packages as "name version".
func (c *Checked) Packages() []string {
	out := make([]string, len(c.Installed))
	for i, pk := range c.Installed {
		out[i] = pk.Name + " " + pk.Version
	}
	return out
}

// The checks after `make image`, in order. A new check is one function
// here and one line in Check.
//
//   - sums: the image matches the ImageBuilder's sha256sums
//   - lock ↔ manifest: the .manifest lists exactly the locked packages at
//     the locked versions (ErrDrift)
//   - firewall modules: the installed kmods load the rendered ruleset
//   - metadata: the fwtool metadata names the profile's board and OpenWrt
//     version
//   - size: the payload fits the profile's image_size_limit (ErrTooBig)
//   - manifest ↔ installed: the image's own package database lists the
//     .manifest's packages (ErrDrift)

// Check checks the ImageBuilder's output against the profile, the lock
// and the rendered overlay. It reads no files and runs nothing.
func Check(in CheckInput) (*Checked, error) {
	c := &Checked{Manifest: in.Manifest}
	if err := checkSums(in.Sums, in.ImageName, in.Image); err != nil {
		return nil, err
	}
	installed, err := checkManifest(in.Manifest, in.Lock, in.Profile.ID)
	if err != nil {
		return nil, err
	}
	c.Installed = installed
	if err := checkFirewallModules(in, installed, c); err != nil {
		return nil, err
	}
	layout, err := fwimage.Parse(bytes.NewReader(in.Image), int64(len(in.Image)))
	if err != nil {
		return nil, fmt.Errorf("imagebuilder image: %w", err)
	}
	_, c.StrippedIBSig = layout.Last(fwimage.TypeSignature)
	if c.Metadata, err = checkMetadata(in.Image, layout, in.Profile); err != nil {
		return nil, err
	}
	c.Payload = in.Image[:layout.PayloadEnd]
	if c.SizeLimit, err = checkSize(c.Payload, in.Profile); err != nil {
		return nil, err
	}
	if c.DB, err = checkInstalled(c.Payload, in.Lock.Manager(), installed); err != nil {
		return nil, err
	}
	return c, nil
}

func checkSums(sumsFile []byte, name string, image []byte) error {
	sums, err := imagebuilder.ParseSHA256Sums(sumsFile)
	if err != nil {
		return err
	}
	if got := sha256Hex(image); sums[name] != got {
		return fmt.Errorf("imagebuilder output: %s has sha256 %s, its sha256sums says %q", name, got, sums[name])
	}
	return nil
}

// checkManifest compares the ImageBuilder's .manifest with the lock.
func checkManifest(data []byte, lock *profile.Lock, profileID string) ([]imagebuilder.Package, error) {
	installed, err := imagebuilder.ParseManifest(data)
	if err != nil {
		return nil, err
	}
	var problems []string
	got := map[string]bool{}
	for _, pk := range installed {
		got[pk.Name] = true
		l, ok := lock.Package(pk.Name)
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s %s is installed but not pinned", pk.Name, pk.Version))
		case l.Version != pk.Version:
			problems = append(problems, fmt.Sprintf("%s installed at %s, lock pins %s", pk.Name, pk.Version, l.Version))
		}
	}
	for _, l := range lock.Packages {
		if !got[l.Name] {
			problems = append(problems, fmt.Sprintf("%s is pinned but not installed", l.Name))
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, fmt.Errorf("%w: %s; run: imgbuild lock --profile %s", ErrDrift, strings.Join(problems, "; "), profileID)
	}
	return installed, nil
}

// checkFirewallModules refuses an image whose kernel-module packages
// cannot load the rendered firewall: nft -f would fail at boot and the
// router would sit in the panic table, offline. A test profile gets a
// warning instead.
func checkFirewallModules(in CheckInput, installed []imagebuilder.Package, c *Checked) error {
	names := make([]string, 0, len(installed))
	for _, pk := range installed {
		names = append(names, pk.Name)
	}
	err := nftmods.Check(FirewallPath, in.Firewall, names)
	if err != nil && in.Profile.TestProfile != "" {
		// A test profile (an older ImageBuilder generation kept to test
		// the pipeline against) is built and reported, never released.
		c.Warnings = append(c.Warnings, "firewall kernel modules: "+err.Error())
		return nil
	}
	if err != nil {
		return fmt.Errorf("firewall kernel modules: %w (profiles/%s/profile.yaml), then run: imgbuild lock --profile %s", err, in.Profile.ID, in.Profile.ID)
	}
	return nil
}

// checkMetadata returns the image's metadata chunk after checking that it
// names the profile's board and OpenWrt version.
func checkMetadata(image []byte, layout *fwimage.Image, p *profile.Profile) ([]byte, error) {
	chunk, ok := layout.Last(fwimage.TypeMetadata)
	if !ok {
		return nil, errors.New("imagebuilder image has no metadata chunk; stock sysupgrade on this target would refuse it")
	}
	data := image[chunk.Offset : chunk.Offset+chunk.Len]
	meta, _, err := fwimage.ParseMetadataChunk(data)
	if err != nil {
		return nil, err
	}
	if !meta.Supports(p.Board) {
		return nil, fmt.Errorf("image metadata supports %v, not the profile's board %q", meta.SupportedDevices, p.Board)
	}
	if meta.Version.Version != p.OpenWrt.Version {
		return nil, fmt.Errorf("image metadata says OpenWrt %s, the profile says %s", meta.Version.Version, p.OpenWrt.Version)
	}
	return data, nil
}

func checkSize(payload []byte, p *profile.Profile) (int64, error) {
	limit, err := p.ImageSizeBytes()
	if err != nil {
		return 0, err
	}
	if int64(len(payload)) > limit {
		return limit, fmt.Errorf("%w: %d bytes, limit %d (%s); remove packages or overlay files", ErrTooBig, len(payload), limit, p.ImageSizeLimit)
	}
	return limit, nil
}

// checkInstalled reads the package database out of the image's own root
// filesystem (what is really installed, whatever the ImageBuilder's
// .manifest says: apk's /lib/apk/db/installed or opkg's status) and
// requires it to list exactly the manifest's packages at the same
// versions. The lock was already compared with the manifest.
func checkInstalled(payload []byte, manager string, installed []imagebuilder.Package) (*pkgdb.Installed, error) {
	fsys, _, err := squashfs.OpenInImage(bytes.NewReader(payload), int64(len(payload)))
	if err != nil {
		return nil, fmt.Errorf("reading the image's root filesystem: %w", err)
	}
	db, err := pkgdb.Read(fsys, manager)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(installed))
	versions := make([]string, len(installed))
	for i, pk := range installed {
		names[i], versions[i] = pk.Name, pk.Version
	}
	if problems := db.Compare("ImageBuilder's .manifest", names, versions); len(problems) > 0 {
		return nil, fmt.Errorf("%w: the image's package database (/%s) disagrees with the ImageBuilder's .manifest: %s", ErrDrift, db.Path, strings.Join(problems, "; "))
	}
	return db, nil
}
