package ibsim

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/torwrt/torwrt/internal/apk"
)

// FeedAPKKeyName is the file name of the SIMULATED apk feed key, in
// /builder/keys of an apk target's IB and in /etc/apk/keys of the images it
// makes (shipped by the simulated openwrt-keyring).
const FeedAPKKeyName = "ibsim-SIMULATED-feed-key.pem"

var (
	feedAPKOnce sync.Once
	feedAPK     *apk.SecretKey
)

// feedAPKSecretKey is the fixed ECDSA P-256 key of the simulated apk feeds.
// Its scalar is SHA-256 of a public string: it proves nothing except that
// the sim's signed packages.adb path works. Never trust it outside tests.
func feedAPKSecretKey() *apk.SecretKey {
	feedAPKOnce.Do(func() {
		seed := sha256.Sum256([]byte("torwrt ibsim SIMULATED apk feed key - public test key, trust nothing it signs"))
		k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), seed[:])
		if err != nil {
			panic(err)
		}
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			panic(err)
		}
		sk, err := apk.ParseSecretKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
		if err != nil {
			panic(err)
		}
		feedAPK = sk
	})
	return feedAPK
}

// FeedAPKKey is the public key that signs the simulated apk feeds'
// packages.adb (the simulated 25.12 IB trusts it in
// /builder/keys/FeedAPKKeyName, as a real IB trusts the release key). It is
// a test key whose secret is public.
func FeedAPKKey() *apk.PublicKey { return feedAPKSecretKey().Public() }

// postinst is the post-install script every simulated .apk carries, shaped
// like OpenWrt's generated one (include/package-pack.mk) and marked
// SIMULATED. The IB installs with --no-scripts; apk still stores it in
// /lib/apk/db/scripts.tar.gz.
func postinst(name string) string {
	return fmt.Sprintf(`#!/bin/sh
# SIMULATED post-install script of %[1]s (torwrt ImageBuilder test fixture)
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
export root="${IPKG_INSTROOT}"
export pkgname="%[1]s"
add_group_and_user
default_postinst
`, name)
}

// apkInfo is the package info of d for t.
func apkInfo(d pkgDef, t Target) apk.PackageInfo {
	var deps []string
	for _, dep := range strings.Split(d.depends, ",") {
		if dep = strings.TrimSpace(dep); dep != "" {
			deps = append(deps, dep)
		}
	}
	return apk.PackageInfo{
		Name:        d.name,
		Version:     d.version,
		Arch:        t.Arch,
		Description: "SIMULATED placeholder of the OpenWrt package " + d.name + " (torwrt ImageBuilder test fixture)",
		License:     "SIMULATED",
		Origin:      "SIMULATED/" + d.section + "/" + d.name,
		Maintainer:  "torwrt ibsim (SIMULATED)",
		Depends:     deps,
		BuildTime:   t.SourceDateEpoch,
	}
}

// buildAPK returns the .apk bytes of d: files owned by root, mtimes at the
// release's SOURCE_DATE_EPOCH, a post-install script.
func buildAPK(d pkgDef, t Target) ([]byte, error) {
	var files []apk.FileEntry
	var installed uint64
	for _, f := range d.files {
		name := strings.Trim(f.path, "/")
		switch {
		case strings.HasSuffix(f.path, "/"):
			files = append(files, apk.FileEntry{Path: name, Mode: fs.ModeDir | fs.FileMode(f.mode)&(fs.ModePerm) | stickyBits(f.mode)})
		case f.link != "":
			files = append(files, apk.FileEntry{Path: name, Mode: fs.ModeSymlink | 0o777, Target: f.link, MTime: t.SourceDateEpoch,
				Size: uint64(len(f.link))})
		default:
			s := sha256.Sum256([]byte(f.content))
			files = append(files, apk.FileEntry{Path: name, Mode: fs.FileMode(f.mode) & fs.ModePerm, Data: []byte(f.content),
				Size: uint64(len(f.content)), SHA256: s[:], MTime: t.SourceDateEpoch})
			installed += uint64(len(f.content))
		}
	}
	info := apkInfo(d, t)
	info.InstalledSize = installed
	var buf bytes.Buffer
	if err := apk.WritePackage(&buf, info, files, map[string]string{"post-install": postinst(d.name)}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// stickyBits maps the 01777-style mode bits of a fileDef to fs bits.
func stickyBits(mode int64) fs.FileMode {
	var m fs.FileMode
	if mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// APKFileName is the file name OpenWrt 25.12 gives a package in a feed.
func APKFileName(name, version string) string { return name + "-" + version + ".apk" }

func packagesAPK(t Target, dir string) ([]Package, error) {
	var out []Package
	idx := &apk.Index{Description: fmt.Sprintf("SIMULATED OpenWrt %s %s feed (torwrt ImageBuilder test fixture)", t.Version, t.TargetName())}
	for _, d := range catalog(t) {
		b, err := buildAPK(d, t)
		if err != nil {
			return nil, fmt.Errorf("ibsim: package %s: %w", d.name, err)
		}
		p, err := apk.ReadPackage(bytes.NewReader(b), 0)
		if err != nil {
			return nil, fmt.Errorf("ibsim: package %s does not read back: %w", d.name, err)
		}
		fn := APKFileName(d.name, d.version)
		if err := os.WriteFile(filepath.Join(dir, fn), b, 0o644); err != nil {
			return nil, fmt.Errorf("ibsim: writing %s: %w", fn, err)
		}
		idx.Packages = append(idx.Packages, apk.EntryFor(p, uint64(len(b))))
		sum := sha256.Sum256(b)
		out = append(out, Package{Name: d.name, Version: d.version, Arch: t.Arch, Depends: d.depends,
			Filename: fn, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(b)), Identity: hex.EncodeToString(p.Identity)})
	}
	adb, err := apk.WriteIndex(idx, feedAPKSecretKey())
	if err != nil {
		return nil, fmt.Errorf("ibsim: writing packages.adb: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "packages.adb"), adb, 0o644); err != nil {
		return nil, err
	}
	return out, nil
}
