package userland

// Packages is what Resolve asks apt for; apt adds the dependency closure
// (without recommends). apt starts from an empty dpkg status, so the
// essential packages a Debian system always has must be listed too.
// Changing this list means re-locking (see the package documentation).
var Packages = []string{
	// Essential: what debootstrap --variant=minbase would install, minus
	// apt, dpkg's own tools, login and the init system.
	"base-files", "base-passwd", "bash", "coreutils", "dash", "debianutils",
	"diffutils", "findutils", "grep", "gzip", "hostname", "libc-bin", "sed",
	"tar", "util-linux", "perl-base", "mawk", "ncurses-base", "ncurses-bin",

	// Merged /usr: satisfies init-system-helpers' "usrmerge | usr-is-merged"
	// with the marker package. Layer builds the merged layout itself; the
	// alternative, usrmerge, converts a live system in its postinst.
	"usr-is-merged",

	// The ImageBuilder's prerequisite check: compilers and headers.
	"make", "gcc", "g++", "libc6-dev", "libncurses-dev", "zlib1g-dev",
	"libssl-dev",

	// The ImageBuilder's prerequisite check: scripting languages.
	"perl", "libthread-queue-any-perl", "gawk", "python3", "python-is-python3",

	// The ImageBuilder's prerequisite check: archive, patch and fetch tools.
	// ("which" is /usr/bin/which.debianutils in bookworm's debianutils;
	// there is no which package.)
	"patch", "bzip2", "unzip", "wget", "git", "file", "xz-utils", "zstd",
	"rsync", "ca-certificates",

	// Handy when a build fails: ps, kill, openssl.
	"procps", "openssl",
}
