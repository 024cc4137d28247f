package main

// The privileged half of an update. `torwrt-verify daemon` runs as its own
// unprivileged user (torwrt); it downloads and checks the signed manifest
// and the image, but it cannot flash. To install, it asks
// `torwrt-verify install-helper`, a small service that runs as root, over
// a unix socket, with exactly one kind of request: "install the image at
// this path, whose sha256 is X, listed by this signed manifest". The
// helper trusts nothing in it. It answers only the daemon's uid
// (SO_PEERCRED); it verifies the manifest itself (threshold signatures,
// expiry, replay against its own root-owned state), picks the release for
// the board it reads itself, refuses a build that is not newer than the
// running firmware's (its root-owned release file) or below the floor it
// remembers, requires that release's sha256 to be X; then copies the file
// (a regular file of the daemon's, one link) into a directory only root
// can reach, hashing while it copies, checks the copy's size and sha256
// against the manifest and its signature and board against its own keys,
// and only then runs `sysupgrade --test COPY` and `sysupgrade COPY`. What
// sysupgrade reads is root's copy: the daemon cannot swap the bytes after
// the checks.

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/torwrt/torwrt/internal/imagesig"
	"github.com/torwrt/torwrt/internal/manifest"
	"github.com/torwrt/torwrt/internal/routerconf"
	"github.com/torwrt/torwrt/internal/updater"
	"github.com/torwrt/torwrt/internal/usign"
)

const (
	defaultInstallSocket = "/var/run/torwrt-install.sock"
	defaultInstallDir    = "/tmp/torwrt-install"
	// defaultInstallState is the helper's own memory of manifests and
	// floors: root's, in a directory only root can write, kept by
	// sysupgrade (/lib/upgrade/keep.d/torwrt).
	defaultInstallState = "/etc/torwrt/install-state.json"
	// maxInstallImage bounds the copy the helper makes (16 MB of flash).
	maxInstallImage = 16 << 20
	// installTimeout bounds one request up to the start of flashing.
	installTimeout = 5 * time.Minute
	// exitInstall is the updater's ErrSysupgrade exit code.
	exitInstall = 14
)

var errInstallRefused = errors.New("install helper refused")

func init() {
	extraCommands["install-helper"] = runInstallHelper
	extraCommands["install-request"] = runInstallRequest
}

// installHelper is the root side. Every field comes from root-owned files
// (verify.json, the key directory, the release file) or its own command
// line (the init script), never from the daemon.
type installHelper struct {
	KeysDir   string // trusted release keys, /etc/torwrt/keys
	Threshold int
	// Channel is the router's release channel (verify.json): a manifest
	// of another channel is refused, as by the updater. Required.
	Channel string
	// Board wins; else BoardFile (/tmp/sysinfo/board_name).
	Board, BoardFile string
	// ReleaseFile describes the running firmware (/etc/torwrt/release.json,
	// in the image): its build is the rollback floor.
	ReleaseFile string
	// StatePath is the helper's own state (replay, floor).
	StatePath  string
	BuildEpoch int64
	Sysupgrade string // /sbin/sysupgrade
	Dir        string // root-only working directory, made anew per request
	MaxBytes   int64
	// PeerUID is the only uid allowed to ask (the daemon's user).
	PeerUID int
	Clock   func() time.Time
	Log     *slog.Logger
}

func (h *installHelper) board() (string, error) {
	if h.Board != "" {
		return h.Board, nil
	}
	b, err := os.ReadFile(h.BoardFile)
	board := strings.TrimSpace(string(b))
	if err != nil || board == "" {
		return "", fmt.Errorf("%w: no board to check the image against (%s)", errInstallRefused, h.BoardFile)
	}
	return board, nil
}

// installedBuild is the running firmware's build from the release file.
// Without it there is no floor to check a downgrade against: refuse.
func (h *installHelper) installedBuild() (uint64, error) {
	b, err := readLimited(h.ReleaseFile, 4096)
	if err == nil {
		var r routerconf.Release
		if r, err = routerconf.DecodeRelease(b); err == nil && r.Build > 0 {
			return r.Build, nil
		} else if err == nil {
			err = errors.New("build is 0")
		}
	}
	return 0, fmt.Errorf("%w: no trusted installed build to refuse downgrades against: release file %s: %v", errInstallRefused, h.ReleaseFile, err)
}

// now is the helper's lower bound on the time: the clock, the image's
// build time and the last manifest it accepted. It cannot ask Tor (the
// daemon's answer is not evidence), so a clock that is behind makes the
// helper's expiry check weaker than the daemon's, never stricter.
func (h *installHelper) now(st *updater.State) time.Time {
	clock := h.Clock
	if clock == nil {
		clock = time.Now
	}
	now := clock()
	if e := time.Unix(h.BuildEpoch, 0); h.BuildEpoch > 0 && e.After(now) {
		now = e
	}
	if st.Manifest.IssuedAt.After(now) {
		now = st.Manifest.IssuedAt
	}
	return now
}

// install handles one request: the image at path, sha256 want, listed in
// the manifest envelope env. It returns nil only after `sysupgrade` ran
// on root's own verified copy.
func (h *installHelper) install(ctx context.Context, want, path string, env []byte) error {
	board, err := h.board()
	if err != nil {
		return err
	}
	keys, err := usign.LoadKeyDir(h.KeysDir)
	if err != nil {
		return fmt.Errorf("loading trusted keys: %w", err)
	}
	installed, err := h.installedBuild()
	if err != nil {
		return err
	}
	st, _, err := updater.LoadState(h.StatePath)
	if err != nil {
		return fmt.Errorf("install helper state: %w", err)
	}

	// 1. The manifest, checked here as if the daemon had never seen it.
	if h.Channel == "" {
		return fmt.Errorf("%w: no release channel configured", errInstallRefused)
	}
	v, err := manifest.Check(env, keys, h.Threshold, h.now(st), st.Manifest)
	if err != nil {
		return fmt.Errorf("%w: manifest: %w", errInstallRefused, err)
	}
	// Another channel's sequence numbers are its own: refuse it before
	// it can move the helper's replay floor.
	if v.Manifest.Channel != h.Channel {
		return fmt.Errorf("%w: %w: the manifest (sequence %d) is for channel %q, this router follows channel %q",
			errInstallRefused, updater.ErrWrongChannel, v.Manifest.Sequence, v.Manifest.Channel, h.Channel)
	}
	floor := max(st.Floor, manifest.Floor(v.Manifest, board))
	st.Manifest, st.Floor = st.Manifest.Next(v), floor
	// Accepting the manifest moves the helper's replay floor, as in the
	// updater: an older manifest is refused from now on.
	if err := updater.SaveState(h.StatePath, st); err != nil {
		return fmt.Errorf("install helper state: %w", err)
	}
	rel, err := manifest.Select(v.Manifest, board, installed)
	if err != nil {
		return fmt.Errorf("%w: %w", errInstallRefused, err)
	}
	if rel.Build < floor {
		return fmt.Errorf("%w: %w: build %d is below the floor %d", errInstallRefused, manifest.ErrRollback, rel.Build, floor)
	}
	if rel.SHA256 != want {
		return fmt.Errorf("%w: the manifest's release for %s is build %d with sha256 %s, not the requested %s", errInstallRefused, board, rel.Build, rel.SHA256, want)
	}
	if rel.Size > h.MaxBytes {
		return fmt.Errorf("%w: image of %d bytes is larger than %d", errInstallRefused, rel.Size, h.MaxBytes)
	}

	// 2. Root's own copy of the daemon's file.
	copyPath, err := h.copyImage(path, rel)
	if err != nil {
		os.RemoveAll(h.Dir)
		return err
	}
	// 3. Signature and board, on the bytes sysupgrade will read.
	if _, err := imagesig.VerifyFile(copyPath, keys, imagesig.Options{Board: board}); err != nil {
		os.RemoveAll(h.Dir)
		return fmt.Errorf("%w: image: %w", errInstallRefused, err)
	}
	// 4. Stock checks, then flashing: from here on the daemon going away
	// (or the request's deadline) must not stop it halfway.
	if out, err := exec.CommandContext(ctx, h.Sysupgrade, "--test", copyPath).CombinedOutput(); err != nil {
		os.RemoveAll(h.Dir)
		return fmt.Errorf("%w: sysupgrade --test: %v: %s", errInstallRefused, err, lastBytes(out, 512))
	}
	h.logger().Info("flashing", "build", rel.Build, "version", rel.Version, "sha256", rel.SHA256)
	if out, err := exec.CommandContext(context.WithoutCancel(ctx), h.Sysupgrade, copyPath).CombinedOutput(); err != nil {
		os.RemoveAll(h.Dir)
		return fmt.Errorf("sysupgrade: %v: %s", err, lastBytes(out, 512))
	}
	return nil
}

func (h *installHelper) logger() *slog.Logger {
	if h.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return h.Log
}

// copyImage copies the daemon's file at path into a fresh root-only
// directory, hashing while it copies, and returns the copy's path. The
// file must be a regular file of the daemon's user with one link (not a
// symlink, not a hard link to someone else's file, not a fifo that would
// block), and the copy must have exactly rel's size and sha256.
func (h *installHelper) copyImage(path string, rel *manifest.Release) (string, error) {
	src, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("%w: opening %s: %v", errInstallRefused, path, err)
	}
	defer src.Close()
	if _, err := updater.CheckOwnedFile(src, path, h.PeerUID); err != nil {
		return "", fmt.Errorf("%w: %v", errInstallRefused, err)
	}
	// A fresh directory of root's: whatever was there (a file, a symlink,
	// another user's directory) goes, and Mkdir fails if someone raced us.
	if err := os.RemoveAll(h.Dir); err != nil {
		return "", fmt.Errorf("clearing %s: %w", h.Dir, err)
	}
	if err := os.Mkdir(h.Dir, 0o700); err != nil {
		return "", fmt.Errorf("making %s: %w", h.Dir, err)
	}
	copyPath := filepath.Join(h.Dir, "image.bin")
	f, err := os.OpenFile(copyPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return "", fmt.Errorf("creating %s: %w", copyPath, err)
	}
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, sum), io.LimitReader(src, rel.Size+1))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("copying %s: %w", path, err)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); n != rel.Size || got != rel.SHA256 {
		return "", fmt.Errorf("%w: %s is %d bytes with sha256 %s, the manifest lists %d bytes with sha256 %s",
			errInstallRefused, path, n, got, rel.Size, rel.SHA256)
	}
	return copyPath, nil
}

func lastBytes(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// serve answers one request at a time, so two installs never overlap.
func (h *installHelper) serve(ctx context.Context, ln *net.UnixListener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		h.handle(ctx, c)
	}
}

// handle reads one request (updater.SocketInstaller's protocol) and
// answers "OK\n" or "ERR <reason>\n".
func (h *installHelper) handle(ctx context.Context, c *net.UnixConn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(installTimeout))
	log := h.logger()
	reply := func(err error) {
		if err != nil {
			log.Warn("install refused", "reason", err)
			fmt.Fprintf(c, "ERR %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
			return
		}
		io.WriteString(c, "OK\n")
	}
	uid, err := peerUID(c)
	if err != nil || uid != h.PeerUID {
		reply(fmt.Errorf("%w: peer uid %d is not %d", errInstallRefused, uid, h.PeerUID))
		return
	}
	br := bufio.NewReaderSize(c, 512)
	line, err := br.ReadSlice('\n')
	if err != nil {
		reply(fmt.Errorf("%w: reading the request: %v", errInstallRefused, err))
		return
	}
	want, path, err := updater.ParseInstallRequest(string(line))
	if err != nil {
		reply(fmt.Errorf("%w: %v", errInstallRefused, err))
		return
	}
	env, err := io.ReadAll(io.LimitReader(br, manifest.MaxSize+1))
	if err != nil {
		reply(fmt.Errorf("%w: reading the manifest: %v", errInstallRefused, err))
		return
	}
	if len(env) > manifest.MaxSize {
		reply(fmt.Errorf("%w: %w: manifest larger than %d bytes", errInstallRefused, manifest.ErrTooLarge, manifest.MaxSize))
		return
	}
	rctx, cancel := context.WithTimeout(ctx, installTimeout)
	defer cancel()
	reply(h.install(rctx, want, path, env))
}

// runInstallHelper: `install-helper --peer-uid UID [--config FILE]
// [--socket PATH] [--dir DIR] [--state FILE]`. Keys, threshold, board,
// release file, build epoch and sysupgrade come from the config, which
// only root can write.
func runInstallHelper(ctx context.Context, stdout, stderr io.Writer, args []string) int {
	fs := flag.NewFlagSet("verify install-helper", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", defaultConfigPath, "config file (root's)")
	sock := fs.String("socket", defaultInstallSocket, "unix socket to listen on")
	dir := fs.String("dir", defaultInstallDir, "root-only working directory")
	statePath := fs.String("state", defaultInstallState, "the helper's own state file")
	peer := fs.Int("peer-uid", -1, "the only uid allowed to ask (the daemon's user)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return exitUsage
	}
	if *peer < 1 {
		fmt.Fprintln(stderr, "verify install-helper: --peer-uid is required (the daemon's uid, not root)")
		return exitUsage
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "verify install-helper: %v\n", err)
		return exitUsage
	}
	h := &installHelper{
		KeysDir: cfg.KeysDir, Threshold: cfg.Threshold, Channel: cfg.Channel, Board: cfg.Board, BoardFile: cfg.BoardFile,
		ReleaseFile: cfg.ReleaseFile, StatePath: *statePath, BuildEpoch: cfg.BuildEpoch,
		Sysupgrade: cfg.Sysupgrade, Dir: *dir, MaxBytes: maxInstallImage, PeerUID: *peer,
		Log: slog.New(slog.NewTextHandler(stderr, nil)),
	}
	if h.Sysupgrade == "" {
		h.Sysupgrade = updater.DefaultSysupgrade
	}
	return runInstallHelperWith(ctx, h, *sock, stderr)
}

func runInstallHelperWith(ctx context.Context, h *installHelper, sock string, stderr io.Writer) int {
	os.Remove(sock)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		fmt.Fprintf(stderr, "verify install-helper: %v\n", err)
		return exitFailure
	}
	// Anyone may connect; only PeerUID is answered (SO_PEERCRED).
	if err := os.Chmod(sock, 0o666); err != nil {
		ln.Close()
		fmt.Fprintf(stderr, "verify install-helper: %v\n", err)
		return exitFailure
	}
	if err := h.serve(ctx, ln); err != nil {
		fmt.Fprintf(stderr, "verify install-helper: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// runInstallRequest asks the helper by hand, exactly as the daemon does:
// `install-request [--socket PATH] --sha256 HEX --manifest FILE IMAGE`.
func runInstallRequest(ctx context.Context, stdout, stderr io.Writer, args []string) int {
	fs := flag.NewFlagSet("verify install-request", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sock := fs.String("socket", defaultInstallSocket, "the install helper's unix socket")
	sum := fs.String("sha256", "", "the image's sha256 as the manifest lists it")
	mf := fs.String("manifest", "", "the signed manifest (release.json) that lists the image")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 || *mf == "" {
		return exitUsage
	}
	env, err := readLimited(*mf, manifest.MaxSize)
	if err != nil {
		fmt.Fprintf(stderr, "verify install-request: %v\n", err)
		return exitFailure
	}
	img, err := filepath.Abs(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "verify install-request: %v\n", err)
		return exitUsage
	}
	req := updater.InstallRequest{Image: img, SHA256: *sum, Manifest: env}
	if err := (updater.SocketInstaller{Path: *sock}).Install(ctx, req); err != nil {
		fmt.Fprintf(stderr, "verify install-request: %v\n", err)
		return exitInstall
	}
	return exitOK
}
