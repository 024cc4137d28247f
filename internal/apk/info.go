package apk

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// pkginfo field numbers (apk-tools src/apk_adb.h ADBI_PI_*).
const (
	piName = iota + 1
	piVersion
	piHashes
	piDescription
	piArch
	piLicense
	piOrigin
	piMaintainer
	piURL
	piRepoCommit
	piBuildTime
	piInstalledSize
	piFileSize
	piProviderPriority
	piDepends
	piProvides
	piReplaces
	piInstallIf
	piRecommends
	piLayer
	piTags
	piMax
)

// PackageInfo is the "info" object of a package and one entry of an index.
// Dependencies are in apk's text form: "name", "name>=1.0", "!name".
type PackageInfo struct {
	Name, Version, Arch, Description, License, Origin, Maintainer, URL string
	RepoCommit                                                         []byte
	Depends, Provides, Replaces, InstallIf                             []string
	InstalledSize, FileSize, ProviderPriority                          uint64
	BuildTime                                                          int64
	// UniqueID is field "hashes": in a package, 20 bytes (the first 20
	// bytes of SHA-256 over its ADB block written with zeros here); in an
	// index entry see IndexEntry.Identity instead.
	UniqueID []byte
}

const (
	verEqual    = 1
	verLess     = 2
	verGreater  = 4
	verFuzzy    = 8
	verConflict = 16
	depAny      = verEqual | verLess | verGreater
)

func opString(op uint64) string {
	switch op &^ verConflict {
	case verLess:
		return "<"
	case verLess | verEqual:
		return "<="
	case verLess | verEqual | verFuzzy:
		return "<~"
	case verEqual | verFuzzy, verFuzzy:
		return "~"
	case verEqual:
		return "="
	case verGreater | verEqual:
		return ">="
	case verGreater | verEqual | verFuzzy:
		return ">~"
	case verGreater:
		return ">"
	case verLess | verGreater:
		return "><"
	case depAny:
		return ""
	}
	return "?"
}

func (r *reader) deps(v uint32) ([]string, error) {
	a, err := r.obj(v)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, dv := range a.items() {
		d, err := r.obj(dv)
		if err != nil {
			return nil, err
		}
		name, err := r.str(d.at(1))
		if err != nil {
			return nil, err
		}
		ver, err := r.blob(d.at(2))
		if err != nil {
			return nil, err
		}
		op, err := r.int(d.at(3))
		if err != nil {
			return nil, err
		}
		if op == 0 {
			op = verEqual
		}
		s := ""
		if op&verConflict != 0 {
			s = "!"
		}
		s += name
		if ver != nil {
			s += opString(op) + string(ver)
		}
		out = append(out, s)
	}
	return out, nil
}

func (r *reader) info(v uint32) (PackageInfo, []byte, error) {
	var p PackageInfo
	o, err := r.obj(v)
	if err != nil {
		return p, nil, err
	}
	strs := []struct {
		i int
		s *string
	}{{piName, &p.Name}, {piVersion, &p.Version}, {piDescription, &p.Description}, {piArch, &p.Arch},
		{piLicense, &p.License}, {piOrigin, &p.Origin}, {piMaintainer, &p.Maintainer}, {piURL, &p.URL}}
	for _, f := range strs {
		if *f.s, err = r.str(o.at(f.i)); err != nil {
			return p, nil, err
		}
	}
	hashes, err := r.blob(o.at(piHashes))
	if err != nil {
		return p, nil, err
	}
	if p.RepoCommit, err = r.blob(o.at(piRepoCommit)); err != nil {
		return p, nil, err
	}
	ints := []struct {
		i int
		u *uint64
	}{{piInstalledSize, &p.InstalledSize}, {piFileSize, &p.FileSize}, {piProviderPriority, &p.ProviderPriority}}
	for _, f := range ints {
		if *f.u, err = r.int(o.at(f.i)); err != nil {
			return p, nil, err
		}
	}
	bt, err := r.int(o.at(piBuildTime))
	if err != nil {
		return p, nil, err
	}
	p.BuildTime = int64(bt)
	depf := []struct {
		i int
		d *[]string
	}{{piDepends, &p.Depends}, {piProvides, &p.Provides}, {piReplaces, &p.Replaces}, {piInstallIf, &p.InstallIf}}
	for _, f := range depf {
		if *f.d, err = r.deps(o.at(f.i)); err != nil {
			return p, nil, err
		}
	}
	if p.Name == "" {
		return p, nil, malformed("package info without name")
	}
	return p, append([]byte(nil), hashes...), nil
}

// writeDeps writes a dependency array as apk's dependencies_fromstring does.
func (w *writer) writeDeps(deps []string) (uint32, error) {
	var items []uint32
	for _, d := range deps {
		op := uint64(0)
		s := d
		if strings.HasPrefix(s, "!") {
			op |= verConflict
			s = s[1:]
		}
		name, ver := s, ""
		if i := strings.IndexAny(s, "<>=~"); i >= 0 {
			name = s[:i]
			j := i
			for j < len(s) && strings.IndexByte("<>=~", s[j]) >= 0 {
				j++
			}
			for _, c := range s[i:j] {
				switch c {
				case '<':
					op |= verLess
				case '>':
					op |= verGreater
				case '=':
					op |= verEqual
				case '~':
					op |= verFuzzy | verEqual
				}
			}
			ver = s[j:]
			if ver == "" {
				return 0, fmt.Errorf("%w: dependency %q", ErrMalformed, d)
			}
		} else {
			op |= depAny
		}
		if name == "" || strings.ContainsAny(name, " \t\n") {
			return 0, fmt.Errorf("%w: dependency %q", ErrMalformed, d)
		}
		slots := make([]uint32, 4)
		slots[1] = w.str(name)
		if op != depAny {
			slots[2] = w.str(ver)
			if op != verEqual {
				slots[3] = w.int(op)
			}
		}
		items = append(items, w.obj(typeObject, slots))
	}
	return w.arr(typeObject, items, schDeps, true), nil
}

// writeInfo writes p as apk mkpkg does for "-I field:value" options given
// for every non-empty field, followed by installed-size and the zeroed
// unique id. It returns the slots (still to be written) and the offset of
// the unique id in w.buf.
func (w *writer) writeInfo(p *PackageInfo) ([]uint32, int, error) {
	s := make([]uint32, piMax)
	if p.Name == "" || p.Version == "" || p.Arch == "" {
		return nil, 0, fmt.Errorf("%w: name, version and arch are required", ErrMalformed)
	}
	s[piName] = w.str(p.Name)
	s[piVersion] = w.str(p.Version)
	s[piDescription] = w.str(p.Description)
	s[piArch] = w.str(p.Arch)
	s[piLicense] = w.str(p.License)
	s[piOrigin] = w.str(p.Origin)
	s[piMaintainer] = w.str(p.Maintainer)
	s[piURL] = w.str(p.URL)
	s[piRepoCommit] = w.blob(p.RepoCommit)
	if p.BuildTime != 0 {
		s[piBuildTime] = w.int(uint64(p.BuildTime))
	}
	if p.ProviderPriority != 0 {
		s[piProviderPriority] = w.int(p.ProviderPriority)
	}
	var err error
	for _, f := range []struct {
		i int
		d []string
	}{{piDepends, p.Depends}, {piProvides, p.Provides}, {piReplaces, p.Replaces}, {piInstallIf, p.InstallIf}} {
		if s[f.i], err = w.writeDeps(f.d); err != nil {
			return nil, 0, err
		}
	}
	return s, 0, nil
}

// copyVal deep-copies value v of r into w as apk's adb_w_copy does.
func (w *writer) copyVal(r *reader, v uint32) (uint32, error) {
	t := v >> 28
	var sz, align uint64
	switch t {
	case typeSpecial, typeInt:
		return v, nil
	case typeInt32:
		sz, align = 4, 4
	case typeInt64:
		sz, align = 8, 8
	case typeBlob8, typeBlob16, typeBlob32:
		b, err := r.blob(v)
		if err != nil {
			return 0, err
		}
		align = map[uint32]uint64{typeBlob8: 1, typeBlob16: 2, typeBlob32: 4}[t]
		sz = align + uint64(len(b))
	case typeArray, typeObject:
		o, err := r.obj(v)
		if err != nil {
			return 0, err
		}
		cp := make([]byte, 4*len(o))
		binary.LittleEndian.PutUint32(cp, uint32(len(o)))
		for i := 1; i < len(o); i++ {
			c, err := w.copyVal(r, o[i])
			if err != nil {
				return 0, err
			}
			binary.LittleEndian.PutUint32(cp[4*i:], c)
		}
		return mkval(t, w.check(w.data(cp, 4))), nil
	default:
		return 0, malformed("value %#08x cannot be copied", v)
	}
	d, err := r.deref(v, 0, sz)
	if err != nil {
		return 0, err
	}
	return mkval(t, w.check(w.data(append([]byte(nil), d...), int(align)))), nil
}
