package updater

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/torwrt/torwrt/internal/manifest"
)

// InstallRequest is the one thing the unprivileged daemon may ask of the
// root install helper: install the image at Image, whose sha256 is
// SHA256, because the signed manifest Manifest (the envelope exactly as
// the updater verified it) lists it. The helper believes none of it: it
// verifies the manifest, the image and the floors itself.
type InstallRequest struct {
	Image    string
	SHA256   string
	Manifest []byte
}

// Installer runs `sysupgrade --test` and `sysupgrade` on a verified image,
// or asks someone allowed to. Config.Installer nil means Sysupgrade is
// run directly (the updater is root).
type Installer interface {
	Install(ctx context.Context, req InstallRequest) error
}

// SocketInstaller asks the root install helper (`torwrt-verify
// install-helper`) over its unix socket. The protocol is one request per
// connection: the line "install <sha256> <path>\n", then the manifest
// envelope until the client closes its writing half; the answer is one
// line, "OK\n" or "ERR <reason>\n". The helper checks the peer's uid with
// SO_PEERCRED.
type SocketInstaller struct {
	Path string
}

// MaxInstallAnswer bounds the helper's answer line.
const MaxInstallAnswer = 4096

// Install sends req and waits for the helper's verdict. A refusal or a
// connection that ends without an answer is ErrSysupgrade.
func (s SocketInstaller) Install(ctx context.Context, req InstallRequest) error {
	line, err := FormatInstallRequest(req)
	if err != nil {
		return err
	}
	if len(req.Manifest) > manifest.MaxSize {
		return fmt.Errorf("%w: manifest of %d bytes", ErrTooLarge, len(req.Manifest))
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", s.Path)
	if err != nil {
		return fmt.Errorf("%w: install helper at %s: %v", ErrSysupgrade, s.Path, err)
	}
	c := nc.(*net.UnixConn)
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	if _, err = io.WriteString(c, line); err == nil {
		if _, err = c.Write(req.Manifest); err == nil {
			err = c.CloseWrite()
		}
	}
	// The helper may answer before reading everything; its answer counts.
	answer, rerr := bufio.NewReader(io.LimitReader(c, MaxInstallAnswer)).ReadString('\n')
	switch {
	case answer == "OK\n":
		return nil
	case strings.HasPrefix(answer, "ERR "):
		return fmt.Errorf("%w: install helper: %s", ErrSysupgrade, strings.TrimSpace(strings.TrimPrefix(answer, "ERR ")))
	}
	if err == nil {
		err = rerr
	}
	return fmt.Errorf("%w: install helper gave no answer: %v", ErrSysupgrade, err)
}

// FormatInstallRequest is the request line for req.
func FormatInstallRequest(req InstallRequest) (string, error) {
	if !isSHA256Hex(req.SHA256) {
		return "", fmt.Errorf("install request: sha256 %q is not 64 lowercase hex digits", req.SHA256)
	}
	if !filepath.IsAbs(req.Image) || filepath.Clean(req.Image) != req.Image || strings.ContainsAny(req.Image, " \n\r\x00") {
		return "", fmt.Errorf("install request: image path %q must be clean, absolute and without spaces or control characters", req.Image)
	}
	return "install " + req.SHA256 + " " + req.Image + "\n", nil
}

// ParseInstallRequest reads what FormatInstallRequest wrote.
func ParseInstallRequest(line string) (sha, path string, err error) {
	rest, ok := strings.CutPrefix(line, "install ")
	if !ok || !strings.HasSuffix(rest, "\n") {
		return "", "", fmt.Errorf("not an install request: %q", short(line))
	}
	sha, path, ok = strings.Cut(strings.TrimSuffix(rest, "\n"), " ")
	if !ok {
		return "", "", fmt.Errorf("install request without a path: %q", short(line))
	}
	if _, err := FormatInstallRequest(InstallRequest{Image: path, SHA256: sha}); err != nil {
		return "", "", err
	}
	return sha, path, nil
}

func short(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// installVia hands the verified image to u.cfg.Installer, which runs
// `sysupgrade --test` and `sysupgrade` itself after its own checks. The
// new build is recorded first (sysupgrade reboots and does not come back
// to say it worked) and taken back if the installer refuses.
func (u *Updater) installVia(ctx context.Context, st *State, res *Result, rel *manifest.Release, file string, envelope []byte) error {
	prevBuild, prevVersion, prevInstall, prevPending := st.InstalledBuild, st.InstalledVersion, st.LastInstall, st.Pending
	st.InstalledBuild, st.InstalledVersion, st.LastInstall, st.Pending = rel.Build, rel.Version, res.Now, nil
	if err := SaveState(u.cfg.StatePath, st); err != nil {
		st.InstalledBuild, st.InstalledVersion, st.LastInstall, st.Pending = prevBuild, prevVersion, prevInstall, prevPending
		os.Remove(file)
		return err
	}
	u.log.Info("asking the install helper to flash", "image", file, "version", rel.Version, "build", rel.Build)
	err := u.cfg.Installer.Install(ctx, InstallRequest{Image: file, SHA256: rel.SHA256, Manifest: envelope})
	if err != nil {
		st.InstalledBuild, st.InstalledVersion, st.LastInstall, st.Pending = prevBuild, prevVersion, prevInstall, prevPending
		os.Remove(file)
		if !errors.Is(err, ErrSysupgrade) {
			err = fmt.Errorf("%w: %v", ErrSysupgrade, err)
		}
		return err
	}
	res.Status = StatusInstalled
	res.Reason = fmt.Sprintf("installed build %d (%s); the router reboots", rel.Build, rel.Version)
	return nil
}
