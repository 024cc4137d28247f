package userland

// mergedDirs are the top-level directories that are symlinks into /usr on a
// merged-/usr system, as debootstrap creates them for amd64 and as
// bookworm's usr-is-merged asserts. Entries a package ships below them are
// stored below usr/ instead, where dpkg would write them through the links.
var mergedDirs = []string{"bin", "lib", "lib64", "sbin"}

// stickyDirs keep the sticky bit (as 01777) when a package ships them with
// it. Everywhere else only the permission bits survive: no setuid, setgid
// or sticky bits in the layer.
var stickyDirs = map[string]bool{
	"tmp":      true, // base-files; synthesized when missing
	"var/tmp":  true, // base-files; world-writable, so it needs the bit too
	"var/lock": true, // base-files; the same
}

// How a synthesized entry combines with what the packages shipped.
type synthWhen uint8

const (
	always   synthWhen = iota + 1 // replaces whatever is there (not a directory)
	ifAbsent                      // only if no package shipped the path
)

// synth is one entry Layer writes itself, because the maintainer script or
// tool that would create it on a real system does not run.
type synth struct {
	path  string // in the layer, after the merged-/usr rewrite
	kind  fileKind
	mode  int64  // files and directories
	link  string // symlinks: target
	data  string // files: contents, unless copy is set
	copy  string // files: a copy of this regular file in the layer
	needs string // only if this path exists (the package providing it is in the lock)
	when  synthWhen
	why   string
}

const (
	passwd = "root:*:0:0:root:/root:/bin/bash\n" +
		"nobody:*:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n" +
		"buildbot:*:1000:1000:buildbot:/builder:/bin/bash\n"
	group = "root:*:0:\n" +
		"nogroup:*:65534:\n" +
		"buildbot:*:1000:\n"
)

// synthesized is applied in this order after all packages are merged.
// Alternatives point straight at their target (relative), not through
// /etc/alternatives. Left out on purpose: pager (util-linux), rmt (tar),
// builtins.7.gz (bash), the CA hash links and bundle (update-ca-certificates),
// /etc/ld.so.cache (ldconfig; the dynamic linker searches the multiarch
// directories without it, as libc-bin's triggers file says), *.pyc files
// (py3compile) and the dpkg database.
var synthesized = []synth{
	{path: "bin", kind: kindSymlink, link: "usr/bin", when: always, why: "merged /usr (debootstrap, usr-is-merged)"},
	{path: "lib", kind: kindSymlink, link: "usr/lib", when: always, why: "merged /usr"},
	{path: "lib64", kind: kindSymlink, link: "usr/lib64", when: always, why: "merged /usr; the ELF interpreter is /lib64/ld-linux-x86-64.so.2"},
	{path: "sbin", kind: kindSymlink, link: "usr/sbin", when: always, why: "merged /usr"},

	{path: "etc/passwd", kind: kindReg, mode: 0o644, data: passwd, when: always, why: "base-passwd's postinst writes it; the ImageBuilder runs as buildbot (uid 1000, home /builder); no /etc/shadow, every password is locked"},
	{path: "etc/group", kind: kindReg, mode: 0o644, data: group, when: always, why: "base-passwd's postinst writes it"},
	{path: "tmp", kind: kindDir, mode: 0o1777, when: ifAbsent, why: "base-files ships it; kept for a lock without base-files"},

	{path: "usr/bin/sh", kind: kindSymlink, link: "dash", needs: "usr/bin/dash", when: ifAbsent, why: "dash ships /bin/sh in bookworm; kept in case a later dash does not"},
	{path: "usr/bin/awk", kind: kindSymlink, link: "gawk", needs: "usr/bin/gawk", when: ifAbsent, why: "update-alternatives would pick mawk; OpenWrt's scripts need gawk"},
	{path: "usr/bin/cc", kind: kindSymlink, link: "gcc", needs: "usr/bin/gcc", when: ifAbsent, why: "gcc's postinst: update-alternatives cc"},
	{path: "usr/bin/c++", kind: kindSymlink, link: "g++", needs: "usr/bin/g++", when: ifAbsent, why: "g++'s postinst: update-alternatives c++"},
	{path: "usr/bin/c89", kind: kindSymlink, link: "c89-gcc", needs: "usr/bin/c89-gcc", when: ifAbsent, why: "gcc's postinst: update-alternatives c89"},
	{path: "usr/bin/c99", kind: kindSymlink, link: "c99-gcc", needs: "usr/bin/c99-gcc", when: ifAbsent, why: "gcc's postinst: update-alternatives c99"},
	{path: "usr/lib/cpp", kind: kindSymlink, link: "../bin/cpp", needs: "usr/bin/cpp", when: ifAbsent, why: "cpp's postinst: update-alternatives /lib/cpp, which old configure scripts probe"},
	{path: "usr/bin/lzma", kind: kindSymlink, link: "xz", needs: "usr/bin/xz", when: ifAbsent, why: "xz-utils' postinst: update-alternatives lzma and its slaves"},
	{path: "usr/bin/unlzma", kind: kindSymlink, link: "unxz", needs: "usr/bin/unxz", when: ifAbsent, why: "xz-utils' postinst"},
	{path: "usr/bin/lzcat", kind: kindSymlink, link: "xzcat", needs: "usr/bin/xzcat", when: ifAbsent, why: "xz-utils' postinst"},
	{path: "usr/bin/lzmore", kind: kindSymlink, link: "xzmore", needs: "usr/bin/xzmore", when: ifAbsent, why: "xz-utils' postinst"},
	{path: "usr/bin/lzless", kind: kindSymlink, link: "xzless", needs: "usr/bin/xzless", when: ifAbsent, why: "xz-utils' postinst"},
	{path: "usr/bin/lzdiff", kind: kindSymlink, link: "xzdiff", needs: "usr/bin/xzdiff", when: ifAbsent, why: "xz-utils' postinst"},
	{path: "usr/bin/lzcmp", kind: kindSymlink, link: "xzcmp", needs: "usr/bin/xzcmp", when: ifAbsent, why: "xz-utils' postinst"},
	{path: "usr/bin/lzgrep", kind: kindSymlink, link: "xzgrep", needs: "usr/bin/xzgrep", when: ifAbsent, why: "xz-utils' postinst"},
	{path: "usr/bin/lzegrep", kind: kindSymlink, link: "xzegrep", needs: "usr/bin/xzegrep", when: ifAbsent, why: "xz-utils' postinst"},
	{path: "usr/bin/lzfgrep", kind: kindSymlink, link: "xzfgrep", needs: "usr/bin/xzfgrep", when: ifAbsent, why: "xz-utils' postinst"},
	{path: "usr/bin/which", kind: kindSymlink, link: "which.debianutils", needs: "usr/bin/which.debianutils", when: ifAbsent, why: "debianutils ships only which.debianutils; its postinst adds the which alternative"},
	{path: "usr/bin/python", kind: kindSymlink, link: "python3", needs: "usr/bin/python3", when: ifAbsent, why: "python-is-python3 ships it; kept for a lock without it"},

	{path: "etc/nsswitch.conf", kind: kindReg, mode: 0o644, copy: "usr/share/libc-bin/nsswitch.conf", needs: "usr/share/libc-bin/nsswitch.conf", when: ifAbsent, why: "libc-bin's postinst copies it"},
	{path: "etc/profile", kind: kindReg, mode: 0o644, copy: "usr/share/base-files/profile", needs: "usr/share/base-files/profile", when: ifAbsent, why: "base-files' postinst copies it; login shells get PATH from it"},
	{path: "root/.profile", kind: kindReg, mode: 0o644, copy: "usr/share/base-files/dot.profile", needs: "usr/share/base-files/dot.profile", when: ifAbsent, why: "base-files' postinst copies it"},
	{path: "root/.bashrc", kind: kindReg, mode: 0o644, copy: "usr/share/base-files/dot.bashrc", needs: "usr/share/base-files/dot.bashrc", when: ifAbsent, why: "base-files' postinst copies it"},
	{path: "usr/local/bin", kind: kindDir, mode: 0o755, needs: "usr/share/base-files", when: ifAbsent, why: "base-files' postinst creates /usr/local/*"},
	{path: "usr/local/etc", kind: kindDir, mode: 0o755, needs: "usr/share/base-files", when: ifAbsent, why: "base-files' postinst"},
	{path: "usr/local/games", kind: kindDir, mode: 0o755, needs: "usr/share/base-files", when: ifAbsent, why: "base-files' postinst"},
	{path: "usr/local/include", kind: kindDir, mode: 0o755, needs: "usr/share/base-files", when: ifAbsent, why: "base-files' postinst"},
	{path: "usr/local/lib", kind: kindDir, mode: 0o755, needs: "usr/share/base-files", when: ifAbsent, why: "base-files' postinst"},
	{path: "usr/local/man", kind: kindSymlink, link: "share/man", needs: "usr/share/base-files", when: ifAbsent, why: "base-files' postinst"},
	{path: "usr/local/sbin", kind: kindDir, mode: 0o755, needs: "usr/share/base-files", when: ifAbsent, why: "base-files' postinst"},
	{path: "usr/local/share/man", kind: kindDir, mode: 0o755, needs: "usr/share/base-files", when: ifAbsent, why: "base-files' postinst"},
	{path: "usr/local/src", kind: kindDir, mode: 0o755, needs: "usr/share/base-files", when: ifAbsent, why: "base-files' postinst"},
}
