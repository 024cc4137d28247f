package overlay

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

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
	for _, profile := range Profiles() {
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
	for _, profile := range Profiles() {
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
	for _, profile := range Profiles() {
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

func TestDaemonConfig(t *testing.T) {
	in := testInput(t, "gl-mt300a")
	dir, _ := renderTo(t, in)
	b, err := os.ReadFile(filepath.Join(dir, "etc", "torwrt", "verify.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got daemonConfig
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.KeysDir != KeysDir || got.Update.Threshold != 2 || !reflect.DeepEqual(got.Update.Mirrors, in.UpdateMirrors) {
		t.Errorf("verify.json = %+v", got)
	}
	if got.Setup.Address != "10.73.0.1" || got.BuildEpoch != testEpoch || got.Board != "glinet,gl-mt300a" {
		t.Errorf("verify.json = %+v", got)
	}
	for _, k := range in.ReleaseKeys {
		for _, d := range []string{"etc/opkg/keys", "etc/torwrt/keys"} {
			pub, err := os.ReadFile(filepath.Join(dir, d, k.Fingerprint))
			if err != nil || !bytes.Equal(pub, k.PublicKey) {
				t.Errorf("%s/%s: %v", d, k.Fingerprint, err)
			}
		}
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
