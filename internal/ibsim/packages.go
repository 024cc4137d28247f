package ibsim

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/torwrt/torwrt/internal/usign"
)

// Package is one .ipk of the simulated feed.
type Package struct {
	Name     string
	Version  string
	Arch     string
	Depends  string // the Depends field, "" when none
	Filename string // relative to the feed directory
	SHA256   string // hex, of the whole file
	Size     int64
	// Identity is, for an .apk, the index's "hashes" field in hex: SHA-256
	// of the package's ADB block, which apk checks a download against.
	// Empty for an .ipk.
	Identity string
}

// FeedVersion names what Packages writes. Change it whenever the catalog or
// a package or index writer changes Packages' output: torwrt caches a
// simulated feed by its target and FeedVersion (internal/build, sim
// cache), and TestFeedVersion fails, giving the new hashes, until the
// version and its recorded hashes are changed together.
const FeedVersion = 1

// epoch is t's SOURCE_DATE_EPOCH as a time.
func (t Target) epoch() time.Time { return time.Unix(t.SourceDateEpoch, 0).UTC() }

// Packages writes the simulated package feed of t into dir (created if
// needed). The same bytes every run.
//
// For a 24.10 (opkg) target: one deterministic .ipk per package (OpenWrt
// layout: a gzip'd tar holding ./debian-binary, ./data.tar.gz and
// ./control.tar.gz, root-owned, mtimes at t.SourceDateEpoch), the Packages
// index, Packages.gz, and Packages.sig signed with FeedKey.
//
// For a 25.12 (apk) target: one unsigned .apk v3 per package,
// <name>-<version>.apk (internal/apk's writer, as apk mkpkg), and
// packages.adb signed with FeedAPKKey (as apk mkndx --sign; ECDSA with
// RFC 6979 nonces, so the signature is deterministic too).
func Packages(t Target, dir string) ([]Package, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("ibsim: creating feed dir: %w", err)
	}
	if t.APK() {
		return packagesAPK(t, dir)
	}
	var out []Package
	var index bytes.Buffer
	for _, d := range catalog(t) {
		ipk, installed, err := buildIPK(d, t)
		if err != nil {
			return nil, fmt.Errorf("ibsim: package %s: %w", d.name, err)
		}
		fn := d.name + "_" + d.version + "_" + t.Arch + ".ipk"
		if err := os.WriteFile(filepath.Join(dir, fn), ipk, 0o644); err != nil {
			return nil, fmt.Errorf("ibsim: writing %s: %w", fn, err)
		}
		sum := sha256.Sum256(ipk)
		p := Package{Name: d.name, Version: d.version, Arch: t.Arch, Depends: d.depends,
			Filename: fn, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(ipk))}
		out = append(out, p)
		fmt.Fprintf(&index, "Package: %s\nVersion: %s\n", p.Name, p.Version)
		if p.Depends != "" {
			fmt.Fprintf(&index, "Depends: %s\n", p.Depends)
		}
		fmt.Fprintf(&index, "License: SIMULATED\nSection: %s\nArchitecture: %s\nInstalled-Size: %d\nFilename: %s\nSize: %d\nSHA256sum: %s\nDescription: SIMULATED placeholder of the OpenWrt package %s (torwrt ImageBuilder test fixture)\n\n",
			d.section, p.Arch, installed, p.Filename, p.Size, p.SHA256, p.Name)
	}
	idx := index.Bytes()
	if err := os.WriteFile(filepath.Join(dir, "Packages"), idx, 0o644); err != nil {
		return nil, err
	}
	gz, err := gzipBytes(idx)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "Packages.gz"), gz, 0o644); err != nil {
		return nil, err
	}
	sig, err := feedSecretKey().Sign(idx)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "Packages.sig"), sig.Marshal(), 0o644); err != nil {
		return nil, err
	}
	return out, nil
}

var (
	feedKeyOnce sync.Once
	feedKey     *usign.SecretKey
)

// detReader is a deterministic byte stream (SHA-256 in counter mode).
type detReader struct {
	seed []byte
	ctr  uint64
	buf  []byte
}

func (r *detReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.buf) == 0 {
			var c [8]byte
			binary.BigEndian.PutUint64(c[:], r.ctr)
			r.ctr++
			s := sha256.Sum256(append(append([]byte{}, r.seed...), c[:]...))
			r.buf = s[:]
		}
		k := copy(p[n:], r.buf)
		r.buf = r.buf[k:]
		n += k
	}
	return n, nil
}

// feedSecretKey is the fixed key of the simulated feeds. Its secret is
// derived from a public string: it proves nothing except that the sim's
// Packages.sig path works. Never trust it outside tests.
func feedSecretKey() *usign.SecretKey {
	feedKeyOnce.Do(func() {
		k, err := usign.GenerateKey(&detReader{seed: []byte("torwrt ibsim SIMULATED feed key - public test key, trust nothing it signs")}, "SIMULATED ImageBuilder feed key (public test key, not an OpenWrt key)")
		if err != nil {
			panic(err)
		}
		feedKey = k
	})
	return feedKey
}

// FeedKey is the public key that signs the simulated feeds' Packages index
// (the simulated IB trusts it in /builder/keys, as a real IB trusts the
// release key). It is a test key whose secret is public.
func FeedKey() *usign.PublicKey { return feedSecretKey().Public() }

func gzipBytes(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// tarEntry is one member of a deterministic tar.
type tarEntry struct {
	name    string // without leading "./"; directories end in "/"
	mode    int64
	uid     int
	content []byte
	link    string
}

// buildTar writes entries sorted by name, parents first, root-owned (or
// uid as given), mtimes at epochTime. prefix is "./" for ipk members.
func buildTar(entries []tarEntry, prefix string, withRoot bool, epochTime time.Time) ([]byte, error) {
	all := map[string]tarEntry{}
	for _, e := range entries {
		all[e.name] = e
		// implicit parents
		for d := path.Dir(strings.TrimSuffix(e.name, "/")); d != "." && d != "/"; d = path.Dir(d) {
			if _, ok := all[d+"/"]; !ok {
				all[d+"/"] = tarEntry{name: d + "/", mode: 0o755, uid: e.uid}
			}
		}
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if withRoot {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: prefix, Mode: 0o755, ModTime: epochTime, Format: tar.FormatGNU}); err != nil {
			return nil, err
		}
	}
	for _, n := range names {
		e := all[n]
		h := &tar.Header{Name: prefix + n, Mode: e.mode, Uid: e.uid, Gid: e.uid, ModTime: epochTime, Format: tar.FormatGNU}
		switch {
		case strings.HasSuffix(n, "/"):
			h.Typeflag = tar.TypeDir
		case e.link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, e.link, 0o777
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.content))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.content); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// buildIPK returns the .ipk bytes and the installed size.
func buildIPK(d pkgDef, t Target) ([]byte, int, error) {
	arch, epochTime := t.Arch, t.epoch()
	var data []tarEntry
	installed := 0
	for _, f := range d.files {
		name := strings.TrimPrefix(f.path, "/")
		switch {
		case strings.HasSuffix(name, "/"):
			data = append(data, tarEntry{name: name, mode: f.mode})
		case f.link != "":
			data = append(data, tarEntry{name: name, link: f.link})
		default:
			data = append(data, tarEntry{name: name, mode: f.mode, content: []byte(f.content)})
			installed += len(f.content)
		}
	}
	dataTar, err := buildTar(data, "./", true, epochTime)
	if err != nil {
		return nil, 0, err
	}
	var control strings.Builder
	fmt.Fprintf(&control, "Package: %s\nVersion: %s\n", d.name, d.version)
	if d.depends != "" {
		fmt.Fprintf(&control, "Depends: %s\n", d.depends)
	}
	fmt.Fprintf(&control, "Source: SIMULATED\nSourceName: %s\nLicense: SIMULATED\nSection: %s\nSourceDateEpoch: %d\nArchitecture: %s\nInstalled-Size: %d\nDescription: SIMULATED placeholder of the OpenWrt package %s (torwrt ImageBuilder test fixture)\n",
		d.name, d.section, t.SourceDateEpoch, arch, installed, d.name)
	controlTar, err := buildTar([]tarEntry{{name: "control", mode: 0o644, content: []byte(control.String())}}, "./", true, epochTime)
	if err != nil {
		return nil, 0, err
	}
	dataGz, err := gzipBytes(dataTar)
	if err != nil {
		return nil, 0, err
	}
	controlGz, err := gzipBytes(controlTar)
	if err != nil {
		return nil, 0, err
	}
	// Member order as opkg-build writes it.
	var outer bytes.Buffer
	tw := tar.NewWriter(&outer)
	for _, m := range []struct {
		name string
		b    []byte
	}{{"./debian-binary", []byte("2.0\n")}, {"./data.tar.gz", dataGz}, {"./control.tar.gz", controlGz}} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: m.name, Mode: 0o644, Size: int64(len(m.b)), ModTime: epochTime, Format: tar.FormatGNU}); err != nil {
			return nil, 0, err
		}
		if _, err := tw.Write(m.b); err != nil {
			return nil, 0, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, 0, err
	}
	ipk, err := gzipBytes(outer.Bytes())
	return ipk, installed, err
}
