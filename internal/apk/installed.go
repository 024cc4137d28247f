package apk

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// InstalledFile is one R: entry of /lib/apk/db/installed.
type InstalledFile struct {
	Path string
	// ACL is the "a:uid:gid:mode[:xattrhash]" value, "" for the default.
	ACL string
	// Digest is the Z: value decoded ("Q1" + base64: first 20 bytes of
	// SHA-256 when the package has flag S, else SHA-1).
	Digest []byte
}

// InstalledPackage is one stanza of /lib/apk/db/installed.
type InstalledPackage struct {
	PackageInfo
	// Identity is the C: value decoded (20 bytes).
	Identity []byte
	Flags    string // f: (e.g. "S": identity and digests are SHA-256/160)
	Dirs     []string
	DirACLs  map[string]string // M: lines by directory
	Files    []InstalledFile
	Tags     []string
	// Other holds fields this parser does not interpret, as "X:value".
	Other []string
}

// VolatileInstalledFields: apk-tools 3.0 writes no install time and no
// host-dependent value into /lib/apk/db/installed; two installs of the
// same packages from the same index give byte-identical files (checked by
// testdata/test-installed-1 and -2), and scripts.tar.gz entries carry the
// package build time as mtime. What differs between installs is outside
// the file contents: the mtimes of the database files themselves, of
// created directories and of symlinks (files keep the package mtime).
const VolatileInstalledFields = "none in the file contents; only file system mtimes of /lib/apk/db/*, directories and symlinks"

const maxInstalledSize = 64 << 20

func decodeQ1(v string) ([]byte, error) {
	if !strings.HasPrefix(v, "Q1") {
		return nil, malformed("digest %q not Q1", v)
	}
	d, err := base64.StdEncoding.DecodeString(v[2:])
	if err != nil || len(d) != 20 {
		return nil, malformed("digest %q", v)
	}
	return d, nil
}

// ParseInstalled parses /lib/apk/db/installed.
func ParseInstalled(b []byte) ([]InstalledPackage, error) {
	if len(b) > maxInstalledSize {
		return nil, fmt.Errorf("%w: installed db over %d bytes", ErrTooLarge, maxInstalledSize)
	}
	var out []InstalledPackage
	var cur *InstalledPackage
	dir, inDir := "", false // inDir: an F: line was seen ("" is the root)
	var lastFile *InstalledFile
	flush := func() error {
		if cur != nil {
			if cur.Name == "" {
				return malformed("installed package without P:")
			}
			out = append(out, *cur)
			cur = nil
		}
		return nil
	}
	for ln, line := range bytes.Split(b, []byte("\n")) {
		s := string(line)
		if s == "" {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		if len(s) < 2 || s[1] != ':' {
			return nil, malformed("line %d: %q", ln+1, s)
		}
		if cur == nil {
			cur = &InstalledPackage{DirACLs: map[string]string{}}
			dir, inDir, lastFile = "", false, nil
		}
		k, v := s[0], s[2:]
		var err error
		num := func(u *uint64) {
			*u, err = strconv.ParseUint(v, 10, 64)
		}
		switch k {
		case 'C':
			cur.Identity, err = decodeQ1(v)
		case 'P':
			cur.Name = v
		case 'V':
			cur.Version = v
		case 'A':
			cur.Arch = v
		case 'S':
			num(&cur.FileSize)
		case 'I':
			num(&cur.InstalledSize)
		case 'T':
			cur.Description = v
		case 'U':
			cur.URL = v
		case 'L':
			cur.License = v
		case 'o':
			cur.Origin = v
		case 'm':
			cur.Maintainer = v
		case 't':
			var t uint64
			num(&t)
			cur.BuildTime = int64(t)
		case 'k':
			num(&cur.ProviderPriority)
		case 'D':
			cur.Depends = strings.Fields(v)
		case 'p':
			cur.Provides = strings.Fields(v)
		case 'i':
			cur.InstallIf = strings.Fields(v)
		case 'r':
			cur.Replaces = strings.Fields(v)
		case 'g':
			cur.Tags = strings.Fields(v)
		case 'f':
			cur.Flags = v
		case 'F':
			// "F:" alone is the root directory: apk writes it for a
			// package with files there (base-files' /var symlink).
			if !safePath(v, true) {
				return nil, malformed("line %d: unsafe directory %q", ln+1, v)
			}
			dir, inDir, lastFile = v, true, nil
			cur.Dirs = append(cur.Dirs, v)
		case 'M':
			if !inDir {
				return nil, malformed("line %d: M: before F:", ln+1)
			}
			cur.DirACLs[dir] = v
		case 'R':
			if !inDir || !safePath(v, false) || strings.Contains(v, "/") {
				return nil, malformed("line %d: bad file %q", ln+1, v)
			}
			full := v
			if dir != "" {
				full = dir + "/" + v
			}
			cur.Files = append(cur.Files, InstalledFile{Path: full})
			lastFile = &cur.Files[len(cur.Files)-1]
		case 'a':
			if lastFile == nil {
				return nil, malformed("line %d: a: before R:", ln+1)
			}
			lastFile.ACL = v
		case 'Z':
			if lastFile == nil {
				return nil, malformed("line %d: Z: before R:", ln+1)
			}
			lastFile.Digest, err = decodeQ1(v)
		default:
			cur.Other = append(cur.Other, s)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrMalformed, ln+1, err)
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}
