package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/torwrt/torwrt/internal/ibsim/internal/siminfo"
)

// The root filesystem is made in the steps of the real IB's Makefile, each
// a sub-make there and here (see the simulated Makefile in
// internal/ibsim/tree.go):
//
//	package_reload   apk: cmdAPKInitDB; both: package_index when stale
//	package_index    cmdPackageIndex (packages/ indexed and signed)
//	package_install  cmdInstall: the package manager's part, from the
//	                 IB, the profile, PACKAGES and the feeds only
//	prepare_rootfs   cmdPrepareRootfs: ADD_LOCAL_KEY, FILES, the init
//	                 scripts enabled, DISABLED_SERVICES disabled
//
// so that what package_install leaves in TARGET_DIR depends on nothing
// prepare_rootfs reads, as in the real IB (torwrt's hooks/installed.mk
// saves and restores exactly that tree).

// cmdInstall is the real IB's package_install: install the packages into
// root (opkg install, or apk add --no-scripts) and nothing else: no FILES,
// no init script links, no local key.
//
// Non-reproducible on purpose, like the real thing: Installed-Time in the
// opkg status is the current time (unless SOURCE_DATE_EPOCH is set in the
// environment, as OpenWrt's opkg honours it), directories get the current
// time.
func cmdInstall(topdir, profile, packages, root string) error {
	if root == "" {
		return fmt.Errorf("install: --root is required")
	}
	ti, err := siminfo.Load(topdir)
	if err != nil {
		return err
	}
	p, err := ti.Profile(profile)
	if err != nil {
		return err
	}
	feeds, err := loadFeedsFor(topdir, ti)
	if err != nil {
		return err
	}
	pkgs, err := feeds.resolve(ti, p, packages)
	if err != nil {
		return err
	}
	// _call_image made root empty (and apk's package_reload put the
	// empty database in it); like opkg and apk, install adds to it.
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	r := &rootFS{dir: root}
	if ti.APK() {
		return r.installAPKs(ti, p, packages, pkgs)
	}
	fmt.Fprintf(os.Stderr, "Installing %d packages [SIMULATED opkg]\n", len(pkgs))
	var status bytes.Buffer
	installed := installTime()
	for _, pk := range pkgs {
		control, list, err := r.installPackage(pk)
		if err != nil {
			return err
		}
		if err := r.writeFile("usr/lib/opkg/info/"+pk.Name+".control", control, 0o644, time.Time{}); err != nil {
			return err
		}
		if err := r.writeFile("usr/lib/opkg/info/"+pk.Name+".list", []byte(strings.Join(list, "\n")+"\n"), 0o644, time.Time{}); err != nil {
			return err
		}
		fmt.Fprintf(&status, "Package: %s\nVersion: %s\n", pk.Name, pk.Version)
		if pk.Depends != "" {
			fmt.Fprintf(&status, "Depends: %s\n", pk.Depends)
		}
		fmt.Fprintf(&status, "Status: install user installed\nArchitecture: %s\nInstalled-Time: %d\n\n", pk.Arch, installed)
	}
	return r.writeFile("usr/lib/opkg/status", status.Bytes(), 0o644, time.Time{})
}

// installAPKs is the real 25.12 IB's package_install: apk add
// --no-scripts of libc, the kernel and the package list, into the
// database package_reload's apk add --initdb made; the database as apk
// writes it.
func (r *rootFS) installAPKs(ti *siminfo.TargetInfo, p *siminfo.Profile, packages string, pkgs []*pkg) error {
	fmt.Fprintf(os.Stderr, "Installing %d packages [SIMULATED apk add --no-scripts]\n", len(pkgs))
	var done []*apkInstalled
	for _, pk := range pkgs {
		ip, err := r.installAPK(pk)
		if err != nil {
			return err
		}
		done = append(done, ip)
	}
	return r.writeAPKDB(done, apkWorld(ti, p, packages), ti.Arch)
}

// cmdPrepareRootfs is the real IB's prepare_rootfs: with ADD_LOCAL_KEY
// (apk) the local public key in /etc/apk/keys, then FILES over the root,
// the init scripts enabled, and DISABLED_SERVICES disabled. It reads no
// feed and no package: only the tree package_install left in root.
//
// Non-reproducible on purpose, like the real thing: FILES keep their own
// mtimes and modes, and the local key is fresh in each fresh container.
func cmdPrepareRootfs(topdir, files, disabled, addLocalKey, root string) error {
	if root == "" {
		return fmt.Errorf("prepare-rootfs: --root is required")
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		return fmt.Errorf("prepare-rootfs: no root tree at %s (package_install makes it)", root)
	}
	ti, err := siminfo.Load(topdir)
	if err != nil {
		return err
	}
	r := &rootFS{dir: root}
	if ti.APK() && addLocalKey != "" {
		b, err := os.ReadFile(filepath.Join(topdir, apkLocalPub))
		if err != nil {
			return fmt.Errorf("ADD_LOCAL_KEY: %v", err)
		}
		if err := r.writeFile("etc/apk/keys/local-public-key.pem", b, 0o644, time.Time{}); err != nil {
			return err
		}
	}
	return r.finish(files, disabled)
}

// finish is the rest of prepare_rootfs: FILES over the root, services
// enabled, then DISABLED_SERVICES disabled.
func (r *rootFS) finish(files, disabled string) error {
	if files != "" {
		fmt.Fprintf(os.Stderr, "Copying FILES from %s [SIMULATED]\n", files)
		if err := r.copyFiles(files); err != nil {
			return fmt.Errorf("copying FILES=%s: %v", files, err)
		}
	}
	if err := r.enableServices(); err != nil {
		return err
	}
	for _, svc := range strings.Fields(disabled) {
		if err := r.disableService(svc); err != nil {
			return err
		}
	}
	return nil
}

func installTime() int64 {
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
	}
	return time.Now().Unix()
}

type rootFS struct{ dir string }

// resolve maps a path inside the root filesystem to a host path, following
// symlinks as the target would (absolute links are relative to the root)
// and never leaving the root. Missing components are appended as they are.
func (r *rootFS) resolve(rel string, followLast bool) (string, error) {
	parts := splitPath(rel)
	var cur []string
	hops := 0
	for len(parts) > 0 {
		part := parts[0]
		parts = parts[1:]
		switch part {
		case "", ".":
			continue
		case "..":
			if len(cur) > 0 {
				cur = cur[:len(cur)-1]
			}
			continue
		}
		host := filepath.Join(r.dir, filepath.Join(cur...), part)
		fi, err := os.Lstat(host)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 || (len(parts) == 0 && !followLast) {
			cur = append(cur, part)
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("too many symlinks resolving %s", rel)
		}
		target, err := os.Readlink(host)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			cur = nil
		}
		parts = append(splitPath(target), parts...)
	}
	return filepath.Join(r.dir, filepath.Join(cur...)), nil
}

func splitPath(p string) []string { return strings.Split(strings.Trim(p, "/"), "/") }

// mkdirAll creates the directory rel (following symlinks inside the root).
func (r *rootFS) mkdirAll(rel string) (string, error) {
	p, err := r.resolve(rel, true)
	if err != nil {
		return "", err
	}
	return p, os.MkdirAll(p, 0o755)
}

// place returns the host path for a new entry at rel, its parent created
// and anything but a directory already there removed.
func (r *rootFS) place(rel string) (string, error) {
	parent, err := r.mkdirAll(path.Dir("/" + rel))
	if err != nil {
		return "", err
	}
	p := filepath.Join(parent, path.Base("/"+rel))
	if fi, err := os.Lstat(p); err == nil {
		if fi.IsDir() {
			return "", fmt.Errorf("%s: a directory is in the way", rel)
		}
		if err := os.Remove(p); err != nil {
			return "", err
		}
	}
	return p, nil
}

func (r *rootFS) writeFile(rel string, b []byte, mode os.FileMode, mtime time.Time) error {
	p, err := r.place(rel)
	if err != nil {
		return err
	}
	if err := os.WriteFile(p, b, mode|0o200); err != nil {
		return err
	}
	if err := os.Chmod(p, mode); err != nil {
		return err
	}
	if !mtime.IsZero() {
		return os.Chtimes(p, mtime, mtime)
	}
	return nil
}

func (r *rootFS) symlink(rel, target string) error {
	p, err := r.place(rel)
	if err != nil {
		return err
	}
	return os.Symlink(target, p)
}

// installPackage checks the ipk against the index and unpacks its data.
func (r *rootFS) installPackage(pk *pkg) (control []byte, list []string, err error) {
	file := filepath.Join(pk.feed.dir, filepath.FromSlash(pk.Filename))
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, fmt.Errorf("package %s: %v", pk.Name, err)
	}
	if int64(len(b)) != pk.Size {
		return nil, nil, fmt.Errorf("package %s: %s is %d bytes, the Packages index of feed %s says %d", pk.Name, file, len(b), pk.feed.name, pk.Size)
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != pk.SHA256 {
		return nil, nil, fmt.Errorf("package %s: SHA256 of %s is %s, the Packages index of feed %s says %s", pk.Name, file, got, pk.feed.name, pk.SHA256)
	}
	members, err := readTarGz(b, 4<<20)
	if err != nil {
		return nil, nil, fmt.Errorf("package %s: %s is not an ipk (gzip'd tar): %v", pk.Name, file, err)
	}
	data, ok1 := members["debian-binary"]
	ctl, ok2 := members["control.tar.gz"]
	dat, ok3 := members["data.tar.gz"]
	if !ok1 || !ok2 || !ok3 || string(data.body) != "2.0\n" {
		return nil, nil, fmt.Errorf("package %s: %s lacks debian-binary 2.0, control.tar.gz or data.tar.gz", pk.Name, file)
	}
	cm, err := readTarGz(ctl.body, 1<<20)
	if err != nil {
		return nil, nil, fmt.Errorf("package %s: control.tar.gz: %v", pk.Name, err)
	}
	if c, ok := cm["control"]; ok {
		control = c.body
	}
	list, err = r.untar(dat.body)
	if err != nil {
		return nil, nil, fmt.Errorf("package %s: data.tar.gz: %v", pk.Name, err)
	}
	return control, list, nil
}

type member struct {
	hdr  *tar.Header
	body []byte
}

func readTarGz(b []byte, limit int64) (map[string]member, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	out := map[string]member{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(io.LimitReader(tr, limit+1))
		if err != nil {
			return nil, err
		}
		if int64(len(body)) > limit {
			return nil, fmt.Errorf("%s is larger than %d bytes", h.Name, limit)
		}
		out[strings.TrimPrefix(path.Clean("/"+h.Name), "/")] = member{h, body}
	}
}

// untar unpacks a package's data.tar.gz into the root and returns the
// installed paths (opkg's .list).
func (r *rootFS) untar(b []byte) ([]string, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	var list []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return list, nil
		}
		if err != nil {
			return nil, err
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if name == "" {
			continue
		}
		for _, part := range strings.Split(h.Name, "/") {
			if part == ".." {
				return nil, fmt.Errorf("entry %q escapes the root", h.Name)
			}
		}
		switch h.Typeflag {
		case tar.TypeDir:
			p, err := r.mkdirAll(name)
			if err != nil {
				return nil, err
			}
			m := h.FileInfo().Mode()
			if err := os.Chmod(p, m&(os.ModePerm|os.ModeSticky|os.ModeSetgid)|0o700); err != nil {
				return nil, err
			}
		case tar.TypeReg:
			body, err := io.ReadAll(io.LimitReader(tr, 64<<20))
			if err != nil {
				return nil, err
			}
			if err := r.writeFile(name, body, os.FileMode(h.Mode).Perm(), h.ModTime); err != nil {
				return nil, err
			}
			list = append(list, "/"+name)
		case tar.TypeSymlink:
			if err := r.symlink(name, h.Linkname); err != nil {
				return nil, err
			}
			list = append(list, "/"+name)
		default:
			return nil, fmt.Errorf("entry %q: unsupported type %c", h.Name, h.Typeflag)
		}
	}
}

// copyFiles copies the FILES tree over the root like `cp -fpR FILES/* root`:
// modes and mtimes come from FILES (so an un-normalized overlay makes the
// image differ from one checkout to the next, as with the real IB).
func (r *rootFS) copyFiles(src string) error {
	type dirMeta struct {
		p     string
		mode  os.FileMode
		mtime time.Time
	}
	var dirs []dirMeta
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			hp, err := r.mkdirAll(rel)
			if err != nil {
				return err
			}
			dirs = append(dirs, dirMeta{hp, fi.Mode().Perm(), fi.ModTime()})
		case fi.Mode()&os.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return r.symlink(rel, t)
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return r.writeFile(rel, b, fi.Mode().Perm(), fi.ModTime())
		default:
			return fmt.Errorf("%s: unsupported file type %v", p, fi.Mode().Type())
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Chmod(dirs[i].p, dirs[i].mode|0o700)
		os.Chtimes(dirs[i].p, dirs[i].mtime, dirs[i].mtime)
	}
	return nil
}

var startRe = regexp.MustCompile(`^(START|STOP)=([0-9]{1,2})\s*$`)

// enableServices links every rc.common init script into /etc/rc.d, as the
// real IB does for all of /etc/init.d (packages and FILES alike).
func (r *rootFS) enableServices() error {
	dir, err := r.resolve("etc/init.d", true)
	if err != nil {
		return err
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil || !bytes.HasPrefix(b, []byte("#!/bin/sh /etc/rc.common")) {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			m := startRe.FindStringSubmatch(strings.TrimSpace(sc.Text()))
			if m == nil {
				continue
			}
			prefix := "S"
			if m[1] == "STOP" {
				prefix = "K"
			}
			n, _ := strconv.Atoi(m[2])
			if err := r.symlink(fmt.Sprintf("etc/rc.d/%s%02d%s", prefix, n, e.Name()), "../init.d/"+e.Name()); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *rootFS) disableService(svc string) error {
	dir, err := r.resolve("etc/rc.d", true)
	if err != nil {
		return err
	}
	ents, _ := os.ReadDir(dir)
	n := 0
	for _, e := range ents {
		name := e.Name()
		if len(name) == 3+len(svc) && (name[0] == 'S' || name[0] == 'K') && isDigit(name[1]) && isDigit(name[2]) && name[3:] == svc {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return err
			}
			n++
		}
	}
	if n == 0 {
		fmt.Fprintf(os.Stderr, "DISABLED_SERVICES: %s is not an enabled service, nothing to disable [SIMULATED]\n", svc)
	} else {
		fmt.Fprintf(os.Stderr, "Disabling %s [SIMULATED]\n", svc)
	}
	return nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
