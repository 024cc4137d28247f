package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/torwrt/torwrt/internal/brand"
	"github.com/torwrt/torwrt/internal/cliout"
	"github.com/torwrt/torwrt/internal/status"
	"github.com/torwrt/torwrt/internal/usign"
)

// rootOptions locate the vendor directory (see sources).
type rootOptions struct {
	root string
	src  sources // set by brands
}

func (o *rootOptions) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.root, "root", "", "directory with your own brands/ (default: the nearest directory at or above the working directory with profiles/ or brands/, else ./brands); the torwrt brand is also embedded in imgbuild")
}

// brands is the directory brand init writes to.
func (o *rootOptions) brands() (string, error) {
	src, err := findSources(o.root)
	if err != nil {
		return "", err
	}
	o.src = src
	if o.root = src.root; o.root == "" {
		o.root = "."
	}
	return src.brandDir(), nil
}

func runBrand(ctx context.Context, e env, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "init":
			return runBrandInit(ctx, e, args[1:])
		case "check":
			return runBrandCheck(ctx, e, args[1:])
		case "-h", "-help", "--help":
			fmt.Fprint(e.stdout, brandUsage)
			return nil
		}
	}
	return usagef("want: imgbuild brand init NAME (--key-out PATH | --pub FILE), or imgbuild brand check NAME|--all; see docs/rebranding.md")
}

const brandUsage = `Usage:
  imgbuild brand init NAME (--key-out PATH | --pub FILE) [--product P] [--vendor V] [--primary #rrggbb]
  imgbuild brand check NAME|--all [--json]

A brand is brands/NAME/: brand.yaml plus its banner, logo and release public
keys. It changes names, looks, texts, update mirrors and keys, never
behaviour. See docs/rebranding.md.
`

type brandInitOptions struct {
	rootOptions
	outputOptions
	product, vendor, primary string
	country                  string
	keyOut, pub              string
}

// brandInitResult is the result of `brand init --json`
// (torwrt.imgbuild.brand.init/v1).
type brandInitResult struct {
	Brand      string     `json:"brand"`
	Dir        string     `json:"dir"`
	Files      []string   `json:"files"`
	ReleaseKey cliout.Key `json:"release_key"` // file: the public key in the brand
	SecretKey  string     `json:"secret_key,omitempty"`
}

func runBrandInit(ctx context.Context, e env, args []string) error {
	var o brandInitOptions
	fs := newFlags(e, "brand init", "NAME", "Scaffold brands/NAME/: a commented brand.yaml, a banner, a simple SVG logo and\nthe release public key. Either make a new release key pair at --key-out PATH\n(PATH.sec, mode 0600, must be outside brands/; keep it out of the repository)\nor use an existing public key with --pub FILE. Then edit brand.yaml and run:\nimgbuild brand check NAME.")
	o.rootOptions.addFlags(fs)
	o.outputOptions.addFlags(fs)
	fs.StringVar(&o.product, "product", "", "product name (default: NAME in title case)")
	fs.StringVar(&o.vendor, "vendor", "", "vendor name (default: the product name)")
	fs.StringVar(&o.primary, "primary", "", "primary colour #rrggbb (default: #2b5a9e)")
	fs.StringVar(&o.country, "country", "", "Wi-Fi country of the routers, ISO 3166-1 alpha-2 such as DE or GB (default: none; brand.yaml then has a commented country line and builds need imgbuild build --country XX)")
	fs.StringVar(&o.keyOut, "key-out", "", "make a new release key pair: PATH.pub and PATH.sec (0600), outside brands/")
	fs.StringVar(&o.pub, "pub", "", "use this existing usign public key (.pub) instead of making one")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usagef("want one brand NAME, e.g. imgbuild brand init acme --key-out ~/keys/acme-release")
	}
	if (o.keyOut == "") == (o.pub == "") {
		return usagef("want exactly one of --key-out PATH (make a release key pair) or --pub FILE (use an existing public key)")
	}
	id := rest[0]
	root, err := o.brands()
	if err != nil {
		return err
	}
	dir := filepath.Join(root, id)
	if _, err := os.Lstat(dir); err == nil {
		return fmt.Errorf("%s already exists; check it with: imgbuild brand check %s", dir, id)
	}
	s := brand.Scaffold{ID: id, ProductName: o.product, Vendor: o.vendor, Primary: o.primary, Country: o.country}
	res := brandInitResult{Brand: id, Dir: dir}
	var cleanup func()
	if o.keyOut != "" {
		if inside(o.keyOut, root) {
			return usagef("--key-out %s is inside %s: brands are committed, secret keys never are; put it elsewhere, e.g. ~/keys/%s-release", o.keyOut, root, id)
		}
		product := o.product
		if product == "" {
			product = id
		}
		k, err := usign.GenerateKey(rand.Reader, product+" release key")
		if err != nil {
			return err
		}
		if err := usign.WriteKeyPair(o.keyOut, k); err != nil {
			return err
		}
		cleanup = func() { os.Remove(o.keyOut + ".sec"); os.Remove(o.keyOut + ".pub") }
		s.PublicKey, err = os.ReadFile(o.keyOut + ".pub")
		if err != nil {
			cleanup()
			return err
		}
		s.KeyName = keyFileName(o.keyOut)
		res.SecretKey = o.keyOut + ".sec"
		if inside(o.keyOut, o.root) {
			fmt.Fprintf(e.stderr, "imgbuild brand init: warning: %s.sec is inside the source tree %s; make sure it is never committed\n", o.keyOut, o.root)
		}
	} else {
		data, err := readSmallFile(o.pub, 4<<10)
		if err != nil {
			return fmt.Errorf("--pub: %w", err)
		}
		s.PublicKey = data
		s.KeyName = keyFileName(strings.TrimSuffix(o.pub, ".pub"))
	}
	b, err := brand.Create(root, s)
	if err != nil {
		if cleanup != nil {
			cleanup() // the fresh key signed nothing yet
		}
		return err
	}
	res.ReleaseKey = cliout.Key{Fingerprint: b.Keys[0].Fingerprint.String(), Comment: b.Keys[0].Comment, File: filepath.Join(dir, s.KeyName)}
	res.Files = []string{"brand.yaml", b.Banner, b.Logo, s.KeyName}
	if o.json {
		return setResult(e, res)
	}
	fmt.Fprintf(e.stdout, "created %s/: %s\nrelease key %s: %s", dir, strings.Join(res.Files, ", "), res.ReleaseKey.Fingerprint, res.ReleaseKey.File)
	if res.SecretKey != "" {
		fmt.Fprintf(e.stdout, " (secret key %s, mode 0600; never commit it)", res.SecretKey)
	}
	fmt.Fprintf(e.stdout, "\nnext: edit %s (support_url, update_mirrors, colours, texts), replace the logo and banner,\n      then run: imgbuild brand check %s\n", filepath.Join(dir, "brand.yaml"), id)
	return nil
}

// keyFileName makes the brand's file name for a key at base (no .pub).
func keyFileName(base string) string {
	name := filepath.Base(base) + ".pub"
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return "release.pub"
		}
	}
	if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "-") || len(name) > 64 {
		return "release.pub"
	}
	return name
}

// inside says whether path is dir or below it (after resolving both).
func inside(path, dir string) bool {
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			return p
		}
		if r, err := filepath.EvalSymlinks(filepath.Dir(a)); err == nil {
			a = filepath.Join(r, filepath.Base(a))
		}
		return a
	}
	p, d := abs(path), abs(dir)
	if r, err := filepath.EvalSymlinks(d); err == nil {
		d = r
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

func readSmallFile(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, max)
	}
	return data, nil
}

type brandCheckOptions struct {
	rootOptions
	outputOptions
	all     bool
	preview string
}

// brandSummary is what brand check reports about a valid brand.
type brandSummary struct {
	ID          string   `json:"id"`
	Dir         string   `json:"dir"`
	ProductName string   `json:"product_name"`
	Vendor      string   `json:"vendor"`
	Hostname    string   `json:"hostname"`
	SSIDs       []string `json:"ssids"`
	Language    string   `json:"language"`
	Channel     string   `json:"channel"`
	// Country is the Wi-Fi country (ISO 3166-1 alpha-2); empty when the
	// brand sets none (builds then need --country).
	Country    string        `json:"country"`
	SupportURL string        `json:"support_url"`
	Colors     brandColors   `json:"colors"`
	Logo       brandAsset    `json:"logo"`
	Banner     brandAsset    `json:"banner"`
	Mirrors    []string      `json:"update_mirrors"`
	Keys       []cliout.Key  `json:"release_keys"`
	Threshold  int           `json:"threshold"`
	StatusPage statusWeights `json:"status_page"`
	Warnings   []string      `json:"warnings"`
}

type brandColors struct {
	brand.Colors
	TextContrast    float64 `json:"text_contrast"`
	PrimaryContrast float64 `json:"primary_contrast"`
}

type brandAsset struct {
	File   string `json:"file"`
	Type   string `json:"type,omitempty"`
	Bytes  int    `json:"bytes"`
	Width  int    `json:"width,omitempty"`
	Height int    `json:"height,omitempty"`
	Lines  int    `json:"lines,omitempty"`
}

type statusWeights struct {
	MaxBytes int `json:"max_bytes"`
	Budget   int `json:"budget"`
}

// statusBudget is the status page's weight limit (HTML with inline CSS
// and logo: everything a browser loads).
const statusBudget = 30 << 10

func runBrandCheck(ctx context.Context, e env, args []string) error {
	var o brandCheckOptions
	fs := newFlags(e, "brand check", "NAME|--all", "Validate brands/NAME/ (every problem, each naming its file, line and field), render\nits status page and print a summary. Exit 1 if anything is wrong.")
	o.rootOptions.addFlags(fs)
	o.outputOptions.addFlags(fs)
	fs.BoolVar(&o.all, "all", false, "check every brand under brands/")
	fs.StringVar(&o.preview, "preview", "", "write the brand's status page (Tor up, starting, down) as DIR/<brand>-tor-<state>.html to open in a browser")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if o.all == (len(rest) == 1) || len(rest) > 1 {
		return usagef("want one brand NAME or --all")
	}
	if _, err := o.brands(); err != nil {
		return err
	}
	ids := rest
	if o.all {
		if ids, err = o.src.brandIDs(); err != nil {
			return err
		}
	}
	var sums []brandSummary
	var errs []error
	for _, id := range ids {
		b, err := o.src.loadBrand(id)
		if err != nil {
			if errors.Is(err, brand.ErrNotFound) {
				return usageError{err}
			}
			errs = append(errs, err)
			continue
		}
		sum, err := summarize(b)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		sums = append(sums, sum)
		if o.preview != "" {
			if err := writePreview(o.preview, b); err != nil {
				return err
			}
		}
	}
	if o.json {
		// With problems, the brands that passed are still reported.
		if err := setResult(e, brandCheckResult{Brands: append([]brandSummary{}, sums...)}); err != nil {
			return err
		}
	}
	if len(errs) > 0 {
		return brandProblems(errs)
	}
	if o.json {
		return nil
	}
	for _, s := range sums {
		printSummary(e.stdout, s)
	}
	return nil
}

// brandCheckResult is the result of `brand check --json`
// (torwrt.imgbuild.brand.check/v1): every brand that passed, in order.
type brandCheckResult struct {
	Brands []brandSummary `json:"brands"`
}

// brandProblems is every problem brand check found, one per line.
type brandProblems []error

func (p brandProblems) lines() []string {
	var out []string
	for _, err := range p {
		out = append(out, strings.Split(err.Error(), "\n")...)
	}
	return out
}

func (p brandProblems) Error() string {
	return fmt.Sprintf("%d problem(s):\n%s", len(p.lines()), errors.Join(p...))
}
func (p brandProblems) Unwrap() []error   { return append([]error{errInvalidBrand}, p...) }
func (p brandProblems) Details() []string { return p.lines() }

func summarize(b *brand.Brand) (brandSummary, error) {
	s := brandSummary{
		ID: b.ID, Dir: b.Dir, ProductName: b.ProductName, Vendor: b.Vendor, Hostname: b.Hostname,
		SSIDs: b.SSIDs(), Language: b.Language, Channel: b.Channel, Country: b.Country, SupportURL: b.SupportURL,
		Colors: brandColors{Colors: b.Colors,
			TextContrast:    round1(brand.Contrast(b.Colors.Text, b.Colors.Background)),
			PrimaryContrast: round1(brand.Contrast(b.Colors.Primary, b.Colors.Background))},
		Logo:      brandAsset{File: b.Logo, Type: b.LogoType, Bytes: len(b.LogoData), Width: b.LogoWidth, Height: b.LogoHeight},
		Banner:    brandAsset{File: b.Banner, Bytes: len(b.BannerText), Lines: strings.Count(strings.TrimRight(b.BannerText, "\n"), "\n") + 1},
		Mirrors:   b.Mirrors,
		Threshold: b.Threshold,
		Warnings:  b.Warnings(),
	}
	if s.Warnings == nil {
		s.Warnings = []string{}
	}
	for i, k := range b.Keys {
		s.Keys = append(s.Keys, cliout.Key{File: b.KeyFiles[i], Fingerprint: k.Fingerprint.String(), Comment: k.Comment})
	}
	s.StatusPage = statusWeights{MaxBytes: statusPageWeight(b), Budget: statusBudget}
	if s.StatusPage.MaxBytes >= statusBudget {
		return s, fmt.Errorf("%s: logo: the status page is %d bytes with this brand, budget %d; make the logo smaller", filepath.Join(b.Dir, "brand.yaml"), s.StatusPage.MaxBytes, statusBudget)
	}
	return s, nil
}

// previewSnapshots are the states a preview shows, as seen from tor_medium.
func previewSnapshots(b *brand.Brand) map[string]status.Snapshot {
	t := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	fw := status.Firmware{Product: b.ProductName, Version: "0.1.0", Build: 1, Board: "glinet,gl-ar150"}
	up := status.Update{LastCheck: t.Add(-time.Hour), LastResult: "up-to-date", NextCheck: t.Add(5 * time.Hour)}
	return map[string]status.Snapshot{
		status.TorUp:       {Time: t, Firmware: fw, Update: up, Tor: status.Tor{State: status.TorUp, Progress: 100, Summary: "Done", Version: "0.4.8.16", Recommendation: "recommended"}},
		status.TorStarting: {Time: t, Firmware: fw, Update: up, Tor: status.Tor{State: status.TorStarting, Progress: 45, Summary: "Asking for relay descriptors", Version: "0.4.8.16", Recommendation: "unknown"}},
		status.TorDown:     {Time: t, Firmware: fw, Update: up, Tor: status.Tor{State: status.TorDown, Error: "control port 127.0.0.1:9051: connection refused"}},
	}
}

func previewNetworks() []status.Network {
	return []status.Network{
		{Name: "tor_off", Prefixes: []netip.Prefix{netip.MustParsePrefix("10.71.0.0/24")}},
		{Name: "tor_medium", Prefixes: []netip.Prefix{netip.MustParsePrefix("10.72.0.0/24")}},
		{Name: "tor_max", Prefixes: []netip.Prefix{netip.MustParsePrefix("10.73.0.0/24")}},
	}
}

// writePreview writes the brand's status page in each Tor state.
func writePreview(dir string, b *brand.Brand) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	p := status.NewPage(b.Status(), previewNetworks())
	for state, snap := range previewSnapshots(b) {
		name := filepath.Join(dir, b.ID+"-tor-"+state+".html")
		if err := os.WriteFile(name, p.HTML(snap, p.Visitor(netip.MustParseAddr("10.72.0.9"))), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// statusPageWeight renders the brand's status page in its largest states
// and returns the biggest size in bytes.
func statusPageWeight(b *brand.Brand) int {
	p := status.NewPage(b.Status(), previewNetworks())
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	worst := 0
	for _, tor := range []status.Tor{
		{State: status.TorUp, Progress: 100, Summary: "Done", Version: "0.4.8.16", Recommendation: "obsolete"},
		{State: status.TorStarting, Progress: 45, Summary: "Asking for relay descriptors", Warning: strings.Repeat("w", 120), Version: "0.4.8.16", Recommendation: "unknown"},
		{State: status.TorDown, Error: "control port 127.0.0.1:9051: connection refused"},
	} {
		snap := status.Snapshot{Time: t, Tor: tor,
			Firmware: status.Firmware{Product: b.ProductName, Version: "0.1.0", Build: 1, Board: "glinet,gl-ar150"},
			Update:   status.Update{LastCheck: t, LastResult: "failed", LastError: strings.Repeat("e", 120), NextCheck: t, Pending: "0.1.1", DeferredUntil: t},
		}
		for _, addr := range []string{"10.71.0.9", "10.72.0.9", "192.0.2.1"} {
			worst = max(worst, len(p.HTML(snap, p.Visitor(netip.MustParseAddr(addr)))))
		}
	}
	return worst
}

func round1(f float64) float64 { return float64(int(f*10+.5)) / 10 }

func printSummary(w io.Writer, s brandSummary) {
	fmt.Fprintf(w, "brand %s OK (%s)\n", s.ID, s.Dir)
	fmt.Fprintf(w, "  product      %s by %s\n", s.ProductName, s.Vendor)
	fmt.Fprintf(w, "  hostname     %s\n", s.Hostname)
	fmt.Fprintf(w, "  SSIDs        %s\n", strings.Join(s.SSIDs, ", "))
	fmt.Fprintf(w, "  language     %s, channel %s\n", s.Language, s.Channel)
	if s.Country != "" {
		fmt.Fprintf(w, "  country      %s (%s)\n", s.Country, brand.CountryName(s.Country))
	} else {
		fmt.Fprintf(w, "  country      none: builds need imgbuild build --country XX\n")
	}
	fmt.Fprintf(w, "  support      %s\n", s.SupportURL)
	fmt.Fprintf(w, "  colours      primary %s (contrast %.1f:1), text %s (%.1f:1) on %s\n", s.Colors.Primary, s.Colors.PrimaryContrast, s.Colors.Text, s.Colors.TextContrast, s.Colors.Background)
	dims := ""
	if s.Logo.Width > 0 {
		dims = fmt.Sprintf(", %dx%d", s.Logo.Width, s.Logo.Height)
	}
	fmt.Fprintf(w, "  logo         %s (%s, %d bytes%s)\n", s.Logo.File, s.Logo.Type, s.Logo.Bytes, dims)
	fmt.Fprintf(w, "  banner       %s (%d bytes, %d lines)\n", s.Banner.File, s.Banner.Bytes, s.Banner.Lines)
	for i, m := range s.Mirrors {
		label := ""
		if i == 0 {
			label = "mirrors"
		}
		fmt.Fprintf(w, "  %-12s %s\n", label, m)
	}
	for i, k := range s.Keys {
		label := ""
		if i == 0 {
			label = "release keys"
		}
		fmt.Fprintf(w, "  %-12s %s %s (%s)\n", label, k.Fingerprint, k.File, k.Comment)
	}
	fmt.Fprintf(w, "  threshold    %d of %d\n", s.Threshold, len(s.Keys))
	fmt.Fprintf(w, "  status page  at most %d bytes (budget %d)\n", s.StatusPage.MaxBytes, s.StatusPage.Budget)
	for _, warn := range s.Warnings {
		fmt.Fprintf(w, "  warning      %s\n", warn)
	}
}
