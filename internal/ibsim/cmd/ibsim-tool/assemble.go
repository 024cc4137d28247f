package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/torwrt/torwrt/internal/fwimage"
	"github.com/torwrt/torwrt/internal/ibsim/internal/siminfo"
	"github.com/torwrt/torwrt/internal/ucert"
	"github.com/torwrt/torwrt/internal/usign"
)

// cmdKeygen is the real IB's first-run key generation: `usign -G` makes
// key-build / key-build.pub and `ucert -I` a self-issued certificate valid
// for one year. A fresh container makes a fresh key every time, which is
// one reason two runs of a stock IB give different images.
func cmdKeygen(topdir string) error {
	base := filepath.Join(topdir, "key-build")
	if _, err := os.Stat(base); err == nil {
		return nil
	}
	fmt.Fprintf(os.Stderr, "Generating local build key %s (fresh random key, SIMULATED usign -G / ucert -I)\n", base)
	sk, err := usign.GenerateKey(rand.Reader, "Local build key")
	if err != nil {
		return err
	}
	now := time.Now().Unix()
	payload := certPayload(sk.Public(), now, now+365*24*3600)
	sig, err := sk.Sign(payload)
	if err != nil {
		return err
	}
	cert, err := ucert.Encode(ucert.Element{Signature: sig.Marshal(), Payload: payload})
	if err != nil {
		return err
	}
	if err := os.WriteFile(base, sk.Marshal(), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(base+".pub", sk.Public().Marshal(), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(base+".ucert", cert, 0o644); err != nil {
		return err
	}
	// opkg-key add key-build.pub: opkg then trusts the index that
	// package_index signs with it (packages/Packages.sig).
	ti, err := siminfo.Load(topdir)
	if err != nil {
		return err
	}
	if ti.APK() {
		return nil
	}
	return os.WriteFile(filepath.Join(topdir, "keys", sk.Public().Fingerprint.String()), sk.Public().Marshal(), 0o644)
}

// certPayload is the blobmsg table ucert -I signs: {"ucert": {certtype,
// validfrom, expiresat, pubkey}}.
func certPayload(pub *usign.PublicKey, from, until int64) []byte {
	var inner []byte
	inner = append(inner, blobmsg(5, "certtype", be32(1))...) // CERTTYPE_AUTH
	inner = append(inner, blobmsg(4, "validfrom", be64(uint64(from)))...)
	inner = append(inner, blobmsg(4, "expiresat", be64(uint64(until)))...)
	inner = append(inner, blobmsg(3, "pubkey", append(pub.Marshal(), 0))...)
	return blobmsg(2, "ucert", inner)
}

// blobmsg encodes one libubox blobmsg attribute (extended header).
func blobmsg(typ uint32, name string, val []byte) []byte {
	hdr := make([]byte, 2, 2+len(name)+1)
	binary.BigEndian.PutUint16(hdr, uint16(len(name)))
	hdr = append(hdr, name...)
	hdr = append(hdr, 0)
	for len(hdr)%4 != 0 {
		hdr = append(hdr, 0)
	}
	n := 4 + len(hdr) + len(val)
	out := make([]byte, 4, n+3)
	binary.BigEndian.PutUint32(out, 0x80000000|typ<<24|uint32(n))
	out = append(out, hdr...)
	out = append(out, val...)
	for len(out)%4 != 0 {
		out = append(out, 0)
	}
	return out
}

func be32(v uint32) []byte { b := make([]byte, 4); binary.BigEndian.PutUint32(b, v); return b }
func be64(v uint64) []byte { b := make([]byte, 8); binary.BigEndian.PutUint64(b, v); return b }

// sanitize is OpenWrt's $(call sanitize,...): lower case, '_' and ' ' to '-'.
func sanitize(s string) string {
	return strings.ToLower(strings.NewReplacer("_", "-", " ", "-").Replace(s))
}

// cmdSysupgrade is the rest of the real IB's build_image after mksquashfs:
// it assembles the sysupgrade image like the ath79/ramips image recipes:
// kernel [| pad-to 64k] | append-rootfs | pad-rootfs | check-size |
// append-metadata, then signs it with the local build key as the real IB
// does, and writes the BIN_DIR outputs (the manifest from the root tree's
// package database; profiles.json, which the real IB's
// json_overview_image_info writes). sha256sums is the checksum step's.
func cmdSysupgrade(topdir, profile, root, rootfsImg, binDir, extra string) error {
	ti, err := siminfo.Load(topdir)
	if err != nil {
		return err
	}
	p, err := ti.Profile(profile)
	if err != nil {
		return err
	}
	if binDir == "" {
		binDir = filepath.Join(topdir, "bin", "targets", ti.Board, ti.Subtarget)
	}
	kernel, err := os.ReadFile(filepath.Join(topdir, p.KernelImage))
	if err != nil {
		return fmt.Errorf("reading the prebuilt kernel: %v", err)
	}
	rootfs, err := os.ReadFile(rootfsImg)
	if err != nil {
		return fmt.Errorf("reading the root filesystem image: %v", err)
	}
	prefix := sanitize(ti.Dist) + "-" + sanitize(ti.Version) + "-"
	if extra != "" {
		prefix += sanitize(extra) + "-"
	}
	prefix += ti.Board + "-" + ti.Subtarget + "-" + p.ID
	name := prefix + "-squashfs-sysupgrade.bin"

	img := append([]byte{}, kernel...)
	if p.PadKernel64k {
		img = padTo(img, 64<<10, 0x00) // pad-to $$(BLOCKSIZE), dd conv=sync
	}
	img = append(img, rootfs...)
	img = padTo(img, 64<<10, 0xff) // pad-rootfs: 0xff to the erase block,
	img = append(img, 0xde, 0xad, 0xc0, 0xde)
	limit := p.ImageSizeKiB * 1024
	if len(img) > limit {
		return fmt.Errorf("ERROR: Image file %s is too big: %d > %d bytes (IMAGE_SIZE %dk for %s); remove packages or files", name, len(img), limit, p.ImageSizeKiB, p.ID)
	}
	md := fwimage.Metadata{
		MetadataVersion:  "1.1",
		CompatVersion:    "1.0",
		SupportedDevices: p.SupportedDevices,
		Version: fwimage.Version{Dist: ti.Dist, Version: ti.Version, Revision: ti.Revision,
			Target: ti.Target(), Board: p.ID},
	}
	js, err := md.MarshalStock()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := fwimage.AppendChunk(&buf, bytes.NewReader(img), fwimage.TypeMetadata, fwimage.MetadataChunk(js)); err != nil {
		return err
	}
	unsigned := append([]byte{}, buf.Bytes()...)

	// Sign with the local build key, as `usign -S` + `ucert -A` + `fwtool -S`.
	skb, err := os.ReadFile(filepath.Join(topdir, "key-build"))
	if err != nil {
		return fmt.Errorf("no local build key (make generates it first): %v", err)
	}
	sk, err := usign.ParseSecretKey(skb)
	if err != nil {
		return err
	}
	certb, err := os.ReadFile(filepath.Join(topdir, "key-build.ucert"))
	if err != nil {
		return err
	}
	chain, err := ucert.Decode(certb)
	if err != nil {
		return fmt.Errorf("key-build.ucert: %v", err)
	}
	sig, err := sk.Sign(unsigned)
	if err != nil {
		return err
	}
	sigChunk, err := ucert.Encode(append(chain, ucert.Element{Signature: sig.Marshal()})...)
	if err != nil {
		return err
	}
	var signed bytes.Buffer
	if err := fwimage.AppendChunk(&signed, bytes.NewReader(unsigned), fwimage.TypeSignature, sigChunk); err != nil {
		return err
	}

	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(binDir, name), signed.Bytes(), 0o644); err != nil {
		return err
	}
	var manifest []byte
	if ti.APK() {
		manifest, err = manifestFromAPK(root)
	} else {
		manifest, err = manifestFromStatus(root)
	}
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(binDir, prefix+".manifest"), manifest, 0o644); err != nil {
		return err
	}
	pj, err := profilesJSON(ti, p, prefix, name, signed.Bytes(), unsigned)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(binDir, "profiles.json"), pj, 0o644); err != nil {
		return err
	}
	notice := siminfo.Notice + ".\n" +
		"Every file in this directory was written by the simulated ImageBuilder of internal/ibsim.\n" +
		"The image's metadata is stock-format on purpose (the builder under test must handle it);\n" +
		"its kernel is a placeholder and its packages are placeholders: it does not boot.\n"
	if err := os.WriteFile(filepath.Join(binDir, "SIMULATED"), []byte(notice), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "Wrote %s (%d bytes, signed with the fresh local build key %s) [SIMULATED]\n", filepath.Join(binDir, name), signed.Len(), sk.Fingerprint)
	return nil
}

func padTo(b []byte, block int, fill byte) []byte {
	for len(b)%block != 0 {
		b = append(b, fill)
	}
	return b
}

// manifestFromStatus lists the installed packages ("name - version").
func manifestFromStatus(root string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(root, "usr/lib/opkg/status"))
	if err != nil {
		return nil, fmt.Errorf("reading the opkg status of %s: %v", root, err)
	}
	var lines []string
	var name string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := sc.Text()
		if v, ok := strings.CutPrefix(l, "Package: "); ok {
			name = v
		} else if v, ok := strings.CutPrefix(l, "Version: "); ok && name != "" {
			lines = append(lines, name+" - "+v)
			name = ""
		}
	}
	sort.Strings(lines)
	return []byte(strings.Join(lines, "\n") + "\n"), nil
}

// manifestFromAPK is the IB's manifest for apk: `apk list --quiet
// --manifest` over the root's /lib/apk/db/installed ("name version").
func manifestFromAPK(root string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(root, "lib/apk/db/installed"))
	if err != nil {
		return nil, fmt.Errorf("reading the apk database of %s: %v", root, err)
	}
	var names []string
	ver := map[string]string{}
	var name string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if v, ok := strings.CutPrefix(l, "P:"); ok {
			name = v
		} else if v, ok := strings.CutPrefix(l, "V:"); ok && name != "" {
			names = append(names, name)
			ver[name] = v
			name = ""
		}
	}
	sort.Slice(names, func(i, j int) bool { return apkCmp(names[i], names[j]) < 0 })
	var out strings.Builder
	for _, n := range names {
		fmt.Fprintf(&out, "%s %s\n", n, ver[n])
	}
	return []byte(out.String()), nil
}

// profilesJSON writes profiles.json as OpenWrt's json_overview_image_info
// does: compact, keys sorted.
func profilesJSON(ti *siminfo.TargetInfo, p *siminfo.Profile, prefix, name string, signed, unsigned []byte) ([]byte, error) {
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	defaults := append([]string{}, ti.DefaultPackages...)
	sort.Strings(defaults)
	doc := map[string]any{
		"arch_packages":    ti.Arch,
		"default_packages": defaults,
		"linux_kernel": map[string]any{
			"release":  "1",
			"vermagic": ti.KernelVermagic,
			"version":  ti.KernelVersion,
		},
		"metadata_version": 1,
		"profiles": map[string]any{
			p.ID: map[string]any{
				"device_packages": p.DevicePackages,
				"image_prefix":    prefix,
				"images": []any{map[string]any{
					"filesystem":      "squashfs",
					"name":            name,
					"sha256":          sum(signed),
					"sha256_unsigned": sum(unsigned),
					"type":            "sysupgrade",
				}},
				"supported_devices": p.SupportedDevices,
				"titles":            []any{map[string]any{"model": p.Model, "vendor": p.Vendor}},
			},
		},
		"source_date_epoch": ti.SourceDateEpoch,
		"target":            ti.Target(),
		"version_code":      ti.Revision,
		"version_number":    ti.Version,
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// cmdChecksum is the real IB's checksum step: sha256sums in BIN_DIR.
func cmdChecksum(binDir string) error {
	if binDir == "" {
		return errors.New("checksum: --bin-dir is required")
	}
	return writeSHA256Sums(binDir)
}

// writeSHA256Sums writes "<hex> *<name>" for every file in dir.
func writeSHA256Sums(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, e := range ents {
		if !e.Type().IsRegular() || e.Name() == "sha256sums" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		s := sha256.Sum256(data)
		fmt.Fprintf(&b, "%s *%s\n", hex.EncodeToString(s[:]), e.Name())
	}
	if b.Len() == 0 {
		return errors.New("BIN_DIR is empty")
	}
	return os.WriteFile(filepath.Join(dir, "sha256sums"), []byte(b.String()), 0o644)
}
