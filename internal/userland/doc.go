// Package userland builds the Debian bookworm (amd64) root file system in
// which a real OpenWrt ImageBuilder runs, inside podman with --network none,
// as one reproducible OCI layer.
//
// It works like apko does for Alpine: every .deb is pinned by version,
// size and SHA-256 in a committed lock file (bookworm-amd64.lock, embedded;
// see Committed), downloaded once into a content-addressed cache (Fetch),
// and unpacked by Go code into a single deterministic tar (Layer). The same
// lock and epoch give the same layer DiffID on any machine, whatever its
// umask, time zone, file system or mirror; the compressed digest also
// depends on the Go toolchain's gzip, which go.mod pins.
//
// # Why tar-to-tar
//
// The .deb data archives are read and merged in memory and in a spool file,
// never extracted onto the host: files keep no host owner, mtime or umask,
// and nothing in a package (setuid bits, device nodes, paths with "..",
// symlinked parents) can touch the host. Every entry is owned by 0:0 with
// empty user and group names, stamped with the caller's epoch, written in
// PAX format in byte order of its name; permission bits are kept, setuid and
// setgid are dropped, and only the temporary directories in stickyDirs keep
// their sticky bit.
//
// # Why no maintainer scripts
//
// Maintainer scripts are shell programs that would have to run inside the
// half-built root with real privileges, and several of them (ldconfig,
// py3compile, update-alternatives) write host-dependent or time-dependent
// files. The few results the ImageBuilder needs are written directly
// instead, from one table (synthesized in synth.go) that gives the reason
// for each entry: /etc/passwd and /etc/group with a buildbot user (uid
// 1000, home /builder), the update-alternatives links (awk -> gawk, cc, c++,
// which), the configuration files postinst scripts copy into place, and the
// merged /usr symlinks (/bin -> usr/bin, ...) that debootstrap creates and
// bookworm's usr-is-merged package asserts. Files a package ships under
// /bin, /sbin, /lib or /lib64 are stored under /usr, exactly where dpkg
// would put them through those symlinks. The layer has no dpkg database, no
// /etc/ld.so.cache (the dynamic linker falls back to its built-in
// multiarch directories), no CA bundle in /etc/ssl/certs and no byte-compiled
// Python files.
//
// # Re-locking
//
// Debian removes superseded versions from deb.debian.org (the security
// archive right away, the main archive at point releases); Fetch then fails
// with ErrGone. To re-lock, on a Debian 12 bookworm amd64 machine whose apt
// sources are bookworm, bookworm-updates and bookworm-security:
//
//	apt-get update
//	scripts/userland-lock.sh
//
// which runs Resolve on Packages, rewrites bookworm-amd64.lock, fetches the
// new set and prints the resulting layer digest. Review the lock diff like
// code. To change the package set, edit Packages and re-lock.
package userland
