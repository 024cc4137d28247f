package main

// The privileged half of an update. `torwrt-verify daemon` runs as its own
// unprivileged user; it downloads and checks the signed manifest and the
// image, but it cannot flash. To install it hands the image's bytes to
// `torwrt-verify install-helper`, a tiny service that runs as root and
// trusts nothing the daemon says: it copies the bytes into a directory only
// root can reach, checks the copy's signature against its own key
// directory and the board it reads itself, and only then runs sysupgrade
// on the copy. The daemon's updater reaches it through `install-request`,
// which stands in for /sbin/sysupgrade (same argv: [--test] FILE).

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/torwrt/torwrt/internal/imagesig"
	"github.com/torwrt/torwrt/internal/usign"
)

const (
	defaultInstallSocket = "/var/run/torwrt-install.sock"
	defaultInstallDir    = "/tmp/torwrt-install"
	// maxInstallImage bounds the copy the helper makes (16 MB of flash).
	maxInstallImage = 16 << 20
	// installTimeout bounds one request: reading the image, checking it
	// and sysupgrade --test.
	installTimeout = 5 * time.Minute
	// exitInstall is the updater's ErrSysupgrade exit code.
	exitInstall = 14
)

var errInstallRefused = errors.New("install helper refused the image")

func init() {
	extraCommands["install-helper"] = runInstallHelper
	extraCommands["install-request"] = runInstallRequest
}

// installHelper is the root side. Every field comes from its own command
// line (the init script), never from the daemon.
type installHelper struct {
	KeysDir    string // trusted release keys, /etc/torwrt/keys
	BoardFile  string // /tmp/sysinfo/board_name
	Sysupgrade string // /sbin/sysupgrade
	Dir        string // root-only working directory, made anew per request
	MaxBytes   int64
	// PeerUID is the only uid allowed to connect (the daemon's user).
	PeerUID int
}

// install copies at most h.MaxBytes from r, verifies the copy and runs
// `sysupgrade --test COPY` (test) or `sysupgrade COPY`. It returns nil only
// after sysupgrade accepted the copy.
func (h *installHelper) install(ctx context.Context, r io.Reader, test bool) error {
	b, err := os.ReadFile(h.BoardFile)
	board := strings.TrimSpace(string(b))
	if err != nil || board == "" {
		return fmt.Errorf("%w: no board to check the image against (%s): refusing", errInstallRefused, h.BoardFile)
	}
	keys, err := usign.LoadKeyDir(h.KeysDir)
	if err != nil {
		return fmt.Errorf("loading trusted keys: %w", err)
	}
	// A fresh directory of root's: whatever was there (a file, a symlink,
	// another user's directory) goes, and Mkdir fails if someone raced us.
	if err := os.RemoveAll(h.Dir); err != nil {
		return fmt.Errorf("clearing %s: %w", h.Dir, err)
	}
	if err := os.Mkdir(h.Dir, 0o700); err != nil {
		return fmt.Errorf("making %s: %w", h.Dir, err)
	}
	copyPath := filepath.Join(h.Dir, "image.bin")
	f, err := os.OpenFile(copyPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("creating %s: %w", copyPath, err)
	}
	n, err := io.Copy(f, io.LimitReader(r, h.MaxBytes+1))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.RemoveAll(h.Dir)
		return fmt.Errorf("receiving the image: %w", err)
	}
	if n > h.MaxBytes {
		os.RemoveAll(h.Dir)
		return fmt.Errorf("%w: image larger than %d bytes", errInstallRefused, h.MaxBytes)
	}
	// The helper's own verdict, on the bytes sysupgrade will read.
	if _, err := imagesig.VerifyFile(copyPath, keys, imagesig.Options{Board: board}); err != nil {
		os.RemoveAll(h.Dir)
		return fmt.Errorf("%w: %v", errInstallRefused, err)
	}
	args := []string{copyPath}
	if test {
		args = []string{"--test", copyPath}
		defer os.RemoveAll(h.Dir)
	}
	cmd := exec.CommandContext(ctx, h.Sysupgrade, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: sysupgrade %s: %v: %s", errInstallRefused, strings.Join(args, " "), err, lastBytes(out, 512))
	}
	return nil
}

func lastBytes(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// serve answers one request at a time, so two installs never overlap.
// A request is "test\n" or "flash\n" followed by the image until the
// client closes its writing half; the answer is "OK\n" or "ERR ...\n".
func (h *installHelper) serve(ctx context.Context, ln *net.UnixListener) error {
	go func() { <-ctx.Done(); ln.Close() }()
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

func (h *installHelper) handle(ctx context.Context, c *net.UnixConn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(installTimeout))
	reply := func(err error) {
		if err != nil {
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
	br := bufio.NewReaderSize(c, 64)
	verb, err := br.ReadSlice('\n')
	if err != nil {
		reply(fmt.Errorf("reading the request: %w", err))
		return
	}
	var test bool
	switch string(verb) {
	case "test\n":
		test = true
	case "flash\n":
	default:
		reply(fmt.Errorf("unknown request %q", verb))
		return
	}
	rctx, cancel := context.WithTimeout(ctx, installTimeout)
	defer cancel()
	if !test {
		// Flashing must not stop halfway because the daemon went away.
		rctx = context.WithoutCancel(rctx)
	}
	reply(h.install(rctx, br, test))
}

func runInstallHelper(ctx context.Context, stdout, stderr io.Writer, args []string) int {
	fs := flag.NewFlagSet("verify install-helper", flag.ContinueOnError)
	fs.SetOutput(stderr)
	h := installHelper{MaxBytes: maxInstallImage}
	sock := fs.String("socket", defaultInstallSocket, "unix socket to listen on")
	fs.StringVar(&h.KeysDir, "keys", "/etc/torwrt/keys", "directory of trusted usign public keys")
	fs.StringVar(&h.BoardFile, "board-file", boardNameFile, "file holding this router's board name")
	fs.StringVar(&h.Sysupgrade, "sysupgrade", "/sbin/sysupgrade", "sysupgrade program")
	fs.StringVar(&h.Dir, "dir", defaultInstallDir, "root-only working directory")
	fs.IntVar(&h.PeerUID, "peer-uid", -1, "the only uid allowed to ask (the daemon's user)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return exitUsage
	}
	if h.PeerUID < 0 {
		fmt.Fprintln(stderr, "verify install-helper: --peer-uid is required")
		return exitUsage
	}
	return runInstallHelperWith(ctx, &h, *sock, stdout, stderr)
}

func runInstallHelperWith(ctx context.Context, h *installHelper, sock string, stdout, stderr io.Writer) int {
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

// runInstallRequest is the daemon's /sbin/sysupgrade: [--test] FILE.
func runInstallRequest(ctx context.Context, stdout, stderr io.Writer, args []string) int {
	fs := flag.NewFlagSet("verify install-request", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sock := fs.String("socket", defaultInstallSocket, "the install helper's unix socket")
	test := fs.Bool("test", false, "only check the image with sysupgrade --test")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		return exitUsage
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "verify install-request: %v\n", err)
		return exitFailure
	}
	defer f.Close()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", *sock)
	if err != nil {
		fmt.Fprintf(stderr, "verify install-request: %v\n", err)
		return exitInstall
	}
	c := nc.(*net.UnixConn)
	defer c.Close()
	verb := "flash\n"
	if *test {
		verb = "test\n"
	}
	if _, err = io.WriteString(c, verb); err == nil {
		if _, err = io.Copy(c, f); err == nil {
			err = c.CloseWrite()
		}
	}
	// The helper may refuse before reading everything; its answer counts.
	answer, rerr := bufio.NewReaderSize(c, 1024).ReadString('\n')
	if answer == "OK\n" {
		return exitOK
	}
	if rerr != nil && err == nil {
		err = rerr
	}
	fmt.Fprintf(stderr, "verify install-request: %s%v\n", strings.TrimPrefix(answer, "ERR "), errOrEmpty(err, answer))
	return exitInstall
}

func errOrEmpty(err error, answer string) any {
	if answer != "" || err == nil {
		return ""
	}
	return err
}
