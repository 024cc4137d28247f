// Package updater is the router's update check: fetch the signed manifest
// over Tor, pick the release for this board, download the image over Tor
// with hard size limits, verify it, and hand it to sysupgrade.
//
// Order of checks (docs/updates.md): manifest size, signatures (M of N),
// syntax, expiry against the effective time, freshness against the last
// accepted manifest, board, anti-rollback, rollout delay, free RAM, image
// size while streaming, image sha256, image signature and board in the
// fwtool metadata, `sysupgrade --test`, and only then `sysupgrade`.
// Nothing is flashed unless every check passed.
package updater

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
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

	"golang.org/x/net/proxy"

	"github.com/torwrt/torwrt/internal/imagesig"
	"github.com/torwrt/torwrt/internal/manifest"
	"github.com/torwrt/torwrt/internal/usign"
)

// Sentinel errors for decisions the updater makes itself. Manifest and
// image refusals wrap the manifest, imagesig and usign sentinels.
var (
	ErrTooLarge      = errors.New("download larger than allowed")
	ErrHashMismatch  = errors.New("image does not match the manifest")
	ErrNoMemory      = errors.New("not enough free RAM for the image")
	ErrSysupgrade    = errors.New("sysupgrade refused or failed")
	ErrBusy          = errors.New("another update check is running")
	ErrMirrors       = errors.New("no mirror answered")
	ErrConfiguration = errors.New("bad updater configuration")
	// ErrWrongChannel: a validly signed manifest of another release
	// channel (say beta on a stable router). It is refused before it is
	// accepted: nothing is recorded, downloaded or flashed.
	ErrWrongChannel = errors.New("manifest is for another release channel")
)

// Defaults for Config fields left zero.
const (
	// DefaultManifestName is what `imgbuild release prepare` writes at the
	// top of dist/; a mirror publishes dist/ as it is.
	DefaultManifestName   = "release.json"
	DefaultDownloadDir    = "/tmp"
	DefaultSysupgrade     = "/sbin/sysupgrade"
	DefaultMemInfo        = "/proc/meminfo"
	DefaultRAMMargin      = 8 << 20
	DefaultRequestTimeout = 90 * time.Second
	DefaultStallTimeout   = 60 * time.Second
	DefaultAttempts       = 3
	// An image download from one mirror, all its attempts together, may
	// take DefaultDownloadBase plus the image size at DefaultMinRate.
	DefaultDownloadBase = 60 * time.Second
	DefaultMinRate      = 16 << 10 // bytes per second
)

// Config is everything a check needs. Paths are absolute on the router.
type Config struct {
	// Mirrors are base URLs tried in order, e.g.
	// "http://<56 chars>.onion/torwrt/stable/".
	Mirrors      []string
	ManifestName string
	Keys         *usign.Keyring
	Threshold    int
	// Board is this router's board name (/tmp/sysinfo/board_name).
	Board string
	// Channel is the release channel this router follows (verify.json
	// "channel", the brand's): a manifest of any other channel is refused
	// (ErrWrongChannel). Required.
	Channel string
	// SOCKSAddr is Tor's SocksPort as ip:port. Every connection goes
	// through it, with the host name unresolved.
	SOCKSAddr   string
	DownloadDir string
	StatePath   string
	Sysupgrade  string
	// Installer, when set, is asked to install a verified image instead
	// of running Sysupgrade here: the daemon runs unprivileged and hands
	// the image to the root install helper (SocketInstaller).
	Installer   Installer
	MemInfoPath string
	// RAMMargin is left free beyond the image, which sits in tmpfs.
	RAMMargin int64
	// RequestTimeout bounds connecting plus response headers, and the
	// whole manifest fetch. StallTimeout bounds any wait for a byte.
	RequestTimeout time.Duration
	StallTimeout   time.Duration
	// DownloadBase and MinRate bound an image download from one mirror,
	// all attempts together: DownloadBase + size/MinRate. A mirror that
	// trickles bytes just fast enough to beat StallTimeout is abandoned
	// then, and the next mirror is tried.
	DownloadBase time.Duration
	MinRate      int64
	// Attempts per mirror; later attempts resume with a Range request.
	Attempts int
	// InstalledBuild and InstalledVersion describe the running firmware;
	// zero falls back to the state file.
	InstalledBuild   uint64
	InstalledVersion string
	// IgnoreRollout installs at once, for a check the owner asked for.
	IgnoreRollout bool

	// Clock is the system clock (time.Now if nil). TorTime returns Tor's
	// consensus valid-after, a signed lower bound on the real time.
	Clock   func() time.Time
	TorTime func(ctx context.Context) (time.Time, error)
	Logger  *slog.Logger
}

// Updater runs checks with one Config.
type Updater struct {
	cfg Config
	log *slog.Logger
	// tlsWrap speaks TLS to https mirrors; tests swap in their own roots.
	tlsWrap func(ctx context.Context, c net.Conn, serverName string) (net.Conn, error)
}

// New checks cfg and fills in defaults.
func New(cfg Config) (*Updater, error) {
	if len(cfg.Mirrors) == 0 {
		return nil, fmt.Errorf("%w: no mirrors", ErrConfiguration)
	}
	for _, m := range cfg.Mirrors {
		if _, err := requestURL(m); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfiguration, err)
		}
	}
	if cfg.Keys == nil || cfg.Keys.Len() == 0 {
		return nil, fmt.Errorf("%w: no trusted keys", ErrConfiguration)
	}
	if cfg.Threshold < 1 || cfg.Threshold > cfg.Keys.Len() {
		return nil, fmt.Errorf("%w: threshold %d with %d trusted keys", ErrConfiguration, cfg.Threshold, cfg.Keys.Len())
	}
	if err := checkBoard(cfg.Board); err != nil {
		return nil, err
	}
	if cfg.Channel == "" || len(cfg.Channel) > manifest.MaxString {
		return nil, fmt.Errorf("%w: release channel %q: set \"channel\" in the config (e.g. \"stable\"); a router that does not know its channel accepts no manifest", ErrConfiguration, cfg.Channel)
	}
	if ap, err := netipAddrPort(cfg.SOCKSAddr); err != nil {
		return nil, fmt.Errorf("%w: socks address %q must be ip:port, so that not even the proxy's name is looked up: %v", ErrConfiguration, cfg.SOCKSAddr, err)
	} else {
		cfg.SOCKSAddr = ap
	}
	if cfg.StatePath == "" {
		return nil, fmt.Errorf("%w: no state path", ErrConfiguration)
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&cfg.ManifestName, DefaultManifestName)
	def(&cfg.DownloadDir, DefaultDownloadDir)
	def(&cfg.Sysupgrade, DefaultSysupgrade)
	def(&cfg.MemInfoPath, DefaultMemInfo)
	if strings.ContainsAny(cfg.ManifestName, "/?#") {
		return nil, fmt.Errorf("%w: manifest name %q must be a bare file name", ErrConfiguration, cfg.ManifestName)
	}
	if cfg.RAMMargin == 0 {
		cfg.RAMMargin = DefaultRAMMargin
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.StallTimeout == 0 {
		cfg.StallTimeout = DefaultStallTimeout
	}
	if cfg.Attempts == 0 {
		cfg.Attempts = DefaultAttempts
	}
	if cfg.DownloadBase == 0 {
		cfg.DownloadBase = DefaultDownloadBase
	}
	if cfg.MinRate == 0 {
		cfg.MinRate = DefaultMinRate
	}
	if cfg.RequestTimeout < 0 || cfg.StallTimeout < 0 || cfg.DownloadBase < 0 || cfg.MinRate < 0 {
		return nil, fmt.Errorf("%w: negative timeout or rate", ErrConfiguration)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Updater{cfg: cfg, log: log, tlsWrap: wrapTLS}, nil
}

func netipAddrPort(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", err
	}
	if net.ParseIP(host) == nil {
		return "", fmt.Errorf("%q is not an IP address", host)
	}
	return net.JoinHostPort(host, port), nil
}

// Result says what a check did. It is filled in as far as the check got,
// also when it fails.
type Result struct {
	// Status is one of "installed", "up-to-date", "deferred", "refused"
	// (a check failed: nothing installed, the reason is in Err) or
	// "failed" (no mirror answered, or a local error).
	Status        string            `json:"status"`
	Reason        string            `json:"reason,omitempty"`
	Now           time.Time         `json:"now"`
	Sequence      uint64            `json:"sequence,omitempty"`
	Release       *manifest.Release `json:"release,omitempty"`
	DeferredUntil time.Time         `json:"deferred_until,omitzero"`
	Image         string            `json:"image,omitempty"`
	// BytesReceived counts every byte read from the network.
	BytesReceived int64 `json:"bytes_received"`
}

const (
	StatusInstalled = "installed"
	StatusUpToDate  = "up-to-date"
	StatusDeferred  = "deferred"
	StatusRefused   = "refused"
	StatusFailed    = "failed"
)

// IsRefusal reports whether err is a verdict: something was checked and
// did not pass (what a mirror served, free RAM, sysupgrade --test), as
// opposed to a network or local failure.
func IsRefusal(err error) bool {
	for _, s := range []error{
		manifest.ErrTooLarge, manifest.ErrMalformed, manifest.ErrThreshold, manifest.ErrExpired,
		manifest.ErrReplay, manifest.ErrRollback, manifest.ErrWrongBoard, manifest.ErrBadSchema, ErrWrongChannel,
		ErrTooLarge, ErrHashMismatch, ErrNoMemory, ErrSysupgrade,
		imagesig.ErrUnsigned, imagesig.ErrWrongBoard, imagesig.ErrNoMetadata,
		usign.ErrBadSignature, usign.ErrUnknownKey, usign.ErrMalformed,
	} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// Check runs one update check. It returns a nil error for "installed",
// "up-to-date" and "deferred". Every refusal is logged once, here, with
// its reason; the caller only maps the error to an exit code.
func (u *Updater) Check(ctx context.Context) (*Result, error) {
	res := &Result{}
	dir, err := privateDir(u.cfg.DownloadDir, u.log)
	if err != nil {
		res.Status, res.Reason = StatusFailed, err.Error()
		u.log.Error("update check not started", "err", err)
		return res, err
	}
	unlock, err := lockDir(dir)
	if err != nil {
		res.Status, res.Reason = StatusFailed, err.Error()
		u.log.Error("update check not started", "err", err)
		return res, err
	}
	defer unlock()
	st, note, err := LoadState(u.cfg.StatePath)
	if err != nil {
		res.Status, res.Reason = StatusFailed, err.Error()
		u.log.Error("update check not started", "err", err)
		return res, err
	}
	if note != "" {
		u.log.Warn(note)
	}
	err = u.check(ctx, st, res)
	switch {
	case err == nil:
		u.log.Info("update check done", "status", res.Status, "reason", res.Reason, "bytes", res.BytesReceived)
	case IsRefusal(err):
		res.Status, res.Reason = StatusRefused, err.Error()
		u.log.Warn("update refused; nothing installed", "reason", err, "bytes", res.BytesReceived)
	default:
		res.Status, res.Reason = StatusFailed, err.Error()
		u.log.Error("update check failed; nothing installed", "err", err, "bytes", res.BytesReceived)
	}
	st.LastCheck, st.LastResult, st.LastError = res.Now, res.Status, ""
	if err != nil {
		st.LastError = err.Error()
	}
	if serr := SaveState(u.cfg.StatePath, st); serr != nil {
		u.log.Error("saving state", "err", serr)
		if err == nil {
			err = serr
		}
	}
	return res, err
}

// checkBoard fails closed on an unknown board: without one, the image's
// board could not be checked (imagesig skips an empty board), so nothing
// may be installed at all.
func checkBoard(board string) error {
	if strings.TrimSpace(board) == "" {
		return fmt.Errorf("%w: board name unknown (empty); refusing to install anything without checking the image is for this board: set \"board\" in the config, or make board_file (/tmp/sysinfo/board_name) name it", ErrConfiguration)
	}
	return nil
}

// EffectiveNow is the latest of the system clock, Tor's consensus time
// and the last accepted manifest's issued_at. The router has no RTC and
// boots with a clock in the past; each source is a lower bound on the real
// time, so the maximum is the best lower bound. Expiry is judged against
// it, so a stale manifest cannot look fresh because the clock is behind.
func (u *Updater) EffectiveNow(ctx context.Context, st *State) time.Time {
	now := u.cfg.Clock().UTC().Truncate(time.Second)
	src := "clock"
	if u.cfg.TorTime != nil {
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		t, err := u.cfg.TorTime(tctx)
		cancel()
		if err != nil {
			u.log.Debug("no consensus time from tor", "err", err)
		} else if t.After(now) {
			now, src = t.UTC(), "tor consensus valid-after"
		}
	}
	if st.Manifest.IssuedAt.After(now) {
		now, src = st.Manifest.IssuedAt.UTC(), "last manifest issued_at"
	}
	u.log.Debug("effective time", "now", now.Format(time.RFC3339), "source", src)
	return now
}

func (u *Updater) check(ctx context.Context, st *State, res *Result) error {
	res.Now = u.EffectiveNow(ctx, st)
	if err := checkBoard(u.cfg.Board); err != nil {
		return err
	}
	g, err := u.getter()
	if err != nil {
		return err
	}
	defer func() { res.BytesReceived = g.received }()

	v, err := u.fetchManifest(ctx, g, res.Now, st)
	if err != nil {
		return err
	}
	m := v.Manifest
	res.Sequence = m.Sequence
	u.log.Info("manifest accepted", "channel", m.Channel, "sequence", m.Sequence,
		"issued_at", m.IssuedAt.Format(time.RFC3339), "not_after", m.NotAfter.Format(time.RFC3339), "keys", strings.Join(v.Keys, ","))
	for _, why := range v.Ignored {
		u.log.Warn("manifest signature not counted", "why", why)
	}
	// Accepting the manifest moves the replay floor even when nothing is
	// installed: an older manifest is refused from now on.
	st.Manifest = st.Manifest.Next(v)
	if f := manifest.Floor(m, u.cfg.Board); f > st.Floor {
		st.Floor = f
	}
	if err := SaveState(u.cfg.StatePath, st); err != nil {
		return err
	}

	installed, installedVersion := u.cfg.InstalledBuild, u.cfg.InstalledVersion
	if installed == 0 {
		installed, installedVersion = st.InstalledBuild, st.InstalledVersion
	}
	rel, err := manifest.Select(m, u.cfg.Board, installed)
	if errors.Is(err, manifest.ErrUpToDate) {
		res.Status, res.Reason = StatusUpToDate, fmt.Sprintf("build %d (%s) is the newest", installed, installedVersion)
		st.Pending = nil
		u.cleanDownloads("")
		return nil
	}
	if err != nil {
		u.cleanDownloads("")
		return err
	}
	res.Release = rel
	if rel.Build < st.Floor {
		u.cleanDownloads("")
		return fmt.Errorf("%w: build %d is below the floor %d this router has seen", manifest.ErrRollback, rel.Build, st.Floor)
	}

	if st.Pending == nil || st.Pending.Build != rel.Build {
		st.Pending = &Pending{Build: rel.Build, Version: rel.Version, FirstSeen: res.Now}
	}
	delay := rel.Rollout.Delay(rolloutFraction(st.Seed, rel))
	st.Pending.Until = st.Pending.FirstSeen.Add(delay)
	u.cleanDownloads(u.partialPath(rel))
	if !u.cfg.IgnoreRollout && res.Now.Before(st.Pending.Until) {
		res.Status, res.DeferredUntil = StatusDeferred, st.Pending.Until
		res.Reason = fmt.Sprintf("build %d (%s) is rolled out in stages; this router installs it after %s",
			rel.Build, rel.Version, st.Pending.Until.Format(time.RFC3339))
		return nil
	}

	if err := u.checkRAM(rel); err != nil {
		return err
	}
	path, err := u.download(ctx, g, rel)
	if err != nil {
		return err
	}
	final, err := u.verifyImage(path, rel)
	if err != nil {
		return err
	}
	res.Image = final
	return u.install(ctx, st, res, rel, final, v.Envelope)
}

// getter makes the HTTP client for one check. Each check uses fresh SOCKS
// credentials: Tor's IsolateSOCKSAuth then gives it a circuit of its own,
// so checks cannot be linked to each other or to other traffic.
func (u *Updater) getter() (*getter, error) {
	pw := make([]byte, 8)
	if _, err := rand.Read(pw); err != nil {
		return nil, err
	}
	d, err := proxy.SOCKS5("tcp", u.cfg.SOCKSAddr, &proxy.Auth{User: "torwrt-update", Password: hex.EncodeToString(pw)}, proxy.Direct)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfiguration, err)
	}
	cd, ok := d.(proxy.ContextDialer)
	if !ok {
		return nil, fmt.Errorf("%w: socks dialer cannot be cancelled", ErrConfiguration)
	}
	return &getter{dial: cd.DialContext, stall: u.cfg.StallTimeout, wrapTLS: u.tlsWrap}, nil
}

// fetchManifest tries each mirror in order and returns the first manifest
// that passes every check. A mirror that serves something bad does not
// stop the others; if none succeeds, every mirror's reason is returned.
func (u *Updater) fetchManifest(ctx context.Context, g *getter, now time.Time, st *State) (*manifest.Verified, error) {
	var errs []error
	for _, base := range u.cfg.Mirrors {
		url := fileURL(base, u.cfg.ManifestName)
		b, err := u.fetchSmall(ctx, g, url, manifest.MaxSize)
		if err == nil {
			var v *manifest.Verified
			v, err = manifest.Check(b, u.cfg.Keys, u.cfg.Threshold, now, st.Manifest)
			if err == nil {
				err = u.checkChannel(v.Manifest)
			}
			if err == nil {
				return v, nil
			}
		}
		u.log.Warn("mirror manifest not used", "url", url, "reason", err)
		errs = append(errs, fmt.Errorf("%s: %w", url, err))
	}
	return nil, joinMirrorErrors(errs)
}

// checkChannel refuses a signed manifest of another release channel. It
// runs after the signatures and before the manifest is accepted, so a
// manifest of another channel (whose sequence numbers are its own) never
// moves this router's replay floor. A manifest without a channel never gets
// here: manifest.Check refuses an empty channel as malformed.
func (u *Updater) checkChannel(m *manifest.Manifest) error {
	if m.Channel != u.cfg.Channel {
		return fmt.Errorf("%w: the manifest (sequence %d) is for channel %q, this router follows channel %q; nothing downloaded or installed",
			ErrWrongChannel, m.Sequence, m.Channel, u.cfg.Channel)
	}
	return nil
}

func joinMirrorErrors(errs []error) error {
	err := errors.Join(errs...)
	for _, e := range errs {
		if IsRefusal(e) {
			return err
		}
	}
	return fmt.Errorf("%w: %w", ErrMirrors, err)
}

// fetchSmall GETs a whole small file, refusing the moment it exceeds max.
func (u *Updater) fetchSmall(ctx context.Context, g *getter, url string, max int64) ([]byte, error) {
	deadline := time.Now().Add(u.cfg.RequestTimeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	resp, err := g.get(ctx, url, 0, deadline)
	if err != nil {
		return nil, err
	}
	defer resp.Close()
	if resp.status != 200 {
		return nil, fmt.Errorf("http status %d", resp.status)
	}
	if resp.length > max {
		return nil, fmt.Errorf("%w: %w: content-length %d, limit %d", manifest.ErrTooLarge, ErrTooLarge, resp.length, max)
	}
	b, err := io.ReadAll(io.LimitReader(resp.body, max+1))
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: %w: more than %d bytes; stopped reading", manifest.ErrTooLarge, ErrTooLarge, max)
	}
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("reading: %w", timeoutErr(err))
	}
	return b, nil
}

// dir is the updater's private directory (see privateDir), which Check
// has made sure of before anything else.
func (u *Updater) dir() string {
	return filepath.Join(u.cfg.DownloadDir, PrivateDirName)
}

// partialPath names the download by its expected hash, so a resumed
// download can only ever continue the same image, and only one in the
// private directory.
func (u *Updater) partialPath(rel *manifest.Release) string {
	return filepath.Join(u.dir(), "torwrt-"+rel.SHA256+".unverified")
}

func (u *Updater) finalPath(rel *manifest.Release) string {
	return filepath.Join(u.dir(), "torwrt-update-"+rel.Image)
}

// cleanDownloads removes leftovers: partial downloads of other releases
// and verified images that were never flashed. keep is the partial
// download of the release being installed, or "".
func (u *Updater) cleanDownloads(keep string) {
	for _, pat := range []string{"torwrt-*.unverified", "torwrt-update-*"} {
		matches, _ := filepath.Glob(filepath.Join(u.dir(), pat))
		for _, m := range matches {
			if m != keep {
				u.log.Debug("removing stale download", "path", m)
				os.Remove(m)
			}
		}
	}
}

// checkRAM refuses a download that would not fit in RAM: the image lands
// in tmpfs, and sysupgrade needs room too. A partial download already in
// /tmp is already counted in MemAvailable.
func (u *Updater) checkRAM(rel *manifest.Release) error {
	avail, err := MemAvailable(u.cfg.MemInfoPath)
	if err != nil {
		return err
	}
	var have int64
	if fi, err := os.Lstat(u.partialPath(rel)); err == nil && fi.Mode().IsRegular() {
		have = fi.Size()
	}
	need := rel.Size - have + u.cfg.RAMMargin
	if avail < need {
		return fmt.Errorf("%w: image needs %d more bytes plus a %d byte margin, %d available", ErrNoMemory, rel.Size-have, u.cfg.RAMMargin, avail)
	}
	return nil
}

// download fetches the image into its .unverified file, resuming with
// Range where a previous attempt stopped, hashing as it streams. It
// returns the path of a file of exactly rel.Size bytes with rel.SHA256.
func (u *Updater) download(ctx context.Context, g *getter, rel *manifest.Release) (string, error) {
	path := u.partialPath(rel)
	limit := u.downloadLimit(rel)
	var errs []error
	for _, base := range u.cfg.Mirrors {
		// Mirrors publish dist/ as built: <mirror>/<profile>/<image>.
		url := fileURL(base, rel.Profile+"/"+rel.Image)
		restarted := false
		var last error
		// One deadline for all attempts at this mirror: a mirror that
		// sends a byte now and then, just often enough to beat the stall
		// timeout, must not hold the update back for ever.
		mctx, cancel := context.WithTimeout(ctx, limit)
		for attempt := 1; attempt <= u.cfg.Attempts; attempt++ {
			progressed, resumed, err := u.downloadOnce(mctx, g, url, path, rel)
			if err == nil {
				cancel()
				return path, nil
			}
			if ctx.Err() != nil {
				cancel()
				return "", err
			}
			if mctx.Err() != nil {
				last = fmt.Errorf("%w: no complete image within %v (%v plus %d bytes at %d bytes/s); trying the next mirror: %w",
					ErrTimeout, limit, u.cfg.DownloadBase, rel.Size, u.cfg.MinRate, err)
				u.log.Warn("image download too slow; mirror abandoned", "url", url, "limit", limit, "reason", err)
				break
			}
			last = err
			u.log.Warn("image download attempt failed", "url", url, "attempt", attempt, "reason", err)
			if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrHashMismatch) {
				os.Remove(path)
				// A resumed download may have continued a prefix that
				// another mirror (or an earlier check) got wrong: try
				// this mirror once more from byte 0 before judging it.
				if errors.Is(err, ErrHashMismatch) && resumed && !restarted {
					restarted = true
					continue
				}
				break
			}
			if !progressed {
				break
			}
		}
		cancel()
		errs = append(errs, fmt.Errorf("%s: %w", url, last))
	}
	return "", joinMirrorErrors(errs)
}

// downloadLimit is how long one mirror may take for rel's image.
func (u *Updater) downloadLimit(rel *manifest.Release) time.Duration {
	perByte := float64(time.Second) / float64(u.cfg.MinRate)
	return u.cfg.DownloadBase + time.Duration(float64(rel.Size)*perByte)
}

// downloadOnce makes one request. progressed reports whether the file
// grew, which makes another (resumed) attempt worthwhile; resumed whether
// it continued bytes already on disk.
func (u *Updater) downloadOnce(ctx context.Context, g *getter, url, path string, rel *manifest.Release) (progressed, resumed bool, err error) {
	f, err := openPartial(path)
	if err != nil {
		return false, false, err
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return false, false, err
	}
	if have > rel.Size {
		if err := truncate(f, 0); err != nil {
			return false, false, err
		}
		have = 0
	}
	resumed = have > 0
	if have < rel.Size {
		resp, err := g.get(ctx, url, have, time.Now().Add(u.cfg.RequestTimeout))
		if err != nil {
			return false, false, err
		}
		defer resp.Close()
		switch {
		case resp.status == 206 && have > 0:
			if resp.rangeStart != have || resp.rangeTotal >= 0 && resp.rangeTotal != rel.Size {
				return false, false, fmt.Errorf("server resumed at byte %d of %d, asked for %d of %d", resp.rangeStart, resp.rangeTotal, have, rel.Size)
			}
			u.log.Info("resuming image download", "url", url, "from", have)
		case resp.status == 200:
			if have > 0 {
				u.log.Info("server ignored the range request; starting over", "url", url)
				if err := truncate(f, 0); err != nil {
					return false, false, err
				}
				have, resumed = 0, false
			}
		case resp.status == 416:
			truncate(f, 0)
			return true, false, fmt.Errorf("server refused range from byte %d; starting over", have)
		default:
			return false, false, fmt.Errorf("http status %d", resp.status)
		}
		if resp.length >= 0 && have+resp.length > rel.Size {
			return false, false, fmt.Errorf("%w: server announces %d bytes from offset %d, manifest says the image is %d", ErrTooLarge, resp.length, have, rel.Size)
		}
		// Read at most one byte more than the manifest allows: that byte
		// proves the server sent too much, and nothing after it is read.
		left := rel.Size - have
		n, cerr := io.Copy(f, io.LimitReader(resp.body, left+1))
		if n > 0 {
			progressed = true
		}
		if n > left {
			return progressed, resumed, fmt.Errorf("%w: server sent more than the %d bytes the manifest lists; stopped reading", ErrTooLarge, rel.Size)
		}
		have += n
		if cerr != nil && ctx.Err() != nil {
			cerr = ctx.Err() // the socket error only says the deadline moved
		}
		if cerr != nil {
			return progressed, resumed, fmt.Errorf("download stopped at byte %d of %d: %w", have, rel.Size, timeoutErr(cerr))
		}
		if have < rel.Size {
			return progressed, resumed, fmt.Errorf("download ended at byte %d of %d", have, rel.Size)
		}
	}
	// Hash the whole file: the prefix from an earlier attempt and the
	// bytes just streamed. Reading back from tmpfs costs no extra RAM.
	h := sha256.New()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return progressed, resumed, err
	}
	n, err := io.Copy(h, f)
	if err != nil {
		return progressed, resumed, fmt.Errorf("hashing %s: %w", path, err)
	}
	if n != rel.Size {
		return progressed, resumed, fmt.Errorf("%w: %d bytes on disk, manifest says %d", ErrHashMismatch, n, rel.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != rel.SHA256 {
		return progressed, resumed, fmt.Errorf("%w: sha256 %s, manifest says %s", ErrHashMismatch, got, rel.SHA256)
	}
	return progressed, resumed, nil
}

func truncate(f *os.File, n int64) error {
	if err := f.Truncate(n); err != nil {
		return err
	}
	_, err := f.Seek(n, io.SeekStart)
	return err
}

// verifyImage checks the image's own signature chunk and board, exactly
// as `verify image` does, and only then gives it its final name.
func (u *Updater) verifyImage(path string, rel *manifest.Release) (string, error) {
	if err := checkBoard(u.cfg.Board); err != nil {
		os.Remove(path)
		return "", err
	}
	res, err := imagesig.VerifyFile(path, u.cfg.Keys, imagesig.Options{Board: u.cfg.Board})
	if err != nil {
		os.Remove(path)
		return "", fmt.Errorf("image %s: %w", rel.Image, err)
	}
	u.log.Info("image verified", "image", rel.Image, "key", res.Key, "version", res.Metadata.Version.Version, "sha256", res.SHA256)
	final := u.finalPath(rel)
	if err := os.Rename(path, final); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("renaming verified image: %w", err)
	}
	return final, nil
}

// install runs `sysupgrade --test FILE`, records the new build, and runs
// `sysupgrade FILE`. Both are argv exec, never a shell. With an Installer
// the same happens behind it (installVia).
func (u *Updater) install(ctx context.Context, st *State, res *Result, rel *manifest.Release, file string, envelope []byte) error {
	if err := recheck(file, rel); err != nil {
		os.Remove(file)
		return err
	}
	if u.cfg.Installer != nil {
		return u.installVia(ctx, st, res, rel, file, envelope)
	}
	if out, err := u.run(ctx, u.cfg.Sysupgrade, "--test", file); err != nil {
		os.Remove(file)
		return fmt.Errorf("%w: sysupgrade --test: %v%s", ErrSysupgrade, err, out)
	}
	prevBuild, prevVersion, prevInstall := st.InstalledBuild, st.InstalledVersion, st.LastInstall
	st.InstalledBuild, st.InstalledVersion, st.LastInstall, st.Pending = rel.Build, rel.Version, res.Now, nil
	// The state goes to disk before flashing: sysupgrade reboots the
	// router and does not come back to tell us it worked.
	if err := SaveState(u.cfg.StatePath, st); err != nil {
		os.Remove(file)
		return err
	}
	if err := recheck(file, rel); err != nil {
		st.InstalledBuild, st.InstalledVersion, st.LastInstall = prevBuild, prevVersion, prevInstall
		os.Remove(file)
		return err
	}
	u.log.Info("flashing", "image", file, "version", rel.Version, "build", rel.Build)
	// Once flashing has started, a cancelled context must not kill it.
	if out, err := u.run(context.WithoutCancel(ctx), u.cfg.Sysupgrade, file); err != nil {
		st.InstalledBuild, st.InstalledVersion, st.LastInstall = prevBuild, prevVersion, prevInstall
		os.Remove(file)
		return fmt.Errorf("%w: sysupgrade: %v%s", ErrSysupgrade, err, out)
	}
	res.Status = StatusInstalled
	res.Reason = fmt.Sprintf("installed build %d (%s); the router reboots", rel.Build, rel.Version)
	return nil
}

func (u *Updater) run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var out tailBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 10 * time.Second
	u.log.Debug("running", "argv", append([]string{name}, args...))
	err := cmd.Run()
	if err != nil && out.Len() > 0 {
		return "; output: " + strings.TrimSpace(out.String()), err
	}
	return "", err
}

// tailBuffer keeps the last 4 KiB a command wrote.
type tailBuffer struct{ bytes.Buffer }

func (t *tailBuffer) Write(p []byte) (int, error) {
	n, _ := t.Buffer.Write(p)
	if t.Len() > 4096 {
		b := t.Bytes()[t.Len()-4096:]
		t.Reset()
		t.Buffer.Write(b)
	}
	return n, nil
}

// lockDir takes an exclusive lock so that only one check (daemon or a
// manual `verify check`) downloads and flashes at a time. dir is the
// private directory, so no other user can hold (or plant) the lock file;
// it is opened without following a symlink and must be ours.
func lockDir(dir string) (func(), error) {
	p := filepath.Join(dir, lockName)
	f, err := openPrivate(p, os.O_RDWR|os.O_CREATE)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (lock %s)", ErrBusy, p)
		}
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return func() { f.Close() }, nil
}

// MemAvailable reads MemAvailable from a /proc/meminfo-format file.
func MemAvailable(path string) (int64, error) {
	b, err := readLimited(path, 64<<10)
	if err != nil {
		return 0, fmt.Errorf("reading free memory: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "MemAvailable:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			break
		}
		kb, err := parseDecimal(f[0])
		if err != nil {
			break
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("reading free memory: no MemAvailable line in %s", path)
}
