package main

// The apk-tools v3 side of the simulated 25.12 ImageBuilder: what the real
// IB's _check_keys, package_reload (apk add --initdb), package_index (apk
// mkndx), package_install (apk add --no-scripts) and `apk list --manifest`
// do, with internal/apk reading and writing the
// ADB files.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/torwrt/torwrt/internal/apk"
	"github.com/torwrt/torwrt/internal/ibsim/internal/siminfo"
)

const (
	apkLocalSec = "keys/local-private-key.pem"
	apkLocalPub = "keys/local-public-key.pem"
	// The comment line the real IB's _check_keys puts in front of both.
	apkLocalComment = "untrusted comment: Local build key\n"
)

// cmdAPKKeygen is _check_keys of the real 25.12 IB: a fresh EC P-256 key
// (openssl ecparam -name prime256v1 -genkey) when keys/local-private-key.pem
// is missing, so every fresh container has its own.
func cmdAPKKeygen(topdir string) error {
	sec := filepath.Join(topdir, apkLocalSec)
	if _, err := os.Stat(sec); err == nil {
		return nil
	}
	fmt.Fprintf(os.Stderr, "Generating local apk key %s (fresh random EC key, SIMULATED openssl ecparam -genkey)\n", sec)
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	sk, err := apk.ParseSecretKeyPEM(ecPEM(k))
	if err != nil {
		return err
	}
	pub, err := sk.Public().MarshalPEM()
	if err != nil {
		return err
	}
	secPEM, err := sk.MarshalPEM()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(sec), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(sec, append([]byte(apkLocalComment), secPEM...), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(topdir, apkLocalPub), append([]byte(apkLocalComment), pub...), 0o644)
}

// apkRepo is one repository: a packages.adb and the directory its
// packages are in.
type apkRepo struct {
	url, index, dir string
}

// apkIndex is the apk side of the real 25.12 IB's package_index, which
// its package_reload runs when packages/packages.adb is missing or older
// than a file of packages/: index packages/*.apk (apk mkndx --sign
// keys/local-private-key.pem --allow-untrusted). Without *.apk files there
// is no index, as apk mkndx fails on the empty glob there (|| true). The
// local key signs with ECDSA, so the index differs on every fresh key.
func apkIndex(topdir string) error {
	dir := filepath.Join(topdir, "packages")
	apks, _ := filepath.Glob(filepath.Join(dir, "*.apk"))
	if len(apks) == 0 {
		return nil
	}
	sort.Strings(apks)
	fmt.Fprintln(os.Stderr, "Indexing packages/ [SIMULATED apk mkndx]")
	skb, err := os.ReadFile(filepath.Join(topdir, apkLocalSec))
	if err != nil {
		return fmt.Errorf("package_index: no local key (make generates it first): %v", err)
	}
	sk, err := apk.ParseSecretKeyPEM(skb)
	if err != nil {
		return fmt.Errorf("%s: %v", apkLocalSec, err)
	}
	idx := &apk.Index{}
	for _, a := range apks {
		b, err := os.ReadFile(a)
		if err != nil {
			return err
		}
		p, err := apk.ReadPackage(bytes.NewReader(b), 0)
		if err != nil {
			return fmt.Errorf("%s: %v", a, err)
		}
		idx.Packages = append(idx.Packages, apk.EntryFor(p, uint64(len(b))))
	}
	out, err := apk.WriteIndex(idx, sk)
	if err != nil {
		return fmt.Errorf("indexing packages/: %v", err)
	}
	return os.WriteFile(filepath.Join(dir, "packages.adb"), out, 0o644)
}

// cmdAPKInitDB is the `apk add --initdb` the real 25.12 IB's
// package_reload runs on TARGET_DIR: the empty database, which
// package_install's apk add then fills (and the simulated one rewrites
// whole, so the files here end as they would without this step).
func cmdAPKInitDB(topdir, root string) error {
	if root == "" {
		return fmt.Errorf("apk-initdb: --root is required")
	}
	ti, err := siminfo.Load(topdir)
	if err != nil {
		return err
	}
	if !ti.APK() {
		return fmt.Errorf("apk-initdb: this ImageBuilder uses %s, not apk", ti.PackageManager)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	r := &rootFS{dir: root}
	for _, f := range []struct {
		p    string
		b    []byte
		mode os.FileMode
	}{
		{"lib/apk/db/installed", nil, 0o644},
		{"lib/apk/db/triggers", nil, 0o644},
		{"lib/apk/db/lock", nil, 0o600},
		{"etc/apk/world", nil, 0o644},
		{"etc/apk/arch", []byte(ti.Arch + "\n"), 0o644},
	} {
		if err := r.writeFile(f.p, f.b, f.mode, time.Time{}); err != nil {
			return err
		}
	}
	_, err = r.mkdirAll("etc/apk/keys")
	return err
}

// loadAPKFeeds reads /builder/repositories and every index it lists, each
// verified against every keys/*.pem, plus the IB's own packages/packages.adb
// (the real IB passes it with --repository). package_reload has indexed
// packages/ before (package_index).
func loadAPKFeeds(topdir string) (*feedSet, error) {
	confPath := filepath.Join(topdir, "repositories")
	b, err := os.ReadFile(confPath)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %v", confPath, err)
	}
	var repos []apkRepo
	seen := map[string]bool{}
	add := func(r apkRepo) {
		if !seen[r.index] {
			seen[r.index] = true
			repos = append(repos, r)
		}
	}
	var offline []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for ln := 1; sc.Scan(); ln++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		u := f[len(f)-1] // apk allows "@tag url"; the URL is last
		var p string
		switch {
		case strings.HasPrefix(u, "file://"):
			p = strings.TrimPrefix(u, "file://")
		case strings.HasPrefix(u, "http://"), strings.HasPrefix(u, "https://"), strings.HasPrefix(u, "ftp://"):
			offline = append(offline, u)
			// apk without network: a warning, the repository is skipped.
			fmt.Fprintf(os.Stderr, "WARNING: opening %s: network error (the SIMULATED ImageBuilder has no network, like a hermetic build of the real one; bind-mount a repositories file listing local indexes, /path/packages.adb or file:///path/packages.adb, over %s)\n", u, confPath)
			continue
		default:
			p = u
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(topdir, p)
		}
		p = filepath.Clean(p)
		if !strings.HasSuffix(p, ".adb") {
			return nil, fmt.Errorf("repositories:%d: %q does not name a packages.adb", ln, u)
		}
		add(apkRepo{url: u, index: p, dir: filepath.Dir(p)})
	}
	own := filepath.Join(topdir, "packages", "packages.adb")
	if _, err := os.Stat(own); err == nil {
		add(apkRepo{url: "packages/packages.adb", index: own, dir: filepath.Dir(own)})
	}
	keys, err := trustedKeys(filepath.Join(topdir, "keys"))
	if err != nil {
		return nil, err
	}
	fs := &feedSet{pkgs: map[string]*pkg{}, apk: true, offline: offline}
	for _, r := range repos {
		b, err := os.ReadFile(r.index)
		if err != nil {
			return nil, fmt.Errorf("opening %s: %v", r.url, err)
		}
		idx, err := apk.ReadIndex(b, keys)
		if err != nil {
			msg := err.Error()
			switch {
			case errors.Is(err, apk.ErrUnsigned), errors.Is(err, apk.ErrUntrustedKey):
				msg = "UNTRUSTED signature"
			case errors.Is(err, apk.ErrBadSignature):
				msg = "BAD signature"
			}
			return nil, fmt.Errorf("opening %s: %s (%v; trusted keys: %s/*.pem)", r.url, msg, err, filepath.Join(topdir, "keys"))
		}
		rr := r
		fd := &feed{name: r.url, url: r.url, dir: r.dir}
		for i := range idx.Packages {
			e := &idx.Packages[i]
			var deps []string
			for _, d := range e.Depends {
				if strings.HasPrefix(d, "!") {
					continue // a conflict, not a dependency
				}
				if j := strings.IndexAny(d, "<>=~"); j >= 0 {
					d = d[:j]
				}
				deps = append(deps, d)
			}
			p := &pkg{Name: e.Name, Version: e.Version, Depends: strings.Join(deps, ", "), Arch: e.Arch,
				Filename: e.Name + "-" + e.Version + ".apk", Size: int64(e.FileSize), feed: fd, entry: e, repo: &rr}
			if _, dup := fs.pkgs[p.Name]; !dup {
				fs.pkgs[p.Name] = p
			}
			for _, pv := range e.Provides {
				if j := strings.IndexAny(pv, "<>=~"); j >= 0 {
					pv = pv[:j]
				}
				if _, dup := fs.pkgs[pv]; !dup {
					fs.pkgs[pv] = p
				}
			}
		}
	}
	return fs, nil
}

// apkCmp is apk_name_cmp_display: strcasecmp, then strcmp.
func apkCmp(a, b string) int {
	if c := strings.Compare(strings.ToLower(a), strings.ToLower(b)); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

// apkManifest is `apk list --quiet --manifest`: "name version", sorted.
func apkManifest(pkgs []*pkg) []byte {
	s := append([]*pkg{}, pkgs...)
	sort.Slice(s, func(i, j int) bool { return apkCmp(s[i].Name, s[j].Name) < 0 })
	var b strings.Builder
	for _, p := range s {
		fmt.Fprintf(&b, "%s %s\n", p.Name, p.Version)
	}
	return []byte(b.String())
}

// apkInstalled is one package as apk records it.
type apkInstalled struct {
	p   *apk.Package
	e   *apk.IndexEntry
	rec []byte // its /lib/apk/db/installed record
}

// apkWorld is what the IB asked for: libc, kernel, then the package list
// with the removed ones filtered out (apk add libc; apk add kernel; apk
// add $(BUILD_PACKAGES)); apk keeps /etc/apk/world sorted.
func apkWorld(ti *siminfo.TargetInfo, p *siminfo.Profile, packages string) []string {
	removed := map[string]bool{}
	want := []string{"libc", "kernel"}
	want = append(want, ti.DefaultPackages...)
	want = append(want, p.DevicePackages...)
	for _, w := range strings.Fields(packages) {
		if n, ok := strings.CutPrefix(w, "-"); ok {
			removed[n] = true
		} else {
			want = append(want, w)
		}
	}
	set := map[string]bool{}
	var out []string
	for _, w := range want {
		if (!removed[w] || w == "libc" || w == "kernel") && !set[w] {
			set[w] = true
			out = append(out, w)
		}
	}
	sort.Slice(out, func(i, j int) bool { return apkCmp(out[i], out[j]) < 0 })
	return out
}

// installAPK checks the downloaded package against its index entry (size
// and identity hash, as apk does), unpacks it into the root as apk add
// does (regular files get the package's mtime; directories and symlinks
// the current time), and returns what the database needs.
func (r *rootFS) installAPK(pk *pkg) (*apkInstalled, error) {
	file := filepath.Join(pk.repo.dir, pk.Filename)
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s-%s: %v", pk.Name, pk.Version, err)
	}
	if int64(len(b)) != pk.Size {
		return nil, fmt.Errorf("%s-%s: file integrity error: %s is %d bytes, the index %s says %d", pk.Name, pk.Version, file, len(b), pk.repo.url, pk.Size)
	}
	p, err := apk.ReadPackage(bytes.NewReader(b), 64<<20)
	if err != nil {
		return nil, fmt.Errorf("%s-%s: %s: %v", pk.Name, pk.Version, file, err)
	}
	if err := p.MatchIndex(pk.entry); err != nil {
		return nil, fmt.Errorf("%s-%s: package file does not match the index %s: %v", pk.Name, pk.Version, pk.repo.url, err)
	}
	for _, d := range p.Dirs {
		if d.Path == "" {
			continue
		}
		hp, err := r.mkdirAll(d.Path)
		if err != nil {
			return nil, err
		}
		if err := os.Chmod(hp, d.Mode&(fs.ModePerm|fs.ModeSticky|fs.ModeSetgid|fs.ModeSetuid)|0o700); err != nil {
			return nil, err
		}
	}
	for _, f := range p.Files {
		switch {
		case f.Mode&fs.ModeSymlink != 0:
			if err := r.symlink(f.Path, f.Target); err != nil {
				return nil, err
			}
		case f.Mode.IsRegular():
			if err := r.writeFile(f.Path, f.Data, f.Mode.Perm(), unixTime(f.MTime)); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("%s: %s: unsupported file type %v", pk.Name, f.Path, f.Mode.Type())
		}
	}
	return &apkInstalled{p: p, e: pk.entry, rec: installedRecord(p, pk.entry)}, nil
}

// q1 is apk's "Q1" + base64 form of a 20-byte (SHA-256/160) hash.
func q1(h []byte) string {
	if len(h) > 20 {
		h = h[:20]
	}
	return "Q1" + base64.StdEncoding.EncodeToString(h)
}

func aclLine(field byte, mode fs.FileMode, user, group string) string {
	uid, gid := idOf(user), idOf(group)
	perm := uint32(mode.Perm())
	if mode&fs.ModeSticky != 0 {
		perm |= 0o1000
	}
	if mode&fs.ModeSetgid != 0 {
		perm |= 0o2000
	}
	if mode&fs.ModeSetuid != 0 {
		perm |= 0o4000
	}
	return fmt.Sprintf("%c:%d:%d:%o\n", field, uid, gid, perm)
}

func idOf(name string) int {
	if name == "" || name == "root" {
		return 0
	}
	return 65534 // the sim's packages are root-owned
}

// installedRecord is apk_db_fdb_write of apk-tools 3.0 (src/database.c):
// apk_pkg_write_index_header (C P V A S I T U L o m t c k, then D p i),
// f:S for a v3 package, then each directory instance (the root only when
// it holds files) with M: unless 0755 root, and its files with a: unless
// 0644 root and Z: (SHA-256/160 of the content or the link target).
func installedRecord(p *apk.Package, e *apk.IndexEntry) []byte {
	var b strings.Builder
	in := p.Info
	fmt.Fprintf(&b, "C:%s\nP:%s\nV:%s\n", q1(e.Identity), in.Name, in.Version)
	if in.Arch != "" {
		fmt.Fprintf(&b, "A:%s\n", in.Arch)
	}
	fmt.Fprintf(&b, "S:%d\nI:%d\nT:%s\nU:%s\nL:%s\n", e.FileSize, in.InstalledSize, in.Description, in.URL, in.License)
	if in.Origin != "" {
		fmt.Fprintf(&b, "o:%s\n", in.Origin)
	}
	if in.Maintainer != "" {
		fmt.Fprintf(&b, "m:%s\n", in.Maintainer)
	}
	if in.BuildTime != 0 {
		fmt.Fprintf(&b, "t:%d\n", in.BuildTime)
	}
	if len(in.RepoCommit) != 0 {
		fmt.Fprintf(&b, "c:%s\n", hex.EncodeToString(in.RepoCommit))
	}
	if in.ProviderPriority != 0 {
		fmt.Fprintf(&b, "k:%d\n", in.ProviderPriority)
	}
	for _, d := range []struct {
		f    string
		deps []string
	}{{"D:", in.Depends}, {"p:", in.Provides}, {"i:", in.InstallIf}} {
		if len(d.deps) > 0 {
			b.WriteString(d.f + strings.Join(d.deps, " ") + "\n")
		}
	}
	if len(p.Dirs) > 0 {
		b.WriteString("f:S\n")
	}
	files := map[string][]apk.FileEntry{}
	for _, f := range p.Files {
		files[path.Dir("/" + f.Path)[1:]] = append(files[path.Dir("/" + f.Path)[1:]], f)
	}
	for _, d := range p.Dirs {
		fl := files[d.Path]
		if d.Path == "" && len(fl) == 0 {
			continue
		}
		fmt.Fprintf(&b, "F:%s\n", d.Path)
		if d.Mode.Perm() != 0o755 || d.Mode&(fs.ModeSticky|fs.ModeSetgid|fs.ModeSetuid) != 0 || idOf(d.User) != 0 || idOf(d.Group) != 0 {
			b.WriteString(aclLine('M', d.Mode, d.User, d.Group))
		}
		for _, f := range fl {
			fmt.Fprintf(&b, "R:%s\n", path.Base(f.Path))
			mode := f.Mode
			if mode&fs.ModeSymlink != 0 {
				mode = 0o777
			}
			if mode.Perm() != 0o644 || mode&(fs.ModeSticky|fs.ModeSetgid|fs.ModeSetuid) != 0 || idOf(f.User) != 0 || idOf(f.Group) != 0 {
				b.WriteString(aclLine('a', mode, f.User, f.Group))
			}
			var h [32]byte
			if f.Mode&fs.ModeSymlink != 0 {
				h = sha256.Sum256([]byte(f.Target))
			} else {
				h = sha256.Sum256(f.Data)
			}
			fmt.Fprintf(&b, "Z:%s\n", q1(h[:]))
		}
	}
	b.WriteString("\n")
	return []byte(b.String())
}

// apkTarHeader is apk_tar_fill_header: GNU magic, root/root, octal
// fields as put_octal writes them (size and mtime without a NUL).
func apkTarHeader(typeflag byte, name string, size int, mode uint32, mtime int64) []byte {
	h := make([]byte, 512)
	copy(h[0:99], name)
	putOctal(h[100:108], uint64(mode&0o7777), true)
	putOctal(h[108:116], 0, true)
	putOctal(h[116:124], 0, true)
	putOctal(h[124:136], uint64(size), false)
	putOctal(h[136:148], uint64(mtime), false)
	h[156] = typeflag
	copy(h[257:265], "ustar  \x00")
	copy(h[265:297], "root")
	copy(h[297:329], "root")
	for i := 148; i < 156; i++ {
		h[i] = ' '
	}
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	putOctal(h[148:155], uint64(sum), true)
	return h
}

func putOctal(s []byte, v uint64, nul bool) {
	i := len(s) - 1
	if nul {
		s[i] = 0
		i--
	}
	for ; i >= 0; i-- {
		s[i] = byte('0' + v%8)
		v /= 8
	}
}

func tarPad(n int) []byte { return make([]byte, (512-n%512)%512) }

// scriptsTar is apk_db_scriptdb_write for every package (sorted), closed
// with the end-of-archive blocks: entries "<name>-<version>.X1<hex of the
// 20-byte identity>.<script>", mode 0755, mtime = the package's build time,
// GNU long-name entries for names over 99 bytes.
func scriptsTar(pkgs []*apkInstalled) []byte {
	var b bytes.Buffer
	for _, ip := range pkgs {
		for _, sn := range apk.ScriptNames {
			sc, ok := ip.p.Scripts[sn]
			if !ok {
				continue
			}
			name := ip.p.Info.Name + "-" + ip.p.Info.Version + ".X1" + hex.EncodeToString(ip.e.Identity[:20]) + "." + sn
			if len(name) > 99 {
				b.Write(apkTarHeader('L', "././@LongLink", len(name), 0o755, ip.p.Info.BuildTime))
				b.WriteString(name + "\x00")
				b.Write(tarPad(len(name) + 1))
			}
			b.Write(apkTarHeader('0', name, len(sc), 0o755, ip.p.Info.BuildTime))
			b.WriteString(sc)
			b.Write(tarPad(len(sc)))
		}
	}
	b.Write(make([]byte, 1024))
	return b.Bytes()
}

// gzipZlib compresses like apk's apk_ostream_gzip (zlib level 9): the
// header has mtime 0, XFL 2, OS 3 (Unix), so the header bytes are apk's;
// Go's deflate stream is not byte-for-byte zlib's.
func gzipZlib(b []byte) ([]byte, error) {
	var out bytes.Buffer
	zw, err := gzip.NewWriterLevel(&out, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	zw.OS = 3
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// writeAPKDB writes the apk database as apk add --initdb leaves it:
// lib/apk/db/{installed,scripts.tar.gz,triggers,lock}, etc/apk/world,
// etc/apk/arch, and the (empty unless a package ships one) etc/apk/keys.
// apk writes these files with the current time and sets no directory
// time; SOURCE_DATE_EPOCH does not change that (apk reads it only in
// mkpkg/mkndx: apk_get_build_time in src/common.c).
func (r *rootFS) writeAPKDB(pkgs []*apkInstalled, world []string, arch string) error {
	sort.Slice(pkgs, func(i, j int) bool { return apkCmp(pkgs[i].p.Info.Name, pkgs[j].p.Info.Name) < 0 })
	var inst bytes.Buffer
	for _, ip := range pkgs {
		inst.Write(ip.rec)
	}
	scripts, err := gzipZlib(scriptsTar(pkgs))
	if err != nil {
		return err
	}
	for _, f := range []struct {
		p    string
		b    []byte
		mode os.FileMode
	}{
		{"lib/apk/db/installed", inst.Bytes(), 0o644},
		{"lib/apk/db/scripts.tar.gz", scripts, 0o644},
		{"lib/apk/db/triggers", nil, 0o644},
		{"lib/apk/db/lock", nil, 0o600},
		{"etc/apk/world", []byte(strings.Join(world, "\n") + "\n"), 0o644},
		{"etc/apk/arch", []byte(arch + "\n"), 0o644},
	} {
		if err := r.writeFile(f.p, f.b, f.mode, unixTime(0)); err != nil {
			return err
		}
	}
	_, err = r.mkdirAll("etc/apk/keys")
	return err
}

// unixTime is sec as a time, or the zero time (leave the clock's) for 0.
func unixTime(sec int64) time.Time {
	if sec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0)
}

// ecPEM is k as openssl writes an EC private key (SEC 1 "EC PRIVATE KEY").
func ecPEM(k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		panic(err) // a P-256 key always marshals
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

// trustedKeys is apk --keys-dir: every file of dir that holds a public key
// (PEM) is trusted; files that do not parse, such as the local private
// key, are skipped as apk skips them (src/context.c).
func trustedKeys(dir string) (*apk.Keyring, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("loading trusted keys: %v", err)
	}
	keys := apk.NewKeyring()
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // a directory, a dangling link
		}
		if k, err := apk.ParsePublicKeyPEM(b); err == nil {
			keys.Add(k)
		}
	}
	return keys, nil
}
