package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/torwrt/torwrt/internal/cliout"
	"github.com/torwrt/torwrt/internal/manifest"
	"github.com/torwrt/torwrt/internal/routerconf"
	"github.com/torwrt/torwrt/internal/setup"
	"github.com/torwrt/torwrt/internal/status"
	"github.com/torwrt/torwrt/internal/torctl"
	"github.com/torwrt/torwrt/internal/updater"
	"github.com/torwrt/torwrt/internal/usign"
)

func init() {
	extraCommands["daemon"] = runDaemon
	extraCommands["check"] = runCheck
}

const defaultConfigPath = routerconf.Path

// config is /etc/torwrt/verify.json (routerconf.Config: the schema the
// overlay renders), with the daemon's helpers.
type config struct {
	routerconf.Config
}

// loadConfig reads, defaults and validates the config. Unknown keys and
// every invalid field are errors, so a typo cannot silently switch a
// check off.
func loadConfig(path string) (*config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, routerconf.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading config %s: %w", path, err)
	}
	rc, err := routerconf.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	rc.ApplyDefaults()
	if err := rc.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return &config{Config: *rc}, nil
}

func (c *config) board() (string, error) {
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

// release reads the running firmware's release file. A missing or
// broken one gives the zero Release: the updater then falls back to the
// build its state file recorded.
func (c *config) release() (routerconf.Release, error) {
	b, err := os.ReadFile(c.ReleaseFile)
	if err != nil {
		return routerconf.Release{}, fmt.Errorf("release file: %w", err)
	}
	r, err := routerconf.DecodeRelease(b)
	if err != nil {
		return routerconf.Release{}, fmt.Errorf("release file %s: %w", c.ReleaseFile, err)
	}
	return r, nil
}

// networks are the config's networks for the status page; Validate has
// checked the prefixes.
func (c *config) networks() []status.Network {
	var out []status.Network
	for _, n := range c.Networks {
		out = append(out, status.Network{Name: n.Name, Prefixes: n.Subnets()})
	}
	return out
}

// statusBrand maps the config's brand onto the status page's.
func (c *config) statusBrand() (status.Brand, error) {
	var b status.Brand
	if rb := c.Brand; rb != nil {
		b.ProductName, b.Vendor, b.SupportURL = rb.ProductName, rb.Vendor, rb.SupportURL
		b.Colors.Accent, b.Colors.Background, b.Colors.Text = rb.Colors.Primary, rb.Colors.Background, rb.Colors.Text
		b.Language = rb.Language
		t := rb.Texts
		b.Texts = status.Texts{
			Tagline: t.Tagline, Footer: t.Footer, TorUp: t.TorUp, TorStarting: t.TorStarting, TorDown: t.TorDown,
			NetOff: t.NetOff, NetMedium: t.NetMedium, NetMax: t.NetMax, NetUnknown: t.NetUnknown,
		}
	}
	if c.LogoFile != "" {
		logo, err := readLimited(c.LogoFile, status.MaxLogo)
		if err != nil {
			return b, fmt.Errorf("logo: %w", err)
		}
		b.Logo = logo
	}
	return b, nil
}

func (c *config) page() (*status.Page, error) {
	b, err := c.statusBrand()
	if err != nil {
		return nil, err
	}
	return status.NewPage(b, c.networks()), nil
}

// setupView prepares the first-boot setup view, or returns nil when the
// config has none.
func (c *config) setupView(log *slog.Logger) (*setup.View, error) {
	s := c.Setup
	if s == nil {
		return nil, nil
	}
	n := c.Network(s.Network) // Validate has checked it exists
	sc := setup.Config{
		Network: s.Network, Prefixes: n.Subnets(), Address: netip.MustParseAddr(s.Address),
		SecretsFile: s.SecretsFile, DoneFile: s.DoneFile, Logger: log,
	}
	for _, n := range c.Networks {
		sc.Networks = append(sc.Networks, setup.Network{Name: n.Name, SSID: n.SSID})
	}
	if b := c.Brand; b != nil {
		sc.Brand = setup.Brand{ProductName: b.ProductName, Primary: b.Colors.Primary, Background: b.Colors.Background,
			Text: b.Colors.Text, Language: b.Language}
	}
	return setup.New(sc)
}

// readLimited reads a file of at most max bytes.
func readLimited(path string, max int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, max)
	}
	return b, nil
}

// updaterConfig turns the file config into an updater.Config.
func (c *config) updaterConfig(log *slog.Logger, torTime func(context.Context) (time.Time, error)) (updater.Config, error) {
	kr, err := usign.LoadKeyDir(c.KeysDir)
	if err != nil {
		return updater.Config{}, err
	}
	board, err := c.board()
	if err != nil {
		return updater.Config{}, err
	}
	rel, _ := c.release()
	clock := time.Now
	if c.BuildEpoch > 0 {
		// No RTC: the clock may start before the image was built, which
		// no manifest or Tor consensus can predate.
		floor := time.Unix(c.BuildEpoch, 0)
		clock = func() time.Time {
			if now := time.Now(); now.After(floor) {
				return now
			}
			return floor
		}
	}
	return updater.Config{
		Mirrors: c.Mirrors, ManifestName: c.ManifestName, Keys: kr, Threshold: c.Threshold, Board: board, Channel: c.Channel,
		SOCKSAddr: c.SOCKS, DownloadDir: c.DownloadDir, StatePath: c.State, Sysupgrade: c.Sysupgrade,
		MemInfoPath: c.MemInfo, RAMMargin: c.RAMMargin,
		RequestTimeout: time.Duration(c.RequestTimeout), StallTimeout: time.Duration(c.StallTimeout),
		InstalledBuild: rel.Build, InstalledVersion: rel.Version,
		Clock: clock, TorTime: torTime, Logger: log,
	}, nil
}

// checkTrustedKeys refuses a trusted key set no manifest check could use
// as configured: one Ed25519 public key under two fingerprints (it would
// count twice toward the threshold), or a threshold above the number of
// distinct keys. Both are reported at once, for the owner to fix together.
func checkTrustedKeys(ucfg updater.Config, dir string) error {
	distinct := map[string]bool{}
	if ucfg.Keys != nil {
		for _, k := range ucfg.Keys.Keys() {
			distinct[string(k.Key)] = true
		}
	}
	var errs []error
	if err := manifest.CheckKeys(ucfg.Keys); err != nil {
		errs = append(errs, fmt.Errorf("trusted keys in %s: %w", dir, err))
	}
	if ucfg.Threshold > len(distinct) {
		errs = append(errs, fmt.Errorf("threshold %d is above the %d distinct trusted keys in %s: no manifest could ever be accepted; lower \"threshold\" or add keys",
			ucfg.Threshold, len(distinct), dir))
	}
	return errors.Join(errs...)
}

// torTime asks Tor for its consensus time on a fresh connection.
func (c *config) torTime(ctx context.Context) (time.Time, error) {
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
func (c *config) torStatus(ctx context.Context) (status.Tor, *torctl.Status) {
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

func (c *config) firmware() status.Firmware {
	r, _ := c.release()
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

const installSocketUsage = "ask the root install helper on this unix socket to flash, instead of running sysupgrade (the daemon's user cannot flash)"

// setInstaller makes the updater hand verified images to the root install
// helper at sock (`verify install-helper`) instead of running sysupgrade.
func setInstaller(ucfg *updater.Config, sock string) {
	if sock != "" {
		ucfg.Installer = updater.SocketInstaller{Path: sock}
	}
}

// runCheck is `verify check --once`: one update check, for tests and for
// an owner who wants an update now. With --json stdout carries exactly one
// cliout document (torwrt.verify.check/v1) whatever happens; its result is
// the updater's Result whenever a check ran, refused or failed included.
func runCheck(ctx context.Context, stdout, stderr io.Writer, args []string) int {
	doc := cliout.Document[*updater.Result]{Schema: cliout.Schema("verify", "check")}
	asJSON := cliout.JSONFlag(args)
	finish := func(code int, err error) int {
		if asJSON {
			doc.OK, doc.ExitCode = code == exitOK, code
			if err != nil && code != exitOK {
				doc.Error = &cliout.Error{Code: errorCode(code, err), Message: err.Error()}
			}
			cliout.Write(stdout, doc)
		}
		return code
	}
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "verify check: %v\n", err)
		return finish(code, err)
	}
	fs := flag.NewFlagSet("verify check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", defaultConfigPath, "config file")
	fs.Bool("once", true, "run one check and exit (the only mode; `verify daemon` repeats)")
	now := fs.Bool("ignore-rollout", false, "install at once instead of waiting for this router's turn in a staged rollout")
	fs.Bool("json", false, "print one JSON document (docs/cli.md) on stdout")
	debug := fs.Bool("debug", false, "debug logging")
	installSock := fs.String("install-socket", "", installSocketUsage)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return finish(exitUsage, err)
	}
	if fs.NArg() != 0 {
		return fail(exitUsage, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	log := newLogger(stderr, *debug)
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return fail(exitUsage, err)
	}
	if err := refuseRootOverDaemon(os.Geteuid(), cfg); err != nil {
		return fail(exitUsage, err)
	}
	ucfg, err := cfg.updaterConfig(log, cfg.torTime)
	if err != nil {
		return fail(exitFailure, err)
	}
	ucfg.IgnoreRollout = *now
	setInstaller(&ucfg, *installSock)
	if err := checkTrustedKeys(ucfg, cfg.KeysDir); err != nil {
		return fail(exitUsage, err)
	}
	u, err := updater.New(ucfg)
	if err != nil {
		return fail(exitUsage, err)
	}
	// The updater has logged the reason; stdout carries the result only.
	res, err := u.Check(ctx)
	if !asJSON {
		fmt.Fprintf(stdout, "%s: %s\n", res.Status, res.Reason)
	}
	doc.Result = res
	return finish(exitCodeForUpdate(err), err)
}

// refuseRootOverDaemon: a check as root next to the unprivileged daemon
// would create root's files in the daemon's state directory and take over
// its private download directory, and the daemon could then no longer
// check. When the init script has given those directories to the daemon's
// user, root is refused with what to run instead.
func refuseRootOverDaemon(euid int, cfg *config) error {
	if euid != 0 {
		return nil
	}
	for _, dir := range []string{filepath.Dir(cfg.State), filepath.Join(cfg.DownloadDir, "torwrt-verify")} {
		fi, err := os.Lstat(dir)
		if err != nil {
			continue
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || st.Uid == 0 {
			continue
		}
		return fmt.Errorf("%w: run as root, but %s belongs to uid %d, the daemon's user: "+
			"a check as root would take it over. Run the check as that user through the install helper: "+
			"su -s /bin/sh torwrt -c 'torwrt-verify check --install-socket %s', or restart the daemon "+
			"(/etc/init.d/torwrt-verify restart), which checks %s after it starts",
			updater.ErrConfiguration, dir, st.Uid, defaultInstallSocket, time.Duration(cfg.FirstCheck))
	}
	return nil
}

// daemon is the running service: periodic checks, Tor watching, and the
// status page with the setup view.
type daemon struct {
	cfg   *config
	log   *slog.Logger
	page  *status.Page
	setup *setup.View // nil: no setup view
	u     *updater.Updater

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
	checkOnly := fs.Bool("check-config", false, "load the config and everything it names (keys, board, release file, logo), report, and exit without serving")
	installSock := fs.String("install-socket", "", installSocketUsage)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "verify daemon: unexpected argument %q\n", fs.Arg(0))
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
	if d.setup, err = cfg.setupView(log); err != nil {
		log.Error("not starting", "err", err)
		return exitUsage
	}
	ucfg, err := cfg.updaterConfig(log, d.torTime)
	if err != nil {
		log.Error("not starting", "err", err)
		return exitFailure
	}
	setInstaller(&ucfg, *installSock)
	if err := checkTrustedKeys(ucfg, cfg.KeysDir); err != nil {
		log.Error("not starting", "err", err)
		return exitUsage
	}
	if d.u, err = updater.New(ucfg); err != nil {
		log.Error("not starting", "err", err)
		return exitUsage
	}
	if *checkOnly {
		return d.reportConfig(stdout, stderr, *cfgPath, ucfg)
	}
	d.refreshUpdate()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var lns []net.Listener
	for _, addr := range cfg.Listen {
		ln, err := listen(ctx, addr)
		if err != nil {
			log.Error("status page not served", "addr", addr, "err", err)
			for _, l := range lns {
				l.Close()
			}
			return exitFailure
		}
		log.Info("status page", "url", "http://"+ln.Addr().String()+"/torbox")
		if d.setup != nil {
			ln = d.setup.Intercept(ln)
		}
		lns = append(lns, ln)
	}
	errc := make(chan error, len(lns)+1)
	var wg sync.WaitGroup
	for _, ln := range lns {
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

// reportConfig is `verify daemon --check-config`: everything the daemon
// needs has loaded; say what it would run with. The running firmware's
// release file must be readable too.
func (d *daemon) reportConfig(stdout, stderr io.Writer, path string, ucfg updater.Config) int {
	rel, err := d.cfg.release()
	if err != nil {
		fmt.Fprintf(stderr, "verify daemon: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "config %s OK\n", path)
	fmt.Fprintf(stdout, "firmware: %s %s build %d, board %s\n", rel.Product, rel.Version, rel.Build, ucfg.Board)
	fmt.Fprintf(stdout, "updates: %d mirrors, %d of %d trusted keys in %s, state %s\n",
		len(ucfg.Mirrors), ucfg.Threshold, ucfg.Keys.Len(), d.cfg.KeysDir, d.cfg.State)
	fmt.Fprintf(stdout, "status page: %s\n", strings.Join(d.cfg.Listen, " "))
	if s := d.cfg.Setup; s != nil {
		fmt.Fprintf(stdout, "setup view: http://%s%s for clients on %s until %s exists\n", s.Address, routerconf.SetupPath, s.Network, s.DoneFile)
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
	poll := d.cfg.TorPoll.Or(routerconf.DefaultTorPoll)
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

// checkLoop starts update checks on the timer and on Tor's triggers. A
// check runs in a goroutine of its own, at most one at a time: a mirror
// that answers slowly delays only that check, never the status page, the
// reaction to a dead listener or the timer. A tick that comes while a check
// is still running is skipped (and logged); the running check ends by the
// updater's own deadlines.
func (d *daemon) checkLoop(ctx context.Context, trigger <-chan string, errc <-chan error) {
	interval := d.cfg.Interval.Or(routerconf.DefaultInterval)
	next := time.Now().Add(d.cfg.FirstCheck.Or(routerconf.DefaultFirstCheck))
	d.setNext(next)
	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // runs after cancel: the running check stops first
	defer cancel()
	finished := make(chan struct{}, 1)
	running := false
	// ±10% jitter so routers do not all ask at the same moment.
	jittered := func() time.Time {
		j := time.Duration(rand.Int64N(int64(interval)/5+1)) - interval/10
		return time.Now().Add(interval + j)
	}
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
		case <-finished:
			running = false
			d.setNext(next) // the check wrote its result to the state file
			continue
		case why = <-trigger:
		case <-time.After(wait):
			why = "scheduled"
		}
		if running {
			d.log.Warn("update check skipped: the previous check is still running", "why", why)
			next = jittered()
			d.setNext(next)
			continue
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
		running = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.u.Check(cctx) // logs its own result and records it in the state
			finished <- struct{}{}
		}()
		next = jittered()
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
