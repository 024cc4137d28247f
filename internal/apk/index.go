package apk

import (
	"fmt"
	"sort"
)

// IndexEntry is one package of an index.
type IndexEntry struct {
	PackageInfo
	// Identity is the "hashes" field: SHA-256 over the package's ADB
	// block (Package.Identity). UniqueID of PackageInfo is only used when
	// writing: mkndx copies the package's info object, so the package's
	// 20-byte unique id ends up (unreferenced) in the index bytes.
	Identity []byte
}

// Index is a packages.adb.
type Index struct {
	Description string
	PkgnameSpec string
	Packages    []IndexEntry
	// SignedBy is the id of the trusted key whose signature verified.
	SignedBy KeyID
}

// Lookup returns the entry named name (the first, by apk's order), or nil.
func (x *Index) Lookup(name string) *IndexEntry {
	i := sort.Search(len(x.Packages), func(i int) bool { return x.Packages[i].Name >= name })
	if i < len(x.Packages) && x.Packages[i].Name == name {
		return &x.Packages[i]
	}
	for i := range x.Packages { // unsorted input
		if x.Packages[i].Name == name {
			return &x.Packages[i]
		}
	}
	return nil
}

// EntryFor returns the index entry describing p, a package file of fileSize bytes.
func EntryFor(p *Package, fileSize uint64) IndexEntry {
	e := IndexEntry{PackageInfo: p.Info, Identity: p.Identity}
	e.FileSize = fileSize
	return e
}

// ReadIndex parses a packages.adb (compressed or not) and verifies its
// signature against keys. Errors: ErrUnsigned, ErrUntrustedKey,
// ErrBadSignature, ErrMalformed, ErrTooLarge, ErrUnsupported.
func ReadIndex(b []byte, keys *Keyring) (*Index, error) {
	b, err := decompress(b, DefaultMaxSize)
	if err != nil {
		return nil, err
	}
	c, err := parseContainer(b, SchemaIndex)
	if err != nil {
		return nil, err
	}
	if len(c.data) != 0 {
		return nil, malformed("data blocks in an index")
	}
	id, err := verifySigs(c, keys)
	if err != nil {
		return nil, err
	}
	x, err := decodeIndex(c.adb)
	if err != nil {
		return nil, err
	}
	x.SignedBy = id
	return x, nil
}

// decodeIndex decodes an index ADB block. Only ReadIndex (after the
// signature verified) and tests call it.
func decodeIndex(adb []byte) (*Index, error) {
	r := newReader(adb)
	root, err := r.obj(r.root())
	if err != nil {
		return nil, err
	}
	x := &Index{}
	if x.Description, err = r.str(root.at(1)); err != nil {
		return nil, err
	}
	if x.PkgnameSpec, err = r.str(root.at(3)); err != nil {
		return nil, err
	}
	pk, err := r.obj(root.at(2))
	if err != nil {
		return nil, err
	}
	for _, v := range pk.items() {
		var e IndexEntry
		if e.PackageInfo, e.Identity, err = r.info(v); err != nil {
			return nil, err
		}
		x.Packages = append(x.Packages, e)
	}
	return x, nil
}

// WriteIndex writes x signed by key (nil: unsigned) as
// `apk mkndx --compression none` does for packages given in x.Packages
// order: each entry's info is copied as mkpkg would have written it, then
// file-size and the identity are set; the array is sorted by apk's order
// (name, then version as CompareVersions orders them, then the other
// fields), so one name may appear in several versions.
func WriteIndex(x *Index, key *SecretKey) ([]byte, error) {
	w := newWriter()
	var items []uint32
	for i := range x.Packages {
		e := &x.Packages[i]
		if len(e.Identity) != 32 {
			return nil, fmt.Errorf("%w: %s: identity must be 32 bytes", ErrMalformed, e.Name)
		}
		// The package's own info object, in a scratch ADB.
		pw := newWriter()
		slots, _, err := pw.writeInfo(&e.PackageInfo)
		if err != nil {
			return nil, err
		}
		slots[piInstalledSize] = pw.int(e.InstalledSize)
		slots[piHashes] = pw.blobRaw(e.UniqueID)
		pv := pw.obj(typeObject, slots)
		if pw.err != nil {
			return nil, pw.err
		}
		pr := newReader(pw.buf)
		src, err := pr.obj(pv)
		if err != nil {
			return nil, err
		}
		out := make([]uint32, piMax)
		for f := 1; f < len(src); f++ {
			if out[f], err = w.copyVal(pr, src[f]); err != nil {
				return nil, err
			}
		}
		out[piFileSize] = w.int(e.FileSize)
		out[piHashes] = w.blob(e.Identity)
		items = append(items, w.obj(typeObject, out))
	}
	root := make([]uint32, 4)
	root[1] = w.str(x.Description)
	if x.PkgnameSpec != "" {
		root[3] = w.str(x.PkgnameSpec)
	}
	root[2] = w.arr(typeObject, items, schInfos, false)
	w.setRoot(w.obj(typeObject, root))
	if w.err != nil {
		return nil, w.err
	}
	out := fileHeader(SchemaIndex)
	out = appendBlock(out, blockADB, w.buf)
	if key != nil {
		sig, err := key.sign(SchemaIndex, w.buf)
		if err != nil {
			return nil, err
		}
		out = appendBlock(out, blockSIG, sig)
	}
	return out, nil
}

var schInfos = &schema{array: true, fields: []kind{{k: 'o', sub: schInfo}}}
