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
	"encoding/binary"
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
	sqMagic   = "hsqs"
	sbLen     = 96
	padBlock  = 64 * 1024
	maxReason = 5
)

// JFFS2EOF is the marker OpenWrt's pad-rootfs appends after the padded
// root filesystem; the router's first boot formats the overlay from there.
var JFFS2EOF = []byte{0xde, 0xad, 0xc0, 0xde}

type superblock struct {
	mkfsTime   uint32
	blockSize  uint32
	compressor uint16
	bytesUsed  int64
}

// findSquashfs returns the offset of the first plausible squashfs 4.0
// superblock in payload. Any offset is possible: the rootfs follows the
// kernel directly on ramips and after 64 KiB padding on ath79.
func findSquashfs(payload []byte) (int64, superblock, error) {
	for from := 0; ; {
		i := bytes.Index(payload[from:], []byte(sqMagic))
		if i < 0 {
			break
		}
		off := from + i
		from = off + 1
		if off+sbLen > len(payload) {
			break
		}
		sb := payload[off : off+sbLen]
		major, minor := binary.LittleEndian.Uint16(sb[28:]), binary.LittleEndian.Uint16(sb[30:])
		bs := binary.LittleEndian.Uint32(sb[12:])
		blog := binary.LittleEndian.Uint16(sb[22:])
		used := int64(binary.LittleEndian.Uint64(sb[40:]))
		if major != 4 || minor != 0 || bs < 4096 || bs > 1<<20 || 1<<blog != bs {
			continue
		}
		if used < sbLen || used > int64(len(payload)-off) {
			continue
		}
		return int64(off), superblock{
			mkfsTime:   binary.LittleEndian.Uint32(sb[8:]),
			blockSize:  bs,
			compressor: binary.LittleEndian.Uint16(sb[20:]),
			bytesUsed:  used,
		}, nil
	}
	return 0, superblock{}, errors.New("normalize: no squashfs 4.0 root filesystem found in the image")
}

var installedTimeRE = regexp.MustCompile(`(?m)^Installed-Time: [0-9]+$`)

// Fix may change the extracted root filesystem tree and returns one reason
// per change; any change makes Rootfs re-pack.
type Fix func(tree string) (reasons []string, err error)

// Rootfs returns payload (the image without fwtool chunks) with its root
// filesystem's times set to epoch, after applying fixes. workDir is scratch
// space; it must be on a file system where root can create device nodes
// (the rootfs has /dev/console).
func Rootfs(ctx context.Context, payload []byte, epoch int64, workDir string, fixes ...Fix) ([]byte, *Result, error) {
	off, sb, err := findSquashfs(payload)
	if err != nil {
		return nil, nil, err
	}
	res := &Result{SquashfsOffset: off, SquashfsSize: sb.bytesUsed}
	if sb.compressor != 4 {
		return nil, nil, fmt.Errorf("normalize: squashfs at 0x%x uses %s compression (id %d); OpenWrt images use xz (4)", off, compressorName(sb.compressor), sb.compressor)
	}
	sqPath := filepath.Join(workDir, "rootfs.squashfs")
	if err := os.WriteFile(sqPath, payload[off:off+sb.bytesUsed], 0o600); err != nil {
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
	if int64(sb.mkfsTime) != epoch {
		res.note(fmt.Sprintf("squashfs creation time %s", time.Unix(int64(sb.mkfsTime), 0).UTC().Format(time.RFC3339)))
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
		"-comp", "xz", "-b", strconv.Itoa(int(sb.blockSize)),
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

func compressorName(id uint16) string {
	if n, ok := map[uint16]string{1: "gzip", 2: "lzma", 3: "lzo", 4: "xz", 5: "lz4", 6: "zstd"}[id]; ok {
		return n
	}
	return "unknown"
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
