package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/torwrt/torwrt/internal/status"
	"github.com/torwrt/torwrt/internal/torctl"
	"github.com/torwrt/torwrt/internal/updater"
	"github.com/torwrt/torwrt/internal/usign"
)

func init() {
	extraCommands["daemon"] = runDaemon
	extraCommands["check"] = runCheck
}

const defaultConfigPath = "/etc/torwrt/verify.json"

// daemonConfig is /etc/torwrt/verify.json. Unknown keys are an error, so a
// typo cannot silently switch a check off.
type daemonConfig struct {
	Mirrors      []string `json:"mirrors"`
	ManifestName string   `json:"manifest_name,omitempty"`
	KeysDir      string   `json:"keys_dir"`
	Threshold    int      `json:"threshold"`
	// Board overrides BoardFile (/tmp/sysinfo/board_name).
	Board     string `json:"board,omitempty"`
	BoardFile string `json:"board_file,omitempty"`
	// SOCKS is Tor's SocksPort (ip:port); Control its ControlPort
	// (ip:port or unix:/path) and Cookie its cookie file.
	SOCKS   string `json:"socks"`
	Control string `json:"control,omitempty"`
	Cookie  string `json:"cookie,omitempty"`
	// State is kept across reboots and upgrades (list it in
	// /lib/upgrade/keep.d); DownloadDir is tmpfs.
	State       string `json:"state"`
	DownloadDir string `json:"download_dir,omitempty"`
	Sysupgrade  string `json:"sysupgrade,omitempty"`
	MemInfo     string `json:"meminfo,omitempty"`
	RAMMargin   int64  `json:"ram_margin,omitempty"`
	// ReleaseFile describes the running firmware: {"product","version","build"}.
	ReleaseFile string `json:"release_file,omitempty"`

	Interval       duration `json:"interval,omitempty"`
	FirstCheck     duration `json:"first_check,omitempty"`
	TorPoll        duration `json:"tor_poll,omitempty"`
	RequestTimeout duration `json:"request_timeout,omitempty"`
	StallTimeout   duration `json:"stall_timeout,omitempty"`

	// Listen are the status page addresses, e.g. the LAN addresses on :80.
	Listen   []string        `json:"listen,omitempty"`
	Networks []networkConfig `json:"networks,omitempty"`
	Brand    *status.Brand   `json:"brand,omitempty"`
	LogoFile string          `json:"logo_file,omitempty"`
}

type networkConfig struct {
	Name     string   `json:"name"`
	Prefixes []string `json:"prefixes"`
}

// duration reads "6h", "90s" and the like.
type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string like \"6h\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("duration %q: want a positive Go duration like \"6h\" or \"90s\"", s)
	}
	*d = duration(v)
	return nil
}

func (d duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d duration) or(def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return time.Duration(d)
}

// release is the running firmware's release file.
type release struct {
	Product string `json:"product"`
	Version string `json:"version"`
	Build   uint64 `json:"build"`
}

func loadConfig(path string) (*daemonConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 256<<10))
	if err != nil {
		return nil, fmt.Errorf("reading config %s: %w", path, err)
	}
	cfg := &daemonConfig{}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&cfg.KeysDir, "/etc/opkg/keys")
	def(&cfg.BoardFile, "/tmp/sysinfo/board_name")
	def(&cfg.State, "/etc/torwrt/verify-state.json")
	def(&cfg.ReleaseFile, "/etc/torwrt/release.json")
	if cfg.Threshold == 0 {
		cfg.Threshold = 1
	}
	if len(cfg.Mirrors) == 0 {
		return nil, fmt.Errorf("config %s: mirrors: at least one mirror URL is required", path)
	}
	if cfg.SOCKS == "" {
		return nil, fmt.Errorf("config %s: socks: Tor's SocksPort (e.g. \"127.0.0.1:9050\") is required; updates are only fetched through Tor", path)
	}
	return cfg, nil
}

func (c *daemonConfig) board() (string, error) {
	if c.Board != "" {
		return c.Board, nil
	}
	b, err := os.ReadFile(c.BoardFile)
	if err != nil {
		return "", fmt.Errorf("board name: %w (set \"board\" in the config)", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("board name: %s is empty", c.BoardFile)
	}
	return s, nil
}

func (c *daemonConfig) release() release {
	var r release
	if b, err := os.ReadFile(c.ReleaseFile); err == nil {
		json.Unmarshal(b, &r)
	}
	return r
}

func (c *daemonConfig) networks() ([]status.Network, error) {
	var out []status.Network
	for _, n := range c.Networks {
		sn := status.Network{Name: n.Name}
		for _, p := range n.Prefixes {
			pfx, err := netip.ParsePrefix(p)
			if err != nil {
				return nil, fmt.Errorf("networks %s: %w", n.Name, err)
			}
			sn.Prefixes = append(sn.Prefixes, pfx.Masked())
		}
		out = append(out, sn)
	}
	return out, nil
}

func (c *daemonConfig) page() (*status.Page, error) {
	nets, err := c.networks()
	if err != nil {
		return nil, err
	}
	b := status.Brand{}
	if c.Brand != nil {
		b = *c.Brand
	}
	if c.LogoFile != "" {
		logo, err := os.ReadFile(c.LogoFile)
		if err != nil {
			return nil, fmt.Errorf("logo: %w", err)
		}
		b.Logo = logo
	}
	return status.NewPage(b, nets), nil
}

// updaterConfig turns the file config into an updater.Config.
func (c *daemonConfig) updaterConfig(log *slog.Logger, torTime func(context.Context) (time.Time, error)) (updater.Config, error) {
	kr, err := usign.LoadKeyDir(c.KeysDir)
	if err != nil {
		return updater.Config{}, err
	}
	board, err := c.board()
	if err != nil {
		return updater.Config{}, err
	}
	rel := c.release()
	return updater.Config{
		Mirrors: c.Mirrors, ManifestName: c.ManifestName, Keys: kr, Threshold: c.Threshold, Board: board,
		SOCKSAddr: c.SOCKS, DownloadDir: c.DownloadDir, StatePath: c.State, Sysupgrade: c.Sysupgrade,
		MemInfoPath: c.MemInfo, RAMMargin: c.RAMMargin,
		RequestTimeout: time.Duration(c.RequestTimeout), StallTimeout: time.Duration(c.StallTimeout),
		InstalledBuild: rel.Build, InstalledVersion: rel.Version,
		TorTime: torTime, Logger: log,
	}, nil
}

// torTime asks Tor for its consensus time on a fresh connection.
func (c *daemonConfig) torTime(ctx context.Context) (time.Time, error) {
	if c.Control == "" {
		return time.Time{}, errors.New("no control port configured")
	}
	conn, err := torctl.Dial(ctx, c.Control)
	if err != nil {
		return time.Time{}, err
	}
	defer conn.Close()
	if err := conn.Authenticate(ctx, c.Cookie); err != nil {
		return time.Time{}, err
	}
	return conn.ConsensusValidAfter(ctx)
}

// torStatus reads Tor's state for the status page; an unreachable control
// port is "down".
func (c *daemonConfig) torStatus(ctx context.Context) (status.Tor, *torctl.Status) {
	if c.Control == "" {
		return status.Tor{State: status.TorDown, Error: "no control port configured"}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := torctl.Dial(ctx, c.Control)
	if err != nil {
		return status.Tor{State: status.TorDown, Error: err.Error()}, nil
	}
	defer conn.Close()
	if err := conn.Authenticate(ctx, c.Cookie); err != nil {
		return status.Tor{State: status.TorDown, Error: err.Error()}, nil
	}
	st, err := conn.Status(ctx)
	if err != nil {
		return status.Tor{State: status.TorDown, Error: err.Error()}, nil
	}
	t := status.Tor{
		State: status.TorStarting, Progress: st.Bootstrap.Progress, Tag: st.Bootstrap.Tag,
		Summary: st.Bootstrap.Summary, Warning: st.Bootstrap.Warning, Version: st.Version,
		Recommendation: string(st.VersionStatus), ValidAfter: st.ValidAfter,
	}
	if st.Bootstrap.Done() {
		t.State = status.TorUp
	}
	return t, st
}

func updateSnapshot(st *updater.State) status.Update {
	u := status.Update{LastCheck: st.LastCheck, LastResult: st.LastResult, LastError: st.LastError}
	if st.Pending != nil {
		u.Pending = fmt.Sprintf("%s (build %d)", st.Pending.Version, st.Pending.Build)
		u.DeferredUntil = st.Pending.Until
	}
	return u
}

func (c *daemonConfig) firmware() status.Firmware {
	r := c.release()
	b, _ := c.board()
	return status.Firmware{Product: r.Product, Version: r.Version, Build: r.Build, Board: b}
}

func newLogger(w io.Writer, debug bool) *slog.Logger {
	lvl := slog.LevelInfo
	if debug {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl}))
}

// runCheck is `verify check --once`: one update check, for tests and for
// an owner who wants an update now.
func runCheck(ctx context.Context, stdout, stderr io.Writer, args []string) int {
	fs := flag.NewFlagSet("verify check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", defaultConfigPath, "config file")
	fs.Bool("once", true, "run one check and exit (the only mode; `verify daemon` repeats)")
	now := fs.Bool("ignore-rollout", false, "install at once instead of waiting for this router's turn in a staged rollout")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	debug := fs.Bool("debug", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	log := newLogger(stderr, *debug)
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "verify check: %v\n", err)
		return exitUsage
	}
	ucfg, err := cfg.updaterConfig(log, cfg.torTime)
	if err != nil {
		fmt.Fprintf(stderr, "verify check: %v\n", err)
		return exitFailure
	}
	ucfg.IgnoreRollout = *now
	u, err := updater.New(ucfg)
	if err != nil {
		fmt.Fprintf(stderr, "verify check: %v\n", err)
		return exitUsage
	}
	// The updater has logged the reason; stdout carries the result only.
	res, err := u.Check(ctx)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	} else {
		fmt.Fprintf(stdout, "%s: %s\n", res.Status, res.Reason)
	}
	return exitCodeForUpdate(err)
}

// daemon is the running service: periodic checks, Tor watching, and the
// status page.
type daemon struct {
	cfg  *daemonConfig
	log  *slog.Logger
	page *status.Page
	u    *updater.Updater

	mu   sync.Mutex
	snap status.Snapshot
	// validAfter is the last consensus time Tor reported.
	validAfter time.Time
}

func runDaemon(ctx context.Context, stdout, stderr io.Writer, args []string) int {
	fs := flag.NewFlagSet("verify daemon", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", defaultConfigPath, "config file")
	debug := fs.Bool("debug", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	log := newLogger(stderr, *debug)
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		log.Error("not starting", "err", err)
		return exitUsage
	}
	d := &daemon{cfg: cfg, log: log}
	if d.page, err = cfg.page(); err != nil {
		log.Error("not starting", "err", err)
		return exitUsage
	}
	ucfg, err := cfg.updaterConfig(log, d.torTime)
	if err != nil {
		log.Error("not starting", "err", err)
		return exitFailure
	}
	if d.u, err = updater.New(ucfg); err != nil {
		log.Error("not starting", "err", err)
		return exitUsage
	}
	d.refreshUpdate()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(cfg.Listen)+1)
	var wg sync.WaitGroup
	for _, addr := range cfg.Listen {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			log.Error("status page not served", "addr", addr, "err", err)
			return exitFailure
		}
		log.Info("status page", "url", "http://"+ln.Addr().String()+"/torbox")
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.page.Serve(ctx, ln, d.snapshot); err != nil {
				errc <- err
			}
		}()
	}
	trigger := make(chan string, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.watchTor(ctx, trigger)
	}()
	d.checkLoop(ctx, trigger, errc)
	cancel()
	wg.Wait()
	select {
	case err := <-errc:
		log.Error("stopping", "err", err)
		return exitFailure
	default:
	}
	return exitOK
}

func (d *daemon) snapshot() status.Snapshot {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.snap
	s.Time = time.Now().UTC()
	return s
}

func (d *daemon) torTime(context.Context) (time.Time, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.validAfter.IsZero() {
		return time.Time{}, torctl.ErrUnavailable
	}
	return d.validAfter, nil
}

// refreshUpdate reloads the updater's part of the snapshot from the
// state file, the single source of truth for it.
func (d *daemon) refreshUpdate() {
	st, err := updater.ReadState(d.cfg.State)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.snap.Firmware = d.cfg.firmware()
	if err == nil {
		d.snap.Update = updateSnapshot(st)
	}
}

// watchTor polls the control port. When Tor says its version is obsolete
// or unrecommended it asks for a check at once (at most hourly).
func (d *daemon) watchTor(ctx context.Context, trigger chan<- string) {
	poll := d.cfg.TorPoll.or(30 * time.Second)
	var lastTrigger time.Time
	for {
		t, st := d.cfg.torStatus(ctx)
		d.mu.Lock()
		was := d.snap.Tor.State
		d.snap.Tor = t
		if !t.ValidAfter.IsZero() {
			d.validAfter = t.ValidAfter
		}
		d.mu.Unlock()
		if was != t.State {
			d.log.Info("tor state", "state", t.State, "progress", t.Progress, "version", t.Version, "recommendation", t.Recommendation, "err", t.Error)
		}
		if st != nil && st.VersionStatus.NeedsUpdate() && time.Since(lastTrigger) > time.Hour {
			lastTrigger = time.Now()
			select {
			case trigger <- "tor reports its version " + string(st.VersionStatus):
			default:
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(poll):
		}
	}
}

func (d *daemon) checkLoop(ctx context.Context, trigger <-chan string, errc <-chan error) {
	interval := d.cfg.Interval.or(6 * time.Hour)
	next := time.Now().Add(d.cfg.FirstCheck.or(3 * time.Minute))
	d.setNext(next)
	for {
		wait := time.Until(next)
		why := ""
		select {
		case <-ctx.Done():
			return
		case err := <-errc:
			// A status listener died; let procd restart the service.
			d.log.Error("status page stopped", "err", err)
			return
		case why = <-trigger:
		case <-time.After(wait):
			why = "scheduled"
		}
		d.mu.Lock()
		torState := d.snap.Tor.State
		d.mu.Unlock()
		if torState != status.TorUp && d.cfg.Control != "" {
			// Fetching needs a bootstrapped Tor; try again soon.
			d.log.Info("update check postponed until tor is up", "tor", torState)
			next = time.Now().Add(time.Minute)
			d.setNext(next)
			continue
		}
		d.log.Info("update check", "why", why)
		d.u.Check(ctx) // logs its own result and records it in the state
		// ±10% jitter so routers do not all ask at the same moment.
		j := time.Duration(rand.Int64N(int64(interval)/5+1)) - interval/10
		next = time.Now().Add(interval + j)
		d.setNext(next)
	}
}

// setNext refreshes the snapshot with the next check time. It is kept in
// memory only: the state file belongs to the updater, which writes it
// under its lock.
func (d *daemon) setNext(t time.Time) {
	d.refreshUpdate()
	d.mu.Lock()
	d.snap.Update.NextCheck = t.UTC().Truncate(time.Second)
	d.mu.Unlock()
}
