package overlay

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/torwrt/torwrt/internal/profile"
	"github.com/torwrt/torwrt/internal/routerconf"
	"github.com/torwrt/torwrt/internal/uci"
)

var update = flag.Bool("update", false, "rewrite golden files")

// renderTo renders in into a fresh directory and returns it.
func renderTo(t *testing.T, in Input) (string, Output) {
	t.Helper()
	dest := filepath.Join(t.TempDir(), "files")
	out, err := Render(t.Context(), in, dest)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return dest, out
}

// TestGolden compares the whole rendered tree of each profile with
// testdata/golden/<profile>: listing.txt (path, mode, owner, size, hash)
// and tree/ (every file's bytes). Run with -update to rewrite them, then
// review the diff like code.
func TestGolden(t *testing.T) {
	for _, profile := range deviceProfiles(t) {
		t.Run(profile, func(t *testing.T) {
			dir, out := renderTo(t, testInput(t, profile))
			golden := filepath.Join("testdata", "golden", profile)
			if *update {
				if err := os.RemoveAll(golden); err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(filepath.Join(golden, "tree"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(golden, "listing.txt"), out.Listing(), 0o644); err != nil {
					t.Fatal(err)
				}
				copyTree(t, dir, filepath.Join(golden, "tree"))
				return
			}
			want, err := os.ReadFile(filepath.Join(golden, "listing.txt"))
			if err != nil {
				t.Fatalf("%v (run: go test ./internal/overlay -run TestGolden -update)", err)
			}
			if got := out.Listing(); !bytes.Equal(got, want) {
				t.Errorf("listing differs from %s/listing.txt:\n--- got\n%s--- want\n%s", golden, got, want)
			}
			gotFiles := readTree(t, dir)
			wantFiles := readTree(t, filepath.Join(golden, "tree"))
			for p, w := range wantFiles {
				g, ok := gotFiles[p]
				switch {
				case !ok:
					t.Errorf("%s: in golden tree, not rendered", p)
				case !bytes.Equal(g, w):
					t.Errorf("%s differs from golden:\n--- got\n%s\n--- want\n%s", p, g, w)
				}
			}
			for p := range gotFiles {
				if _, ok := wantFiles[p]; !ok {
					t.Errorf("%s: rendered, not in golden tree", p)
				}
			}
		})
	}
}

// copyTree copies regular files with their permission bits.
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	for p, data := range readTree(t, from) {
		info, err := os.Stat(filepath.Join(from, filepath.FromSlash(p)))
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(to, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, data, info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(target, info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
}

func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestDeterministic renders the same input twice under different umasks
// and time zones, and wants identical outputs, trees and tar archives.
func TestDeterministic(t *testing.T) {
	for _, profile := range deviceProfiles(t) {
		t.Run(profile, func(t *testing.T) {
			in := testInput(t, profile)
			old := syscall.Umask(0o077)
			t.Setenv("TZ", "Pacific/Kiritimati")
			dirA, outA := renderTo(t, in)
			syscall.Umask(0o000)
			t.Setenv("TZ", "America/Adak")
			dirB, outB := renderTo(t, in)
			syscall.Umask(old)

			if !reflect.DeepEqual(outA, outB) {
				t.Fatalf("outputs differ:\n%s\n%s", outA.Listing(), outB.Listing())
			}
			var tarA, tarB bytes.Buffer
			if err := WriteTar(t.Context(), &tarA, dirA, in.SourceDateEpoch); err != nil {
				t.Fatal(err)
			}
			if err := WriteTar(t.Context(), &tarB, dirB, in.SourceDateEpoch); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(tarA.Bytes(), tarB.Bytes()) {
				t.Fatal("tar archives of the two renders differ")
			}
			t.Logf("%s: tree sha256 %s, tar sha256 %x", profile, outA.TreeSHA256, sha256.Sum256(tarA.Bytes()))

			// Every file and directory carries the epoch and its mode.
			modes := map[string]fs.FileMode{}
			for _, f := range outA.Files {
				modes[strings.TrimPrefix(f.Path, "/")] = fs.FileMode(f.Mode)
			}
			epoch := time.Unix(in.SourceDateEpoch, 0)
			err := filepath.WalkDir(dirB, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				info, err := d.Info()
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(dirB, p)
				if !info.ModTime().Equal(epoch) {
					t.Errorf("%s: mtime %v, want %v", rel, info.ModTime(), epoch)
				}
				want := fs.FileMode(DirMode)
				if !d.IsDir() {
					want = modes[filepath.ToSlash(rel)]
				}
				if info.Mode().Perm() != want {
					t.Errorf("%s: mode %v, want %v", rel, info.Mode().Perm(), want)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestWriteTar(t *testing.T) {
	in := testInput(t, "gl-ar150")
	dir, out := renderTo(t, in)
	var buf bytes.Buffer
	if err := WriteTar(t.Context(), &buf, dir, in.SourceDateEpoch); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	var names []string
	files := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner %d:%d %q:%q, want 0:0 with empty names", h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if h.ModTime.Unix() != in.SourceDateEpoch || len(h.PAXRecords) != 0 {
			t.Errorf("%s: mtime %v, pax %v", h.Name, h.ModTime, h.PAXRecords)
		}
		if h.Typeflag == tar.TypeReg {
			files++
		}
	}
	if files != len(out.Files) {
		t.Errorf("tar has %d files, output lists %d", files, len(out.Files))
	}
	for i := 1; i < len(names); i++ {
		if strings.TrimSuffix(names[i-1], "/") >= strings.TrimSuffix(names[i], "/") {
			t.Errorf("tar entries out of order: %s before %s", names[i-1], names[i])
		}
	}

	// Anything Render would never make is refused.
	if err := os.Symlink("/etc/shadow", filepath.Join(dir, "etc", "link")); err != nil {
		t.Fatal(err)
	}
	if err := WriteTar(t.Context(), io.Discard, dir, in.SourceDateEpoch); err == nil || !strings.Contains(err.Error(), "etc/link") {
		t.Errorf("WriteTar with a symlink: %v, want an error naming etc/link", err)
	}
}

func TestRenderRefusesNonEmptyDest(t *testing.T) {
	dest := t.TempDir()
	if err := os.WriteFile(filepath.Join(dest, "stale"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Render(t.Context(), testInput(t, "gl-ar150"), dest)
	if err == nil || !strings.Contains(err.Error(), "is not empty") {
		t.Fatalf("Render into a non-empty dir: %v", err)
	}
}

func TestRenderCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Render(ctx, testInput(t, "gl-ar150"), filepath.Join(t.TempDir(), "x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Render with a cancelled context: %v", err)
	}
}

// TestConfigSemantics reads the rendered UCI files back and checks the
// settings the product's promises rest on.
func TestConfigSemantics(t *testing.T) {
	for _, profile := range deviceProfiles(t) {
		t.Run(profile, func(t *testing.T) {
			in := testInput(t, profile)
			dir, _ := renderTo(t, in)
			cfg := func(name string) *uci.File {
				b, err := os.ReadFile(filepath.Join(dir, "etc", "config", name))
				if err != nil {
					t.Fatal(err)
				}
				f, err := uci.ParseAndLint(name, name, b)
				if err != nil {
					t.Fatal(err)
				}
				return f
			}
			get := func(f *uci.File, section, option, want string) {
				t.Helper()
				s := f.Section(section)
				if s == nil {
					t.Errorf("%s: no section %q", f.Name, section)
					return
				}
				if got, _ := s.Get(option); got != want {
					t.Errorf("%s.%s.%s = %q, want %q", f.Name, section, option, got, want)
				}
			}

			dhcp := cfg("dhcp")
			if got := dhcp.Section("tor_max").List("dhcp_option"); !reflect.DeepEqual(got, []string{"3", "6"}) {
				t.Errorf("tor_max dhcp_option = %q: tor_max must get no gateway and no DNS server", got)
			}
			for _, n := range []string{"tor_off", "tor_medium"} {
				if got := dhcp.Section(n).List("dhcp_option"); got != nil {
					t.Errorf("%s dhcp_option = %q", n, got)
				}
			}
			dnsmasq := dhcp.SectionsOfType("dnsmasq")[0]
			if got := dnsmasq.List("server"); !reflect.DeepEqual(got, []string{"127.0.0.1#9053"}) {
				t.Errorf("dnsmasq servers = %q: the router must resolve only through Tor", got)
			}

			wireless := cfg("wireless")
			ifaces := wireless.SectionsOfType("wifi-iface")
			if len(ifaces) != 3 {
				t.Fatalf("%d wifi-ifaces, want 3", len(ifaces))
			}
			for _, s := range ifaces {
				if k, ok := s.Get("key"); ok {
					t.Errorf("wifi-iface %s has key %q in the image", s.Name, k)
				}
				if d, _ := s.Get("disabled"); d != "1" {
					t.Errorf("wifi-iface %s disabled=%q: must stay off until first boot sets its key", s.Name, d)
				}
			}
			get(wireless, "wifi_tor_max", "ssid", "torwrt-tor_max")
			get(wireless, "radio0", "path", in.Radio.Path)

			network := cfg("network")
			get(network, "wan", "device", in.WAN.Device)
			if got := network.SectionsOfType("device")[2].List("ports"); !reflect.DeepEqual(got, in.TorMax.Ports) {
				t.Errorf("tor_max bridge ports = %q, want %q", got, in.TorMax.Ports)
			}
			if (in.Switch.Name != "") != (len(network.SectionsOfType("switch")) == 1) {
				t.Errorf("switch sections do not match input.switch %+v", in.Switch)
			}
			for _, s := range network.SectionsOfType("interface") {
				if s.Name == "wan6" {
					t.Error("network has a wan6 interface; torwrt has no IPv6 uplink")
				}
			}

			dropbear := cfg("dropbear")
			get(dropbear, "main", "PasswordAuth", "off")
			get(dropbear, "main", "RootPasswordAuth", "off")
			get(dropbear, "main", "enable", "0")
			get(cfg("system"), "ntp", "enabled", "0")
			cfg("firewall")
		})
	}
}

func TestSSHKeysEnableDropbear(t *testing.T) {
	in := testInput(t, "gl-ar150")
	in.SSHAuthorizedKeys = []string{testSSHKey}
	dir, out := renderTo(t, in)
	b, err := os.ReadFile(filepath.Join(dir, "etc", "dropbear", "authorized_keys"))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != testSSHKey+"\n" {
		t.Errorf("authorized_keys = %q", b)
	}
	for _, f := range out.Files {
		if f.Path == "/etc/dropbear/authorized_keys" && f.Mode != 0o600 {
			t.Errorf("authorized_keys mode %#o, want 0600", f.Mode)
		}
	}
	cfg, _ := os.ReadFile(filepath.Join(dir, "etc", "config", "dropbear"))
	if !strings.Contains(string(cfg), "option enable '1'") || !strings.Contains(string(cfg), "option PasswordAuth 'off'") {
		t.Errorf("dropbear config with keys:\n%s", cfg)
	}
}

// testSSHKey is a syntactically valid ed25519 public key line.
const testSSHKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl owner@laptop"

// TestRouterConfContract renders both profiles and reads the rendered
// /etc/torwrt/verify.json the way torwrt-verify does (routerconf.Decode,
// strict, then Validate), and checks it against the Input and the other
// rendered files: the daemon, the firewall, torrc and the first-boot
// script must agree on every address and path.
func TestRouterConfContract(t *testing.T) {
	for _, profile := range deviceProfiles(t) {
		t.Run(profile, func(t *testing.T) {
			in := testInput(t, profile)
			dir, _ := renderTo(t, in)
			read := func(p string) []byte {
				t.Helper()
				b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(p, "/"))))
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			c, err := routerconf.Decode(read(routerconf.Path))
			if err != nil {
				t.Fatalf("routerconf.Decode: %v", err)
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			// Nothing is left to the daemon's defaults that the image
			// decides.
			before := *c
			c.ApplyDefaults()
			before.BoardFile = c.BoardFile // unused: board is set
			if !reflect.DeepEqual(before, *c) {
				t.Errorf("ApplyDefaults changed the rendered config: %+v -> %+v", before, *c)
			}

			if !reflect.DeepEqual(c.Mirrors, in.UpdateMirrors) || c.Threshold != in.UpdateThreshold || c.Board != in.Board {
				t.Errorf("mirrors %q threshold %d board %q; input %q %d %q", c.Mirrors, c.Threshold, c.Board, in.UpdateMirrors, in.UpdateThreshold, in.Board)
			}
			if c.KeysDir != KeysDir || c.BuildEpoch != in.SourceDateEpoch {
				t.Errorf("keys_dir %q build_epoch %d", c.KeysDir, c.BuildEpoch)
			}
			for _, k := range in.ReleaseKeys {
				if pub := read(c.KeysDir + "/" + k.Fingerprint); !bytes.Equal(pub, k.PublicKey) {
					t.Errorf("%s/%s differs from the release key", c.KeysDir, k.Fingerprint)
				}
			}
			wantListen := []string{
				strings.Split(in.TorOff.Address, "/")[0] + ":80",
				strings.Split(in.TorMedium.Address, "/")[0] + ":80",
				strings.Split(in.TorMax.Address, "/")[0] + ":80",
			}
			if !reflect.DeepEqual(c.Listen, wantListen) {
				t.Errorf("listen %q, want %q", c.Listen, wantListen)
			}
			for i, n := range in.nets() {
				got := c.Networks[i]
				want := netip.MustParsePrefix(n.Address).Masked().String()
				if got.Name != netNames[i] || !reflect.DeepEqual(got.Prefixes, []string{want}) || got.SSID != in.SSIDPrefix+"-"+netNames[i] {
					t.Errorf("networks[%d] = %+v, want %s %s", i, got, netNames[i], want)
				}
			}
			if len(c.Networks) != 3 {
				t.Errorf("%d networks", len(c.Networks))
			}
			wantSetup := routerconf.Setup{Network: "tor_max", Address: strings.Split(in.TorMax.Address, "/")[0],
				SecretsFile: routerconf.SecretsFile, DoneFile: routerconf.SetupDoneFile}
			if c.Setup == nil || *c.Setup != wantSetup {
				t.Errorf("setup %+v, want %+v", c.Setup, wantSetup)
			}
			// The first-boot script writes the file the daemon shows and
			// removes the flag the daemon checks.
			fb := string(read("/etc/uci-defaults/90-torwrt-firstboot"))
			if !strings.Contains(fb, "\nSECRETS="+c.Setup.SecretsFile+"\n") || !strings.Contains(fb, "rm -f "+c.Setup.DoneFile+"\n") ||
				!strings.Contains(fb, "rm -f "+routerconf.SetupConfirmedFile+"\n") {
				t.Errorf("first-boot script does not use %s, %s and %s", c.Setup.SecretsFile, c.Setup.DoneFile, routerconf.SetupConfirmedFile)
			}
			// The daemon, as user torwrt, writes only its state directory:
			// the done flag must be there.
			if path.Dir(c.Setup.DoneFile) != path.Dir(c.State) {
				t.Errorf("setup.done_file %s is outside the daemon's state directory %s", c.Setup.DoneFile, path.Dir(c.State))
			}
			// Tor listens where the daemon connects.
			torrc := string(read("/etc/tor/torrc"))
			for _, want := range []string{"SocksPort " + c.SOCKS, "ControlPort " + c.Control, "CookieAuthentication 1", "DataDirectory " + path.Dir(c.Cookie)} {
				if !strings.Contains(torrc, want+"\n") {
					t.Errorf("torrc lacks %q", want)
				}
			}

			// The state survives sysupgrade: keep.d lists its directory.
			keep := strings.Split(string(read("/lib/upgrade/keep.d/torwrt")), "\n")
			for _, p := range []string{path.Dir(c.State) + "/", c.Setup.SecretsFile, routerconf.SetupConfirmedFile} {
				if !slices.Contains(keep, p) {
					t.Errorf("keep.d does not list %s", p)
				}
			}
			if !slices.Contains(keep, path.Dir(c.Setup.DoneFile)+"/") && !slices.Contains(keep, c.Setup.DoneFile) {
				t.Errorf("keep.d keeps neither %s nor its directory", c.Setup.DoneFile)
			}
			// Policy never survives sysupgrade: keep.d lists no
			// configuration of the image's, in particular nothing of
			// Tor's but its bridge keys.
			for _, p := range keep {
				p = strings.TrimSpace(p)
				if p == "" || strings.HasPrefix(p, "#") {
					continue
				}
				if slices.Contains(restoreFiles, p) || strings.HasPrefix(p, "/etc/config/") ||
					(strings.HasPrefix(p, "/etc/tor/") && p != "/etc/tor/keys/") {
					t.Errorf("keep.d keeps policy across upgrades: %s", p)
				}
			}
			for _, p := range []string{"/etc/config/tor", "/etc/tor/torrc"} {
				if !slices.Contains(restoreFiles, p) {
					t.Errorf("the first-boot script does not restore %s from /rom", p)
				}
			}
			if path.Dir(c.State) != routerconf.StateDir {
				t.Errorf("state %s outside %s", c.State, routerconf.StateDir)
			}

			// The release file describes this firmware.
			rel, err := routerconf.DecodeRelease(read(c.ReleaseFile))
			if err != nil {
				t.Fatal(err)
			}
			if want := (routerconf.Release{Product: in.ProductName, Version: in.FirmwareVersion, Build: in.FirmwareBuild}); rel != want {
				t.Errorf("release %+v, want %+v", rel, want)
			}

			// The brand, and its logo where logo_file points.
			b := c.Brand
			if b == nil || b.ProductName != in.ProductName || b.Vendor != in.Brand.Vendor || b.Colors != in.Brand.Colors ||
				b.Texts.Tagline != in.Brand.Tagline || b.Texts.Footer != in.Brand.Footer || b.SupportURL != in.Brand.SupportURL || b.Language != in.Brand.Language {
				t.Errorf("brand %+v, input %+v", b, in.Brand)
			}
			if c.LogoFile != "/etc/torwrt/logo.svg" || !bytes.Equal(read(c.LogoFile), in.Brand.Logo) {
				t.Errorf("logo_file %q does not hold the brand's logo", c.LogoFile)
			}

			// procd starts the daemon with this config.
			initd := string(read("/etc/init.d/torwrt-verify"))
			if !strings.Contains(initd, `procd_set_param command "$PROG" daemon --config `+routerconf.Path+"\n") {
				t.Errorf("init script does not start the daemon with %s:\n%s", routerconf.Path, initd)
			}
		})
	}
}

// TestNoLogo: without a logo there is no logo file and no logo_file.
func TestNoLogo(t *testing.T) {
	in := testInput(t, "gl-ar150")
	in.Brand = StatusBrand{}
	dir, out := renderTo(t, in)
	for _, f := range out.Files {
		if strings.HasPrefix(f.Path, routerconf.LogoBase) {
			t.Errorf("%s rendered without a logo", f.Path)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "etc/torwrt/verify.json"))
	c, err := routerconf.Decode(b)
	if err != nil || c.Validate() != nil || c.LogoFile != "" || c.Brand.ProductName != in.ProductName {
		t.Errorf("verify.json without a logo: %v %+v", err, c)
	}
}

func TestCustomBanner(t *testing.T) {
	in := testInput(t, "gl-ar150")
	in.Banner = "  Acme Privacy Box\n\n"
	dir, _ := renderTo(t, in)
	b, err := os.ReadFile(filepath.Join(dir, "etc", "banner"))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "  Acme Privacy Box\n" {
		t.Errorf("/etc/banner = %q", b)
	}
}

// TestInitScriptSecretsMode runs the rendered init script's prepare_dirs
// (paths moved into a temporary directory, chown and chgrp recorded, not
// run) through the life of the setup flag: the secrets are the daemon
// group's until the owner confirms, root's afterwards, and stay root's
// when the daemon's user deletes its own flag.
func TestInitScriptSecretsMode(t *testing.T) {
	sh := requireTool(t, "sh", "dash")
	dir, _ := renderTo(t, testInput(t, "gl-ar150"))
	initd, err := os.ReadFile(filepath.Join(dir, "etc", "init.d", "torwrt-verify"))
	if err != nil {
		t.Fatal(err)
	}
	fn := regexp.MustCompile(`(?ms)^prepare_dirs\(\) \{\n.*?^\}\n`).Find(initd)
	if fn == nil {
		t.Fatal("init script has no prepare_dirs function")
	}
	root := t.TempDir()
	script := "VERIFY_USER=torwrt\nCAPS=" + root + "/etc/capabilities/torwrt-verify.json\n" +
		"chown() { echo \"chown $*\" >>" + root + "/log; }\nchgrp() { echo \"chgrp $*\" >>" + root + "/log; }\n" +
		strings.ReplaceAll(string(fn), "/etc/", root+"/etc/") + "prepare_dirs\n"
	secrets := root + routerconf.SecretsFile
	if err := os.MkdirAll(filepath.Dir(secrets), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secrets, []byte("ROOT_PASSWORD=x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	step := func(name string, wantMode os.FileMode, wantLog string) {
		t.Helper()
		os.Remove(root + "/log")
		if out, err := exec.Command(sh, "-c", script).CombinedOutput(); err != nil {
			t.Fatalf("%s: prepare_dirs: %v\n%s", name, err, out)
		}
		fi, err := os.Stat(secrets)
		if err != nil || fi.Mode().Perm() != wantMode {
			t.Errorf("%s: secrets file %v %v, want mode %v", name, fi.Mode(), err, wantMode)
		}
		log, _ := os.ReadFile(root + "/log")
		if !strings.Contains(string(log), wantLog) {
			t.Errorf("%s: init script ran\n%s\nwant %q", name, log, wantLog)
		}
	}
	step("before confirming", 0o640, "chgrp torwrt "+secrets)
	if _, err := os.Stat(root + routerconf.StateDir); err != nil {
		t.Fatalf("no state directory: %v", err)
	}
	// The daemon (its user owns the state directory) records the confirmation.
	if err := os.WriteFile(root+routerconf.SetupDoneFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	step("after confirming", 0o600, "chown root:root "+secrets)
	if _, err := os.Stat(root + routerconf.SetupConfirmedFile); err != nil {
		t.Errorf("no root record of the confirmation: %v", err)
	}
	// A compromised daemon removes its flag: the secrets stay root's.
	os.Remove(root + routerconf.SetupDoneFile)
	step("flag removed by the daemon", 0o600, "chown root:root "+secrets)
}

// TestProfilesInstallUjail: the init script runs the daemon as its own
// user only under ujail (/sbin/ujail, package procd-ujail); without it the
// daemon runs as root. Every current profile installs it explicitly, so
// an ImageBuilder whose defaults lack it cannot silently drop the boundary.
func TestProfilesInstallUjail(t *testing.T) {
	for _, id := range []string{"gl-ar150", "gl-mt300a", "gl-ar150-24.10", "gl-mt300a-24.10"} {
		p, err := profile.Load(filepath.Join("..", "..", "profiles"), id)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(p.Packages.Add, "procd-ujail") || slices.Contains(p.Packages.Remove, "procd-ujail") {
			t.Errorf("profile %s does not install procd-ujail (packages.add %v, remove %v)", id, p.Packages.Add, p.Packages.Remove)
		}
	}
	initd, err := os.ReadFile(filepath.Join("..", "..", "overlay", "root", "etc", "init.d", "torwrt-verify"))
	if err != nil || !bytes.Contains(initd, []byte("[ -x /sbin/ujail ]")) {
		t.Errorf("the init script no longer tests for /sbin/ujail (%v): update this test", err)
	}
}
