package routerconf

import (
	"errors"
	"path"
	"strings"
	"testing"
	"time"
)

// valid is a complete config as the overlay renders it.
const valid = `{
  "mirrors": ["http://torwrtupdatesxyzabcdefghijklmnopqrstuvwxyz234567abcdefghijkl.onion/releases"],
  "channel": "stable",
  "keys_dir": "/etc/torwrt/keys",
  "threshold": 2,
  "board": "glinet,gl-ar150",
  "socks": "127.0.0.1:9050",
  "control": "127.0.0.1:9051",
  "cookie": "/var/lib/tor/control_auth_cookie",
  "state": "/etc/torwrt/state/verify-state.json",
  "release_file": "/etc/torwrt/release.json",
  "download_dir": "/tmp",
  "interval": "6h",
  "build_epoch": 1758316778,
  "listen": ["10.71.0.1:80", "10.72.0.1:80", "10.73.0.1:80"],
  "networks": [
    {"name": "tor_off", "prefixes": ["10.71.0.0/24"], "ssid": "torwrt-tor_off"},
    {"name": "tor_medium", "prefixes": ["10.72.0.0/24"]},
    {"name": "tor_max", "prefixes": ["10.73.0.0/24"]}
  ],
  "setup": {"network": "tor_max", "address": "10.73.0.1", "secrets_file": "/etc/torwrt/device-secrets", "done_file": "/etc/torwrt/state/setup-done"},
  "brand": {"product_name": "Acme Box", "colors": {"primary": "#7d4698"}, "texts": {"tagline": "Tor for all"}, "support_url": "https://example.org/help", "language": "de-CH"},
  "logo_file": "/etc/torwrt/logo.svg"
}
`

func TestDecodeValid(t *testing.T) {
	c, err := Decode([]byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Interval.Or(time.Minute) != 6*time.Hour || c.FirstCheck.Or(DefaultFirstCheck) != DefaultFirstCheck {
		t.Errorf("durations %v %v", c.Interval, c.FirstCheck)
	}
	if c.Channel != "stable" || !IsChannel("beta-2") || IsChannel("") || IsChannel("a b") {
		t.Errorf("channel %q", c.Channel)
	}
	if c.Setup.DoneFile != SetupDoneFile || c.Network("tor_max").Subnets()[0].String() != "10.73.0.0/24" {
		t.Errorf("%+v", c.Setup)
	}
	// Encode → Decode is stable.
	b, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := Encode(c2)
	if string(b) != string(b2) {
		t.Errorf("re-encoding differs:\n%s\n%s", b, b2)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Decode([]byte(`{"mirrors":["http://x.onion/"],"channel":"stable","socks":"127.0.0.1:9050"}`))
	if err != nil {
		t.Fatal(err)
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.KeysDir != KeysDir || c.State != StateFile || c.ReleaseFile != ReleasePath || c.BoardFile != BoardFile || c.Threshold != 1 {
		t.Errorf("defaults %+v", c)
	}
	if !strings.HasPrefix(c.State, StateDir+"/") {
		t.Errorf("state %s is not in %s, which keep.d preserves", c.State, StateDir)
	}
}

func TestDecodeStrict(t *testing.T) {
	for name, in := range map[string]string{
		"unknown key":        `{"mirrors":["http://x.onion/"],"socks":"127.0.0.1:9050","treshold":2}`,
		"unknown nested key": `{"mirrors":["http://x.onion/"],"socks":"127.0.0.1:9050","setup":{"network":"a","adress":"1"}}`,
		"trailing data":      `{"mirrors":["http://x.onion/"],"socks":"127.0.0.1:9050"} {}`,
		"bad duration":       `{"interval":"soon"}`,
		"negative duration":  `{"interval":"-1h"}`,
		"not an object":      `[]`,
		"too large":          `{"mirrors":["` + strings.Repeat("a", MaxSize) + `"]}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Decode([]byte(in)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestValidateRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, field string
		edit        func(c *Config)
	}{
		{"no mirrors", "mirrors", func(c *Config) { c.Mirrors = nil }},
		{"ftp mirror", "mirrors[0]", func(c *Config) { c.Mirrors = []string{"ftp://x.onion/"} }},
		{"mirror query", "mirrors[0]", func(c *Config) { c.Mirrors = []string{"http://x.onion/?a=1"} }},
		{"no socks", "socks", func(c *Config) { c.SOCKS = "" }},
		{"socks by name", "socks", func(c *Config) { c.SOCKS = "localhost:9050" }},
		{"control", "control", func(c *Config) { c.Control = "unix:tor/control" }},
		{"relative state", "state", func(c *Config) { c.State = "state.json" }},
		{"dotdot keys", "keys_dir", func(c *Config) { c.KeysDir = "/etc/../tmp/keys" }},
		{"manifest path", "manifest_name", func(c *Config) { c.ManifestName = "../m.json" }},
		{"threshold", "threshold", func(c *Config) { c.Threshold = -1 }},
		// Fail closed: a router that does not know its channel accepts no
		// manifest, so the config is refused outright.
		{"no channel", "channel", func(c *Config) { c.Channel = "" }},
		{"channel with slash", "channel", func(c *Config) { c.Channel = "stable/../beta" }},
		{"channel too long", "channel", func(c *Config) { c.Channel = strings.Repeat("s", 129) }},
		{"listen name", "listen[0]", func(c *Config) { c.Listen[0] = "router:80" }},
		{"listen twice", "listen[1]", func(c *Config) { c.Listen[1] = c.Listen[0] }},
		{"network name", "networks[0].name", func(c *Config) { c.Networks[0].Name = "Tor Off" }},
		{"network prefix", "networks[1].prefixes[0]", func(c *Config) { c.Networks[1].Prefixes = []string{"10.72.0.1"} }},
		{"networks overlap", "networks[2].prefixes[0]", func(c *Config) { c.Networks[2].Prefixes = []string{"10.0.0.0/8"} }},
		{"setup network", "setup.network", func(c *Config) { c.Setup.Network = "tor_maxx" }},
		{"setup address outside", "setup.address", func(c *Config) { c.Setup.Address = "10.71.0.1" }},
		{"setup address not served", "setup.address", func(c *Config) { c.Listen = c.Listen[:2] }},
		{"setup no secrets", "setup.secrets_file", func(c *Config) { c.Setup.SecretsFile = "" }},
		{"setup same files", "setup.done_file", func(c *Config) { c.Setup.DoneFile = c.Setup.SecretsFile }},
		{"colour", "brand.colors.primary", func(c *Config) { c.Brand.Colors.Primary = "red" }},
		{"colour injection", "brand.colors.text", func(c *Config) { c.Brand.Colors.Text = "#000;}" }},
		{"support url", "brand.support_url", func(c *Config) { c.Brand.SupportURL = "javascript:alert(1)" }},
		{"language", "brand.language", func(c *Config) { c.Brand.Language = "english" }},
		{"tagline control", "brand.texts.tagline", func(c *Config) { c.Brand.Texts.Tagline = "a\nb" }},
		{"logo type", "logo_file", func(c *Config) { c.LogoFile = "/etc/torwrt/logo.gif" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Decode([]byte(valid))
			if err != nil {
				t.Fatal(err)
			}
			tc.edit(c)
			err = c.Validate()
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate: %v, want a field error", err)
			}
			found := false
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				if errors.As(e, &fe) && fe.Field == tc.field {
					found = true
				}
			}
			if !found {
				t.Errorf("Validate: %v, want a problem with %s", err, tc.field)
			}
		})
	}
}

func TestParseListen(t *testing.T) {
	for in, want := range map[string]string{":80": "0.0.0.0:80", "10.73.0.1:80": "10.73.0.1:80", "[::1]:8080": "[::1]:8080"} {
		ap, err := ParseListen(in)
		if err != nil || ap.String() != want {
			t.Errorf("ParseListen(%q) = %v, %v; want %s", in, ap, err, want)
		}
	}
	for _, in := range []string{":0", "10.73.0.1", "host:80", ":x"} {
		if _, err := ParseListen(in); err == nil {
			t.Errorf("ParseListen(%q) accepted", in)
		}
	}
}

func TestDecodeRelease(t *testing.T) {
	r, err := DecodeRelease([]byte(`{"product":"torwrt","version":"24.10.3-torwrt42","build":42}`))
	if err != nil || r.Build != 42 || r.Product != "torwrt" {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := DecodeRelease([]byte(`{"version":"1","build":"42"}`)); err == nil {
		t.Error("string build accepted")
	}
	if _, err := DecodeRelease([]byte(`{"version":"1","build":1,"extra":1}`)); err == nil {
		t.Error("unknown key accepted")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(valid))
	f.Add([]byte(`{"mirrors":["http://x.onion/"],"socks":"127.0.0.1:9050"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil {
			return
		}
		c.ApplyDefaults()
		if c.Validate() != nil {
			return
		}
		enc, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-decoding a valid config: %v\n%s", err, enc)
		}
		if err := c2.Validate(); err != nil {
			t.Fatalf("re-decoded config does not validate: %v", err)
		}
	})
}

// The daemon creates the done file; as user torwrt it may write only its
// state directory (the init script's chown), never /etc/torwrt itself.
// The root marker is the init script's, outside the daemon's reach.
func TestSetupDoneFileInStateDir(t *testing.T) {
	if path.Dir(SetupDoneFile) != StateDir {
		t.Errorf("SetupDoneFile %s is not in the daemon's state directory %s", SetupDoneFile, StateDir)
	}
	if strings.HasPrefix(SetupConfirmedFile, StateDir+"/") || path.Dir(SetupConfirmedFile) != path.Dir(StateDir) {
		t.Errorf("SetupConfirmedFile %s must be root's, in %s, outside %s", SetupConfirmedFile, path.Dir(StateDir), StateDir)
	}
}
