package container

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// resolveImageUser turns the image's configured User ("", "name",
// "name:group", "uid", "uid:gid") into numeric ids, reading /etc/passwd and
// /etc/group from the image's layers as the engine would.
func resolveImageUser(img *Image) (idPair, error) {
	user, group, _ := strings.Cut(img.User, ":")
	if user == "" {
		user = "0"
	}
	if user == "0" || user == "root" {
		if group == "" || group == "root" || group == "0" {
			return idPair{0, 0}, nil
		}
	}
	uid, uerr := strconv.Atoi(user)
	gid := -1
	if group != "" {
		if g, err := strconv.Atoi(group); err == nil {
			gid = g
		}
	}
	if uerr == nil && (group == "" || gid >= 0) {
		if gid < 0 {
			gid = uid
			if vimg, err := img.OpenImage(); err == nil {
				if b, err := readImageFile(vimg, "/etc/passwd"); err == nil {
					if _, g, ok := lookupPasswd(b, user); ok {
						gid = g
					}
				}
			}
		}
		return idPair{uid, gid}, nil
	}
	vimg, err := img.OpenImage()
	if err != nil {
		return idPair{}, err
	}
	if uerr != nil {
		b, err := readImageFile(vimg, "/etc/passwd")
		if err != nil {
			return idPair{}, fmt.Errorf("container: image %s runs as user %q but its /etc/passwd cannot be read: %v", img.Ref, img.User, err)
		}
		u, g, ok := lookupPasswd(b, user)
		if !ok {
			return idPair{}, fmt.Errorf("container: image %s runs as user %q, which its /etc/passwd does not list", img.Ref, img.User)
		}
		uid, gid = u, g
	}
	if group != "" && gid < 0 {
		b, err := readImageFile(vimg, "/etc/group")
		if err != nil {
			return idPair{}, fmt.Errorf("container: image %s runs as group %q but its /etc/group cannot be read: %v", img.Ref, group, err)
		}
		g, ok := lookupGroup(b, group)
		if !ok {
			return idPair{}, fmt.Errorf("container: image %s runs as group %q, which its /etc/group does not list", img.Ref, group)
		}
		gid = g
	}
	return idPair{uid, gid}, nil
}

func lookupPasswd(b []byte, user string) (uid, gid int, ok bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 4 || (f[0] != user && f[2] != user) {
			continue
		}
		u, err1 := strconv.Atoi(f[2])
		g, err2 := strconv.Atoi(f[3])
		if err1 == nil && err2 == nil {
			return u, g, true
		}
	}
	return 0, 0, false
}

func lookupGroup(b []byte, group string) (int, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 3 || f[0] != group {
			continue
		}
		if g, err := strconv.Atoi(f[2]); err == nil {
			return g, true
		}
	}
	return 0, false
}

// readImageFile returns the content of the regular file p in the image's
// flattened filesystem: the topmost layer that has it (or whites it out)
// wins.
func readImageFile(img v1.Image, p string) ([]byte, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	want := strings.TrimPrefix(path.Clean(p), "/")
	dir, base := path.Split(want)
	whiteout := dir + ".wh." + base
	opaque := dir + ".wh..wh..opq"
	for i := len(layers) - 1; i >= 0; i-- {
		b, found, err := findInLayer(layers[i], want, whiteout, opaque)
		if err != nil {
			return nil, err
		}
		if found {
			if b == nil {
				return nil, errNoFile
			}
			return b, nil
		}
	}
	return nil, errNoFile
}

// findInLayer reports (content, true) for the file, (nil, true) when the
// layer deletes it, (nil, false) when the layer does not touch it.
func findInLayer(l v1.Layer, want, whiteout, opaque string) ([]byte, bool, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, false, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var content []byte
	found, deleted := false, false
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, false, err
		}
		n := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		switch n {
		case want:
			if h.Typeflag == tar.TypeReg {
				b, err := io.ReadAll(io.LimitReader(tr, 1<<20))
				if err != nil {
					return nil, false, err
				}
				content, found = b, true
			}
		case whiteout, opaque:
			deleted = true
		}
	}
	if found {
		return content, true, nil
	}
	if deleted {
		return nil, true, nil
	}
	return nil, false, nil
}

// ErrNotInImage is returned by ReadFile for a path the image does not have
// as a regular file.
var ErrNotInImage = errNoFile

// ReadFile returns the first MiB of the regular file p in the cached
// image's flattened filesystem, without running anything.
func (img *Image) ReadFile(p string) ([]byte, error) {
	v, err := img.OpenImage()
	if err != nil {
		return nil, err
	}
	b, err := readImageFile(v, p)
	if err != nil {
		return nil, fmt.Errorf("container: %s in image %s: %w", p, shortDigest(img.Digest), err)
	}
	return b, nil
}
