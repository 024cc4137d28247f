package overlay

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/torwrt/torwrt/internal/routerconf"
	"github.com/torwrt/torwrt/internal/uci"
	overlayfiles "github.com/torwrt/torwrt/overlay"
)

// tmplData is what the templates see: the validated Input plus values
// derived from it once, here, so no template does address arithmetic.
type tmplData struct {
	In               Input
	Nets             []netData
	Off, Medium, Max netData
	Ports            ports
	KeysDir          string
	StatusPath       string
	VirtualNet       string
	SSH              bool
	Banner           string
	RestoreFiles     []string
	// Daemon is /etc/torwrt/verify.json, Release /etc/torwrt/release.json.
	Daemon  routerconf.Config
	Release routerconf.Release
	// Paths on the router that the scripts and the daemon share.
	ConfigPath         string
	StateDir           string
	SecretsFile        string
	SetupDoneFile      string
	SetupConfirmedFile string
	SetupURL           string
}

type netData struct {
	Name        string // "tor_off"
	Policy      string
	SSID        string
	Bridge      string
	Ports       []string
	Addr        string // "10.71.0.1"
	Prefix      string // "10.71.0.0/24"
	Netmask     string // "255.255.255.0"
	DHCPStart   int
	DHCPLimit   int
	NoGateway   bool
	WifiSection string // wireless section name
	SecretVar   string // variable in /etc/torwrt/device-secrets
}

type ports struct {
	SSH, DHCP, Status, Socks, Control, Trans, DNS int
}

var policies = [3]string{
	"routed and NATed to the internet, no Tor",
	"TCP into Tor's TransPort, DNS into Tor's DNSPort, everything else dropped",
	"no route out; only Tor's SocksPort, DHCP and the status page",
}

// restoreFiles are the image's own configuration files: the first-boot
// script copies them back from /rom after an upgrade, because sysupgrade
// keeps the old system's changed conffiles.
var restoreFiles = []string{
	"/etc/config/dhcp",
	"/etc/config/dropbear",
	"/etc/config/firewall",
	"/etc/config/network",
	"/etc/config/system",
	// The tor package's UCI file names the torrc and can include more
	// files into it (head_include, tail_include): policy, not state.
	"/etc/config/tor",
	"/etc/config/wireless",
	"/etc/dropbear/authorized_keys",
	"/etc/tor/torrc",
}

func newTmplData(in Input) tmplData {
	d := tmplData{
		In: in,
		Ports: ports{
			SSH: PortSSH, DHCP: PortDHCP, Status: PortStatus, Socks: PortSocks,
			Control: PortControl, Trans: PortTrans, DNS: PortDNS,
		},
		KeysDir:      KeysDir,
		StatusPath:   StatusPath,
		VirtualNet:   VirtualAddrNetwork,
		SSH:          len(in.SSHAuthorizedKeys) > 0,
		Banner:       strings.TrimRight(in.Banner, "\n"),
		RestoreFiles: restoreFiles,
	}
	for i, n := range in.nets() {
		p := netip.MustParsePrefix(n.Address) // Validate has checked it
		nd := netData{
			Name:        netNames[i],
			Policy:      policies[i],
			SSID:        in.SSIDPrefix + "-" + netNames[i],
			Bridge:      n.Bridge,
			Ports:       n.Ports,
			Addr:        p.Addr().String(),
			Prefix:      p.Masked().String(),
			Netmask:     netmask(p.Bits()),
			DHCPStart:   n.DHCPStart,
			DHCPLimit:   n.DHCPLimit,
			NoGateway:   i == 2,
			WifiSection: "wifi_" + netNames[i],
			SecretVar:   "WIFI_KEY_" + strings.ToUpper(netNames[i]),
		}
		d.Nets = append(d.Nets, nd)
	}
	d.Off, d.Medium, d.Max = d.Nets[0], d.Nets[1], d.Nets[2]
	d.ConfigPath = routerconf.Path
	d.StateDir = routerconf.StateDir
	d.SecretsFile = routerconf.SecretsFile
	d.SetupDoneFile = routerconf.SetupDoneFile
	d.SetupConfirmedFile = routerconf.SetupConfirmedFile
	d.SetupURL = "http://" + d.Max.Addr + routerconf.SetupPath
	d.Daemon = daemonConfig(in, d.Nets)
	d.Release = routerconf.Release{Product: in.ProductName, Version: in.FirmwareVersion, Build: in.FirmwareBuild}
	return d
}

// daemonConfig is what torwrt-verify reads: the same addresses as the
// firewall and torrc, the release's mirrors and keys, and the brand.
func daemonConfig(in Input, nets []netData) routerconf.Config {
	c := routerconf.Config{
		Mirrors:     slices.Clone(in.UpdateMirrors),
		KeysDir:     KeysDir,
		Channel:     in.Channel,
		Threshold:   in.UpdateThreshold,
		Board:       in.Board,
		SOCKS:       "127.0.0.1:" + strconv.Itoa(PortSocks),
		Control:     "127.0.0.1:" + strconv.Itoa(PortControl),
		Cookie:      "/var/lib/tor/control_auth_cookie",
		State:       routerconf.StateFile,
		ReleaseFile: routerconf.ReleasePath,
		DownloadDir: "/tmp",
		BuildEpoch:  in.SourceDateEpoch,
		Brand: &routerconf.Brand{
			ProductName: in.ProductName,
			Vendor:      in.Brand.Vendor,
			Colors:      in.Brand.Colors,
			Texts:       brandTexts(in.Brand),
			SupportURL:  in.Brand.SupportURL,
			Language:    in.Brand.Language,
		},
		LogoFile: in.Brand.LogoPath(),
	}
	for _, n := range nets {
		c.Listen = append(c.Listen, n.Addr+":"+strconv.Itoa(PortStatus))
		c.Networks = append(c.Networks, routerconf.Network{Name: n.Name, Prefixes: []string{n.Prefix}, SSID: n.SSID})
	}
	// The setup view is for the network with the wired LAN port, the
	// only one a new owner can join without a Wi-Fi passphrase.
	setupNet := nets[2]
	c.Setup = &routerconf.Setup{
		Network:     setupNet.Name,
		Address:     setupNet.Addr,
		SecretsFile: routerconf.SecretsFile,
		DoneFile:    routerconf.SetupDoneFile,
	}
	return c
}

func netmask(bits int) string {
	m := ^uint32(0) << (32 - bits)
	return netip.AddrFrom4([4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}).String()
}

// The template functions quote for the language of the file they write
// into. Input validation already keeps quotes, spaces and control
// characters out of every value; quoting again means a validation gap
// still cannot become an injection. Each function fails the render on a
// value it cannot represent safely.
var funcs = template.FuncMap{
	"uci":  uciQuote,
	"sh":   shQuote,
	"nft":  nftString,
	"json": jsonText,
}

func uciQuote(v string) (string, error) {
	if strings.ContainsAny(v, "\n\r\x00") {
		return "", fmt.Errorf("value %q: line breaks are not allowed in UCI values", v)
	}
	return uci.Quote(v), nil
}

func shQuote(v string) (string, error) {
	if strings.ContainsAny(v, "\n\r\x00") {
		return "", fmt.Errorf("value %q: line breaks are not allowed in shell words", v)
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'", nil
}

// nftQuotable are the characters an nft quoted string may hold here:
// interface names only.
var nftQuotable = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)

func nftString(v string) (string, error) {
	if !nftQuotable.MatchString(v) {
		return "", fmt.Errorf("value %q cannot be an nft interface name", v)
	}
	return `"` + v + `"`, nil
}

func jsonText(v any) (string, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", err
	}
	return string(b) + "\n", nil
}

// manifestEntry is one line of overlay/manifest.txt.
type manifestEntry struct {
	path      string
	mode      uint32
	condition string
}

// conditions decide whether a template is rendered.
var conditions = map[string]func(Input) bool{
	"ssh": func(in Input) bool { return len(in.SSHAuthorizedKeys) > 0 },
}

// loadManifest reads the manifest and checks it against the files under
// root/: the two must list exactly the same paths.
func loadManifest() ([]manifestEntry, error) {
	raw, err := fs.ReadFile(overlayfiles.Root, "manifest.txt")
	if err != nil {
		return nil, fmt.Errorf("overlay: reading manifest: %w", err)
	}
	var entries []manifestEntry
	listed := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Fields(text)
		if len(fields) < 2 || len(fields) > 3 {
			return nil, fmt.Errorf("overlay: manifest.txt:%d: want: path mode [condition]", line)
		}
		mode, err := strconv.ParseUint(fields[1], 8, 32)
		if err != nil || mode&^0o777 != 0 {
			return nil, fmt.Errorf("overlay: manifest.txt:%d: bad mode %q", line, fields[1])
		}
		e := manifestEntry{path: fields[0], mode: uint32(mode)}
		if len(fields) == 3 {
			if _, ok := conditions[fields[2]]; !ok {
				return nil, fmt.Errorf("overlay: manifest.txt:%d: unknown condition %q", line, fields[2])
			}
			e.condition = fields[2]
		}
		if !reFilePath.MatchString(e.path) || path.Clean(e.path) != e.path {
			return nil, fmt.Errorf("overlay: manifest.txt:%d: bad path %q", line, e.path)
		}
		if listed[e.path] {
			return nil, fmt.Errorf("overlay: manifest.txt:%d: %s listed twice", line, e.path)
		}
		listed[e.path] = true
		entries = append(entries, e)
	}
	err = fs.WalkDir(overlayfiles.Root, "root", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel := strings.TrimPrefix(p, "root")
		if !listed[rel] {
			return fmt.Errorf("overlay: template %s is not listed in overlay/manifest.txt", rel)
		}
		delete(listed, rel)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for p := range listed {
		return nil, fmt.Errorf("overlay: manifest.txt lists %s but overlay/root has no such template", p)
	}
	return entries, nil
}

func execTemplate(p string, data tmplData) ([]byte, error) {
	src, err := fs.ReadFile(overlayfiles.Root, "root"+p)
	if err != nil {
		return nil, fmt.Errorf("overlay: reading template %s: %w", p, err)
	}
	t, err := template.New(p).Funcs(funcs).Option("missingkey=error").Parse(string(src))
	if err != nil {
		return nil, fmt.Errorf("overlay: parsing template %s: %w", p, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("overlay: rendering %s: %w", p, err)
	}
	return b.Bytes(), nil
}

// brandTexts merges the brand's tagline and footer with its optional
// status page sentences.
func brandTexts(b StatusBrand) routerconf.Texts {
	t := b.More
	t.Tagline, t.Footer = b.Tagline, b.Footer
	return t
}
