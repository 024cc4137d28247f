package apk

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// ScriptNames are the script slots of a package, in field order.
var ScriptNames = []string{"trigger", "pre-install", "post-install", "pre-deinstall", "post-deinstall", "pre-upgrade", "post-upgrade"}

// FileEntry is one non-directory file of a package (or, with fs.ModeDir in
// Mode, a directory's own attributes when writing).
type FileEntry struct {
	Path   string      // relative, no leading "/"
	Mode   fs.FileMode // permission bits plus fs.ModeSymlink / fs.ModeDir
	User   string      // "root" if empty
	Group  string      // "root" if empty
	Size   uint64
	MTime  int64
	SHA256 []byte // regular files
	Target string // symlinks
	Data   []byte // regular file content
}

// Dir is a directory node of a package.
type Dir struct {
	Path        string // "" is the root
	Mode        fs.FileMode
	User, Group string
}

// Package is a parsed .apk v3 file.
type Package struct {
	Info     PackageInfo
	Dirs     []Dir
	Files    []FileEntry
	Scripts  map[string]string
	Triggers []string
	// Identity is SHA-256 over the ADB block: what an index lists in
	// "hashes" for this package.
	Identity []byte
	// Signed reports whether the file had signature blocks (not checked).
	Signed bool
}

// MatchIndex checks that p is the package e describes (same identity).
func (p *Package) MatchIndex(e *IndexEntry) error {
	if e == nil {
		return fmt.Errorf("%w: %s not in index", ErrIdentity, p.Info.Name)
	}
	if !bytes.Equal(p.Identity, e.Identity) {
		return fmt.Errorf("%w: %s: %x, index has %x", ErrIdentity, p.Info.Name, p.Identity, e.Identity)
	}
	return nil
}

const (
	sIFMT  = 0170000
	sIFREG = 0100000
	sIFLNK = 0120000
)

// ReadPackage reads a .apk v3 package of at most maxSize bytes (compressed
// and uncompressed; 0 means DefaultMaxSize), checking every file's size
// and SHA-256 against its data block.
func ReadPackage(rd io.Reader, maxSize int64) (*Package, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	b, err := io.ReadAll(io.LimitReader(rd, maxSize+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > maxSize {
		return nil, fmt.Errorf("%w: package over %d bytes", ErrTooLarge, maxSize)
	}
	return parsePackage(b, maxSize)
}

func parsePackage(b []byte, maxSize int64) (*Package, error) {
	b, err := decompress(b, maxSize)
	if err != nil {
		return nil, err
	}
	c, err := parseContainer(b, SchemaPackage)
	if err != nil {
		return nil, err
	}
	r := newReader(c.adb)
	root, err := r.obj(r.root())
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(c.adb)
	p := &Package{Identity: sum[:], Signed: len(c.sigs) > 0, Scripts: map[string]string{}}
	if p.Info, p.Info.UniqueID, err = r.info(root.at(1)); err != nil {
		return nil, err
	}
	paths, err := r.obj(root.at(2))
	if err != nil {
		return nil, err
	}
	type key struct{ i, j uint32 }
	regular := map[key]int{}
	seen := map[string]bool{} // directory and file paths
	for i, dv := range paths.items() {
		d, err := r.obj(dv)
		if err != nil {
			return nil, err
		}
		dname, err := r.str(d.at(1))
		if err != nil {
			return nil, err
		}
		if !safePath(dname, true) {
			return nil, malformed("unsafe directory name %q", dname)
		}
		if seen[dname] {
			return nil, malformed("duplicate path %q", dname)
		}
		seen[dname] = true
		mode, user, group, err := r.acl(d.at(2))
		if err != nil {
			return nil, err
		}
		p.Dirs = append(p.Dirs, Dir{Path: dname, Mode: fs.ModeDir | fs.FileMode(mode&0777) | specialBits(mode), User: user, Group: group})
		files, err := r.obj(d.at(3))
		if err != nil {
			return nil, err
		}
		for j, fv := range files.items() {
			f, err := r.obj(fv)
			if err != nil {
				return nil, err
			}
			name, err := r.str(f.at(1))
			if err != nil {
				return nil, err
			}
			if name == "" || strings.Contains(name, "/") || name == "." || name == ".." {
				return nil, malformed("unsafe file name %q", name)
			}
			e := FileEntry{Path: path.Join(dname, name)}
			if dname == "" {
				e.Path = name
			}
			if seen[e.Path] {
				return nil, malformed("duplicate path %q", e.Path)
			}
			seen[e.Path] = true
			mode, e.User, e.Group, err = r.acl(f.at(2))
			if err != nil {
				return nil, err
			}
			e.Mode = fs.FileMode(mode&0777) | specialBits(mode)
			if e.Size, err = r.int(f.at(3)); err != nil {
				return nil, err
			}
			mt, err := r.int(f.at(4))
			if err != nil {
				return nil, err
			}
			e.MTime = int64(mt)
			if e.SHA256, err = r.blob(f.at(5)); err != nil {
				return nil, err
			}
			tgt, err := r.blob(f.at(6))
			if err != nil {
				return nil, err
			}
			if tgt != nil {
				if len(tgt) < 2 {
					return nil, malformed("short target of %q", e.Path)
				}
				switch binary.LittleEndian.Uint16(tgt) & sIFMT {
				case sIFLNK:
					e.Mode |= fs.ModeSymlink
					e.Target = string(tgt[2:])
				case sIFREG:
					e.Target = string(tgt[2:]) // hard link to this path
				default:
					e.Mode |= fs.ModeDevice
				}
			} else if e.Size > 0 {
				regular[key{uint32(i + 1), uint32(j + 1)}] = len(p.Files)
			}
			p.Files = append(p.Files, e)
		}
	}
	scripts, err := r.obj(root.at(3))
	if err != nil {
		return nil, err
	}
	for i, n := range ScriptNames {
		s, err := r.blob(scripts.at(i + 1))
		if err != nil {
			return nil, err
		}
		if s != nil {
			p.Scripts[n] = string(s)
		}
	}
	trig, err := r.obj(root.at(4))
	if err != nil {
		return nil, err
	}
	for _, tv := range trig.items() {
		s, err := r.str(tv)
		if err != nil {
			return nil, err
		}
		p.Triggers = append(p.Triggers, s)
	}
	for _, d := range c.data {
		if len(d) < 8 {
			return nil, malformed("short data block")
		}
		k := key{binary.LittleEndian.Uint32(d), binary.LittleEndian.Uint32(d[4:])}
		fi, ok := regular[k]
		if !ok {
			return nil, malformed("data block for unknown or repeated file %d/%d", k.i, k.j)
		}
		delete(regular, k)
		f := &p.Files[fi]
		f.Data = d[8:]
		if uint64(len(f.Data)) != f.Size {
			return nil, malformed("%s: %d data bytes, size %d", f.Path, len(f.Data), f.Size)
		}
		if h := sha256.Sum256(f.Data); len(f.SHA256) != 32 || !bytes.Equal(h[:], f.SHA256) {
			return nil, malformed("%s: content does not match its SHA-256", f.Path)
		}
	}
	if len(regular) != 0 {
		return nil, malformed("%d files without data", len(regular))
	}
	return p, nil
}

func specialBits(mode uint64) fs.FileMode {
	var m fs.FileMode
	if mode&04000 != 0 {
		m |= fs.ModeSetuid
	}
	if mode&02000 != 0 {
		m |= fs.ModeSetgid
	}
	if mode&01000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

func unixMode(m fs.FileMode) uint64 {
	u := uint64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 04000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 02000
	}
	if m&fs.ModeSticky != 0 {
		u |= 01000
	}
	return u
}

func safePath(p string, allowEmpty bool) bool {
	if p == "" {
		return allowEmpty
	}
	if strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) {
		return false
	}
	for _, e := range strings.Split(p, "/") {
		if e == "" || e == "." || e == ".." {
			return false
		}
	}
	return true
}

func (r *reader) acl(v uint32) (uint64, string, string, error) {
	a, err := r.obj(v)
	if err != nil {
		return 0, "", "", err
	}
	mode, err := r.int(a.at(1))
	if err != nil {
		return 0, "", "", err
	}
	u, err := r.str(a.at(2))
	if err != nil {
		return 0, "", "", err
	}
	g, err := r.str(a.at(3))
	return mode, u, g, err
}

func orRoot(s string) string {
	if s == "" {
		return "root"
	}
	return s
}

// WritePackage writes an unsigned, uncompressed .apk v3 package the way
// `apk mkpkg --compression none` does for a directory tree holding files
// (owners as given, no xattrs, default --compat, so every directory
// including the root gets a node). Directories are implied by file paths
// (0755 root:root) unless given as entries with fs.ModeDir. Equal inputs
// give equal bytes.
func WritePackage(out io.Writer, info PackageInfo, files []FileEntry, scripts map[string]string) error {
	b, err := buildPackage(info, files, scripts)
	if err != nil {
		return err
	}
	_, err = out.Write(b)
	return err
}

func buildPackage(info PackageInfo, files []FileEntry, scripts map[string]string) ([]byte, error) {
	for n := range scripts {
		if !containsStr(ScriptNames, n) {
			return nil, fmt.Errorf("%w: script %q", ErrMalformed, n)
		}
	}
	dirs := map[string]*FileEntry{"": {Mode: fs.ModeDir | 0755}}
	byDir := map[string][]*FileEntry{}
	for i := range files {
		f := &files[i]
		if !safePath(f.Path, false) {
			return nil, fmt.Errorf("%w: unsafe path %q", ErrMalformed, f.Path)
		}
		for d := path.Dir(f.Path); d != "."; d = path.Dir(d) {
			if dirs[d] == nil {
				dirs[d] = &FileEntry{Path: d, Mode: fs.ModeDir | 0755}
			}
		}
		if f.Mode.IsDir() {
			dirs[f.Path] = f
			continue
		}
		d := path.Dir(f.Path)
		if d == "." {
			d = ""
		}
		byDir[d] = append(byDir[d], f)
	}
	for d := range byDir {
		if e, ok := dirs[d]; !ok || !e.Mode.IsDir() {
			return nil, fmt.Errorf("%w: %q is not a directory", ErrMalformed, d)
		}
	}
	var names []string
	for d := range dirs {
		if d != "" {
			names = append(names, d)
		}
	}
	sort.Strings(names)
	names = append([]string{""}, names...)
	if len(files) == 0 {
		names = nil // like mkpkg without --files: no paths at all
	}

	w := newWriter()
	islots, _, err := w.writeInfo(&info)
	if err != nil {
		return nil, err
	}
	installed := uint64(0)
	var paths []uint32
	for _, d := range names {
		fl := byDir[d]
		sort.Slice(fl, func(i, j int) bool { return path.Base(fl[i].Path) < path.Base(fl[j].Path) })
		var fitems []uint32
		for i, f := range fl {
			if i > 0 && path.Base(fl[i-1].Path) == path.Base(f.Path) {
				return nil, fmt.Errorf("%w: duplicate path %q", ErrMalformed, f.Path)
			}
			fo := make([]uint32, 7)
			fo[1] = w.str(path.Base(f.Path))
			var size uint64
			switch {
			case f.Mode&fs.ModeSymlink != 0:
				fo[6] = w.blob(append(binary.LittleEndian.AppendUint16(nil, sIFLNK), f.Target...))
				size = uint64(len(f.Target))
			case f.Mode.IsRegular():
				h := sha256.Sum256(f.Data)
				fo[5] = w.blob(h[:])
				size = uint64(len(f.Data))
				installed += size
			default:
				return nil, fmt.Errorf("%w: %q: unsupported file type", ErrUnsupported, f.Path)
			}
			fo[4] = w.int(uint64(f.MTime))
			fo[3] = w.int(size)
			acl := make([]uint32, 5)
			acl[1] = w.int(unixMode(f.Mode))
			acl[2] = w.str(orRoot(f.User))
			acl[3] = w.str(orRoot(f.Group))
			fo[2] = w.obj(typeObject, acl)
			fitems = append(fitems, w.obj(typeObject, fo))
		}
		de := dirs[d]
		ds := make([]uint32, 4)
		ds[1] = w.str(d)
		acl := make([]uint32, 5)
		acl[1] = w.int(unixMode(de.Mode))
		acl[2] = w.str(orRoot(de.User))
		acl[3] = w.str(orRoot(de.Group))
		ds[2] = w.obj(typeObject, acl)
		ds[3] = w.arr(typeObject, fitems, schFiles, false)
		paths = append(paths, w.obj(typeObject, ds))
	}
	hasFiles := len(files) > 0
	if hasFiles && installed == 0 {
		installed = 1
	}
	if len(scripts) > 0 && installed == 0 {
		installed = 1
	}
	islots[piInstalledSize] = w.int(installed)
	islots[piHashes] = w.blobRaw(make([]byte, 20))
	uidOff := int(islots[piHashes]&0x0fffffff) + 1
	root := make([]uint32, 6)
	root[1] = w.obj(typeObject, islots)
	if hasFiles {
		root[2] = w.arr(typeObject, paths, schDirs, false)
	}
	if len(scripts) > 0 {
		ss := make([]uint32, 8)
		for i, n := range ScriptNames {
			ss[i+1] = w.str(scripts[n])
		}
		root[3] = w.obj(typeObject, ss)
	}
	w.setRoot(w.obj(typeObject, root))
	if w.err != nil {
		return nil, w.err
	}
	sum := sha256.Sum256(w.buf)
	copy(w.buf[uidOff:uidOff+20], sum[:20])

	out := fileHeader(SchemaPackage)
	out = appendBlock(out, blockADB, w.buf)
	// Data blocks in the (sorted) order the ADB block lists files.
	r := newReader(w.buf)
	rt, err := r.obj(r.root())
	if err != nil {
		return nil, err
	}
	pv, err := r.obj(rt.at(2))
	if err != nil {
		return nil, err
	}
	content := map[string][]byte{}
	for i := range files {
		content[files[i].Path] = files[i].Data
	}
	for i, dv := range pv.items() {
		d, _ := r.obj(dv)
		dname, _ := r.str(d.at(1))
		fl, _ := r.obj(d.at(3))
		for j, fv := range fl.items() {
			f, _ := r.obj(fv)
			if f.at(6) != valNull {
				continue
			}
			if sz, _ := r.int(f.at(3)); sz == 0 {
				continue
			}
			name, _ := r.str(f.at(1))
			p := name
			if dname != "" {
				p = dname + "/" + name
			}
			hdr := binary.LittleEndian.AppendUint32(nil, uint32(i+1))
			hdr = binary.LittleEndian.AppendUint32(hdr, uint32(j+1))
			out = appendBlock(out, blockDATA, append(hdr, content[p]...))
		}
	}
	return out, nil
}

var schDirs = &schema{array: true, fields: []kind{{k: 'o', sub: schDir}}}

func containsStr(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
