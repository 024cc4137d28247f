package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/torwrt/torwrt/internal/ibsim/internal/siminfo"
	"github.com/torwrt/torwrt/internal/usign"
)

// cmdPackageIndex is the real IB's package_index, which its package_reload
// runs when the index of packages/ (the IB's own local feed) is missing or
// older than a file there: for apk, apk mkndx (apkIndex); for opkg,
// ipkg-make-index.sh into Packages, gzip -9n into Packages.gz, and usign -S
// with the local build key into Packages.sig.
func cmdPackageIndex(topdir string) error {
	ti, err := siminfo.Load(topdir)
	if err != nil {
		return err
	}
	if ti.APK() {
		return apkIndex(topdir)
	}
	return opkgIndex(topdir)
}

// opkgIndex indexes packages/*.ipk. A fresh simulated IB has none; the
// real one then writes an empty, signed index, which usign here refuses
// to sign, so the simulated one writes none and opkg reads an empty local
// feed (readIndex), as it would that empty index.
func opkgIndex(topdir string) error {
	dir := filepath.Join(topdir, "packages")
	ipks, _ := filepath.Glob(filepath.Join(dir, "*.ipk"))
	if len(ipks) == 0 {
		fmt.Fprintln(os.Stderr, "packages/ holds no *.ipk: no index to build [SIMULATED ipkg-make-index.sh]")
		return nil
	}
	sort.Strings(ipks)
	fmt.Fprintf(os.Stderr, "Indexing %d packages in packages/ [SIMULATED ipkg-make-index.sh, usign -S]\n", len(ipks))
	var index bytes.Buffer
	for _, f := range ipks {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		members, err := readTarGz(b, 4<<20)
		if err != nil {
			return fmt.Errorf("%s is not an ipk (gzip'd tar): %v", f, err)
		}
		ctl, ok := members["control.tar.gz"]
		if !ok {
			return fmt.Errorf("%s lacks control.tar.gz", f)
		}
		cm, err := readTarGz(ctl.body, 1<<20)
		if err != nil {
			return fmt.Errorf("%s: control.tar.gz: %v", f, err)
		}
		c, ok := cm["control"]
		if !ok {
			return fmt.Errorf("%s: control.tar.gz lacks control", f)
		}
		sum := sha256.Sum256(b)
		index.Write(bytes.TrimRight(c.body, "\n"))
		fmt.Fprintf(&index, "\nFilename: %s\nSize: %d\nSHA256sum: %s\n\n", filepath.Base(f), len(b), hex.EncodeToString(sum[:]))
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression) // gzip -9n: no name, no time
	if err != nil {
		return err
	}
	if _, err := zw.Write(index.Bytes()); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	skb, err := os.ReadFile(filepath.Join(topdir, "key-build"))
	if err != nil {
		return fmt.Errorf("package_index: no local build key (make generates it first): %v", err)
	}
	sk, err := usign.ParseSecretKey(skb)
	if err != nil {
		return fmt.Errorf("key-build: %v", err)
	}
	sig, err := sk.Sign(index.Bytes())
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{"Packages", index.Bytes()}, {"Packages.gz", gz.Bytes()}, {"Packages.sig", sig.Marshal()}} {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
