// Package normalize makes an ImageBuilder's sysupgrade image independent of
// when it was built.
//
// An ImageBuilder stamps the clock into the root filesystem: the squashfs
// superblock's creation time, directory and file times, and opkg's
// Installed-Time. Release 24.10 ImageBuilders pin most of these to
// SOURCE_DATE_EPOCH, older ones and the simulated one do not. Rootfs
// checks the squashfs of an image and, only when some time differs from
// SOURCE_DATE_EPOCH, re-packs it with every time set to it. An image that
// is already reproducible passes through byte for byte.
package normalize

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/torwrt/torwrt/internal/squashfs"
)

// Result says what Rootfs did.
type Result struct {
	SquashfsOffset int64    `json:"squashfs_offset"`
	SquashfsSize   int64    `json:"squashfs_size"`
	Repacked       bool     `json:"repacked"`
	Reasons        []string `json:"reasons,omitempty"`
	MksquashfsArgs []string `json:"mksquashfs_args,omitempty"`
}

const (
	padBlock  = 64 * 1024
	maxReason = 5
)

// JFFS2EOF is the marker OpenWrt's pad-rootfs appends after the padded
// root filesystem; the router's first boot formats the overlay from there.
var JFFS2EOF = []byte{0xde, 0xad, 0xc0, 0xde}

var installedTimeRE = regexp.MustCompile(`(?m)^Installed-Time: [0-9]+$`)

// Fix may change the extracted root filesystem tree and returns one reason
// per change; any change makes Rootfs re-pack.
type Fix func(tree string) (reasons []string, err error)

// Rootfs returns payload (the image without fwtool chunks) with its root
// filesystem's times set to epoch, after applying fixes. workDir is scratch
// space; it must be on a file system where root can create device nodes
// (the rootfs has /dev/console).
func Rootfs(ctx context.Context, payload []byte, epoch int64, workDir string, fixes ...Fix) ([]byte, *Result, error) {
	// Any offset is possible: the rootfs follows the kernel directly on
	// ramips and after 64 KiB padding on ath79.
	fsys, off, err := squashfs.OpenInImage(bytes.NewReader(payload), int64(len(payload)))
	if err != nil {
		return nil, nil, fmt.Errorf("normalize: no squashfs root filesystem found in the image: %w", err)
	}
	sb := fsys.Superblock()
	res := &Result{SquashfsOffset: off, SquashfsSize: int64(sb.BytesUsed)}
	if sb.Compression != "xz" {
		return nil, nil, fmt.Errorf("normalize: squashfs at 0x%x uses %s compression; OpenWrt images use xz", off, sb.Compression)
	}
	sqPath := filepath.Join(workDir, "rootfs.squashfs")
	if err := os.WriteFile(sqPath, payload[off:off+int64(sb.BytesUsed)], 0o600); err != nil {
		return nil, nil, err
	}
	tree := filepath.Join(workDir, "rootfs")
	if out, err := exec.CommandContext(ctx, "unsquashfs", "-no-progress", "-n", "-d", tree, sqPath).CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("normalize: unsquashfs: %v\n%s (needs Debian package squashfs-tools, and root to create device nodes)", err, tailLines(out, 20))
	}
	for _, fix := range fixes {
		reasons, err := fix(tree)
		if err != nil {
			return nil, nil, fmt.Errorf("normalize: %w", err)
		}
		for _, r := range reasons {
			res.note(r)
		}
	}
	if int64(sb.ModTime) != epoch {
		res.note(fmt.Sprintf("squashfs creation time %s", time.Unix(int64(sb.ModTime), 0).UTC().Format(time.RFC3339)))
	}
	status := filepath.Join(tree, "usr/lib/opkg/status")
	if data, err := os.ReadFile(status); err == nil {
		fixed := installedTimeRE.ReplaceAll(data, []byte("Installed-Time: "+strconv.FormatInt(epoch, 10)))
		if !bytes.Equal(fixed, data) {
			res.note("opkg Installed-Time")
			if err := os.WriteFile(status, fixed, 0o644); err != nil {
				return nil, nil, err
			}
		}
	}
	err = filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if res.Repacked && len(res.Reasons) > maxReason {
			return nil // already re-packing; the list of reasons is full
		}
		if st.Mtim.Sec != epoch {
			rel, _ := filepath.Rel(tree, p)
			res.note(fmt.Sprintf("mtime of /%s", filepath.ToSlash(rel)))
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if !res.Repacked {
		return payload, res, nil
	}
	out := filepath.Join(workDir, "rootfs.normalized.squashfs")
	res.MksquashfsArgs = []string{tree, out, "-noappend", "-nopad", "-no-xattrs", "-all-root",
		"-comp", "xz", "-b", strconv.Itoa(int(sb.BlockSize)),
		"-mkfs-time", strconv.FormatInt(epoch, 10), "-all-time", strconv.FormatInt(epoch, 10),
		"-no-progress", "-quiet"}
	if msg, err := exec.CommandContext(ctx, "mksquashfs", res.MksquashfsArgs...).CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("normalize: mksquashfs: %v\n%s", err, tailLines(msg, 20))
	}
	sq, err := os.ReadFile(out)
	if err != nil {
		return nil, nil, err
	}
	rebuilt := make([]byte, 0, len(payload))
	rebuilt = append(rebuilt, payload[:off]...)
	rebuilt = append(rebuilt, sq...)
	for len(rebuilt)%padBlock != 0 {
		rebuilt = append(rebuilt, 0xff)
	}
	rebuilt = append(rebuilt, JFFS2EOF...)
	return rebuilt, res, nil
}

func (r *Result) note(reason string) {
	r.Repacked = true
	if len(r.Reasons) < maxReason {
		r.Reasons = append(r.Reasons, reason)
	} else if len(r.Reasons) == maxReason {
		r.Reasons = append(r.Reasons, "…")
	}
}

func tailLines(b []byte, n int) string {
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// KeepOnlyKeys is a Fix that removes every file in dir (relative to the
// rootfs, e.g. etc/opkg/keys) whose name is not one of the fingerprints in
// keep. OpenWrt's base-files pulls in openwrt-keyring, which installs the
// upstream release key; a torwrt router must trust only its own release
// keys, whatever packages put there.
func KeepOnlyKeys(dir string, keep []string) Fix {
	return func(tree string) ([]string, error) {
		full := filepath.Join(tree, dir)
		entries, err := os.ReadDir(full)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		allowed := map[string]bool{}
		for _, k := range keep {
			allowed[k] = true
		}
		var reasons []string
		for _, e := range entries {
			if allowed[e.Name()] {
				continue
			}
			if err := os.RemoveAll(filepath.Join(full, e.Name())); err != nil {
				return nil, err
			}
			reasons = append(reasons, fmt.Sprintf("removed untrusted key /%s/%s", dir, e.Name()))
		}
		return reasons, nil
	}
}
