package brand

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/status"
	"github.com/torwrt/torwrt/internal/usign"
)

var update = flag.Bool("update", false, "rewrite golden files")

const goodYAML = `id: test
product_name: Test Router
vendor: Test Vendor Ltd.
hostname: test-router
ssid_prefix: TestNet
support_url: https://support.test.example/help
language: en
banner: banner.txt
logo: logo.svg
colors:
  primary: "#0b6e4f"
  background: "#ffffff"
  text: "#111111"
texts:
  tagline: Tor for everything behind this router
  footer: Made by Test. This page loads nothing from other sites.
update_mirrors:
  - http://734sn6rcqqdblokzxjx5ebaabwk4fw2sdgzq5mtstkjodc65pnueznad.onion/releases
  - http://ufatf2lndnjmby76lnfyuds5qg42jro6q2s24iifufz6yxnoetwfocqd.onion/releases
release_keys: [release.pub]
threshold: 1
channel: stable
country: DE
`

const (
	onion1 = "http://734sn6rcqqdblokzxjx5ebaabwk4fw2sdgzq5mtstkjodc65pnueznad.onion/releases"
	onion2 = "http://ufatf2lndnjmby76lnfyuds5qg42jro6q2s24iifufz6yxnoetwfocqd.onion/releases"
)

const goodLogo = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 48 48"><circle cx="24" cy="24" r="20" fill="#0b6e4f"/></svg>`

// testKey is a fixed key so golden error text is stable.
func testKey(t *testing.T, seed string) *usign.SecretKey {
	t.Helper()
	h := sha256.Sum256([]byte(seed))
	k, err := usign.GenerateKey(bytes.NewReader(bytes.Repeat(h[:], 4)), "test release key")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// writeBrand makes brands/test under a temp root from files.
func writeBrand(t *testing.T, files map[string][]byte) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "brands")
	dir := filepath.Join(root, "test")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if data == nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func goodFiles(t *testing.T) map[string][]byte {
	return map[string][]byte{
		"brand.yaml":  []byte(goodYAML),
		"banner.txt":  []byte("  TEST ROUTER\n  all traffic through Tor\n"),
		"logo.svg":    []byte(goodLogo),
		"release.pub": testKey(t, "a").Public().Marshal(),
	}
}

func pngOf(w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = 0x80
	}
	img.Set(0, 0, color.RGBA{255, 0, 0, 255})
	var b bytes.Buffer
	png.Encode(&b, img)
	return b.Bytes()
}

func TestLoadGood(t *testing.T) {
	root := writeBrand(t, goodFiles(t))
	b, err := Load(root, "test")
	if err != nil {
		t.Fatal(err)
	}
	if b.ProductName != "Test Router" || len(b.Keys) != 1 || b.LogoType != "svg" || b.LogoWidth != 48 || !strings.Contains(b.BannerText, "TEST ROUTER") {
		t.Fatalf("%+v", b)
	}
	if got := b.SSIDs(); strings.Join(got, " ") != "TestNet-tor_off TestNet-tor_medium TestNet-tor_max" {
		t.Fatalf("SSIDs %v", got)
	}
	sb := b.Status()
	if sb.Colors.Accent != "#0b6e4f" || sb.ProductName != "Test Router" || !strings.HasPrefix(sb.LogoDataURI, "data:image/svg+xml;base64,") || sb.SupportURL != b.SupportURL {
		t.Fatalf("status brand %+v", sb)
	}
	// The status page takes the brand as it is: nothing falls back to the
	// defaults.
	page := status.NewPage(sb, nil).Brand()
	if page.LogoDataURI != sb.LogoDataURI || page.Colors.Accent != sb.Colors.Accent || page.Texts.Tagline != sb.Texts.Tagline || page.Language != "en" {
		t.Fatalf("status page replaced brand values: %+v", page)
	}
	if w := b.Warnings(); len(w) != 1 || !strings.Contains(w[0], "support_url") {
		t.Fatalf("warnings %q", w)
	}
	if b.Country != "DE" {
		t.Fatalf("country %q", b.Country)
	}
}

// A brand without a country loads (a build must then name one), and
// brand check says so.
func TestCountryOptionalButWarned(t *testing.T) {
	files := goodFiles(t)
	yamlEdit("country: DE\n", "")(t, files)
	b, err := Load(writeBrand(t, files), "test")
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(b.Warnings(), "\n")
	if b.Country != "" || !strings.Contains(w, "country: not set") || !strings.Contains(w, "--country") {
		t.Fatalf("country %q, warnings:\n%s", b.Country, w)
	}
}

func TestCountries(t *testing.T) {
	cs := Countries()
	// The officially assigned codes as of ISO 3166-1:2020 and its
	// newsletters: 249 (SS 2011, BQ/CW/SX 2010 included).
	if len(cs) != 249 {
		t.Fatalf("%d codes", len(cs))
	}
	for _, c := range []string{"DE", "US", "GB", "BR", "JP", "SS", "CW", "AX", "TW"} {
		if !IsCountry(c) || CheckCountry(c) != nil || CountryName(c) == "" {
			t.Errorf("%s refused", c)
		}
	}
	// Reserved, user-assigned, withdrawn, lower case, other lengths.
	for _, c := range []string{"UK", "EU", "EL", "XK", "AN", "YU", "CS", "ZZ", "AA", "QM", "00", "de", "De", "D", "DEU", "", " DE"} {
		if IsCountry(c) || CheckCountry(c) == nil {
			t.Errorf("%q accepted", c)
		}
	}
}

func TestLoadShippedBrands(t *testing.T) {
	for _, id := range []string{"torwrt", "acme"} {
		b, err := Load("../../brands", id)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Keys) == 0 || b.LogoData == nil || b.BannerText == "" {
			t.Fatalf("%s: %+v", id, b)
		}
		// Only public keys are committed.
		filepath.WalkDir(b.Dir, func(p string, d os.DirEntry, err error) error {
			if strings.HasSuffix(p, ".sec") {
				t.Errorf("%s: secret key committed", p)
			}
			return nil
		})
	}
	ids, err := List("../../brands")
	if err != nil || strings.Join(ids, ",") != "acme,torwrt" {
		t.Fatalf("List: %v %v", ids, err)
	}
}

func TestNotFound(t *testing.T) {
	root := writeBrand(t, goodFiles(t))
	for _, id := range []string{"nope", "../test", "Test"} {
		_, err := Load(root, id)
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%q: %v", id, err)
		}
	}
	_, err := Load(root, "nope")
	if !strings.Contains(err.Error(), "imgbuild brand init nope") || !strings.Contains(err.Error(), "known brands: test") {
		t.Errorf("%v", err)
	}
}

type badCase struct {
	name  string
	edit  func(t *testing.T, files map[string][]byte)
	file  string // the file the error must name: brand.yaml or an asset
	field string // the field it must name
	want  string // part of the message
}

func yamlEdit(old, new string) func(*testing.T, map[string][]byte) {
	return func(t *testing.T, f map[string][]byte) {
		t.Helper()
		s := string(f["brand.yaml"])
		if !strings.Contains(s, old) {
			t.Fatalf("brand.yaml has no %q", old)
		}
		f["brand.yaml"] = []byte(strings.Replace(s, old, new, 1))
	}
}

func setFile(name string, data []byte) func(*testing.T, map[string][]byte) {
	return func(t *testing.T, f map[string][]byte) { f[name] = data }
}

func both(a, b func(*testing.T, map[string][]byte)) func(*testing.T, map[string][]byte) {
	return func(t *testing.T, f map[string][]byte) { a(t, f); b(t, f) }
}

func badCases(t *testing.T) []badCase {
	sec := testKey(t, "a").Marshal()
	return []badCase{
		// Assets.
		{"missing logo", yamlEdit("logo: logo.svg", "logo: acme.svg"), "brand.yaml", "logo", "missing asset"},
		{"missing banner", setFile("banner.txt", nil), "brand.yaml", "banner", "missing asset"},
		{"no logo field", yamlEdit("logo: logo.svg\n", ""), "brand.yaml", "logo", "missing"},
		{"asset path escapes", yamlEdit("banner: banner.txt", "banner: ../banner.txt"), "brand.yaml", "banner", "plain file name"},
		{"oversize logo", setFile("logo.svg", []byte(strings.Replace(goodLogo, "</svg>", "<!--"+strings.Repeat("x", MaxLogo)+"--></svg>", 1))), "brand.yaml", "logo", "limit 12288"},
		{"oversize banner", setFile("banner.txt", bytes.Repeat([]byte("x"), MaxBanner+1)), "brand.yaml", "banner", "limit 4096"},
		{"empty banner", setFile("banner.txt", []byte{}), "brand.yaml", "banner", "empty"},
		{"banner escape sequence", setFile("banner.txt", []byte("hi \x1b[31mred\n")), "banner.txt", "banner", "control character"},
		{"logo wrong extension", both(yamlEdit("logo: logo.svg", "logo: logo.gif"), setFile("logo.gif", []byte("GIF89a"))), "logo.gif", "logo", "want an .svg or .png"},
		{"svg with script", setFile("logo.svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`)), "logo.svg", "logo", "<script> is not allowed"},
		{"svg with event handler", setFile("logo.svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`)), "logo.svg", "logo", "event handlers"},
		{"svg with external image", setFile("logo.svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"><image xlink:href="https://evil.example/x.png"/></svg>`)), "logo.svg", "logo", "external references"},
		{"svg with external css", setFile("logo.svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><rect style="fill:url(https://evil.example/p)"/></svg>`)), "logo.svg", "logo", "external references"},
		{"svg with import", setFile("logo.svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><style>@import "https://x.example/a.css";</style></svg>`)), "logo.svg", "logo", "@import"},
		{"svg with foreignObject", setFile("logo.svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><foreignObject/></svg>`)), "logo.svg", "logo", "foreignObject"},
		{"svg with entity", setFile("logo.svg", []byte(`<!DOCTYPE svg [<!ENTITY a "aaaa">]><svg xmlns="http://www.w3.org/2000/svg"/>`)), "logo.svg", "logo", "DOCTYPE"},
		{"svg without namespace", setFile("logo.svg", []byte(`<svg viewBox="0 0 4 4"/>`)), "logo.svg", "logo", "root element must be <svg xmlns="},
		{"svg not xml", setFile("logo.svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><g></svg>`)), "logo.svg", "logo", "not well-formed"},
		{"png broken", both(yamlEdit("logo: logo.svg", "logo: logo.png"), setFile("logo.png", append([]byte("\x89PNG\r\n\x1a\n"), 1, 2, 3))), "logo.png", "logo", "broken PNG"},
		{"png too small", both(yamlEdit("logo: logo.svg", "logo: logo.png"), setFile("logo.png", pngOf(8, 8))), "logo.png", "logo", "8x8 pixels"},
		{"png named svg", setFile("logo.svg", pngOf(32, 32)), "logo.svg", "logo", "not UTF-8"},
		// Colours.
		{"invalid colour", yamlEdit(`primary: "#0b6e4f"`, `primary: "#0b6e4"`), "brand.yaml", "colors.primary", `"#0b6e4" is not a colour`},
		{"colour name", yamlEdit(`text: "#111111"`, `text: black`), "brand.yaml", "colors.text", `"black" is not a colour`},
		{"unquoted colour", yamlEdit(`background: "#ffffff"`, `background: #ffffff`), "brand.yaml", "colors.background", "quote it in YAML"},
		{"unreadable text", yamlEdit(`text: "#111111"`, `text: "#eeeeee"`), "brand.yaml", "colors.text", "contrast 1.2:1"},
		{"unreadable primary", yamlEdit(`primary: "#0b6e4f"`, `primary: "#ffd700"`), "brand.yaml", "colors.primary", "need at least 4.5:1"},
		// URLs.
		{"support url plain http", yamlEdit("support_url: https://support.test.example/help", "support_url: http://support.test.example/help"), "brand.yaml", "support_url", "plain http is only allowed for .onion"},
		{"support url missing", yamlEdit("support_url: https://support.test.example/help\n", ""), "brand.yaml", "support_url", "missing"},
		{"support url javascript", yamlEdit("support_url: https://support.test.example/help", "support_url: javascript:alert(1)"), "brand.yaml", "support_url", "not an absolute URL"},
		{"mirror https", yamlEdit("- "+onion1, "- https://updates.test.example/releases"), "brand.yaml", "update_mirrors[0]", "routers fetch updates only over Tor"},
		{"mirror ftp", yamlEdit("- "+onion1, "- ftp://updates.test.example/releases"), "brand.yaml", "update_mirrors[0]", "only over Tor from http://<v3 address>.onion"},
		{"mirror plain http", yamlEdit("- "+onion1, "- http://updates.test.example/releases"), "brand.yaml", "update_mirrors[0]", "only over Tor from http://<v3 address>.onion"},
		{"mirror credentials", yamlEdit("- "+onion1, "- "+strings.Replace(onion1, "http://", "http://user:pw@", 1)), "brand.yaml", "update_mirrors[0]", "no user name"},
		{"mirror query", yamlEdit("- "+onion1, "- "+onion1+"?channel=beta"), "brand.yaml", "update_mirrors[0]", "no user name, query or fragment"},
		{"mirror relative", yamlEdit("- "+onion1, "- /releases"), "brand.yaml", "update_mirrors[0]", "not an absolute URL"},
		{"mirror onion typo", yamlEdit("734sn6rcqqdblokzxjx5ebaabwk4fw2sdgzq5mtstkjodc65pnueznad", "734sn6rcqrdblokzxjx5ebaabwk4fw2sdgzq5mtstkjodc65pnueznad"), "brand.yaml", "update_mirrors[0]", "mistyped"},
		{"mirror onion v2", yamlEdit("734sn6rcqqdblokzxjx5ebaabwk4fw2sdgzq5mtstkjodc65pnueznad", "expyuzz4wqqyqhjn"), "brand.yaml", "update_mirrors[0]", "56 characters"},
		{"mirror twice", yamlEdit("- "+onion2, "- "+onion1), "brand.yaml", "update_mirrors[1]", "listed twice"},
		{"no mirrors", yamlEdit("update_mirrors:\n  - "+onion1+"\n  - "+onion2+"\n", ""), "brand.yaml", "update_mirrors", "missing"},
		// Keys and threshold.
		{"key not usign", setFile("release.pub", []byte("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n")), "release.pub", "release_keys[0]", "not a usign public key"},
		{"key is a signature", setFile("release.pub", func() []byte { s, _ := testKey(t, "a").Sign([]byte("x")); return s.Marshal() }()), "release.pub", "release_keys[0]", "not a usign public key"},
		{"secret key listed", setFile("release.pub", sec), "release.pub", "release_keys[0]", "SECRET key"},
		{"secret key lying around", setFile("old.sec", sec), "old.sec", "release_keys", "secret key file in the brand directory"},
		{"key file missing", yamlEdit("release_keys: [release.pub]", "release_keys: [release.pub, other.pub]"), "brand.yaml", "release_keys[1]", "missing asset"},
		{"key twice", both(yamlEdit("release_keys: [release.pub]", "release_keys: [release.pub, copy.pub]"), setFile("copy.pub", testKey(t, "a").Public().Marshal())), "brand.yaml", "release_keys[1]", "also in release.pub"},
		{"no keys", yamlEdit("release_keys: [release.pub]", "release_keys: []"), "brand.yaml", "release_keys", "at least one usign public key"},
		{"threshold zero", yamlEdit("threshold: 1", "threshold: 0"), "brand.yaml", "threshold", "want between 1 and the number of release keys (1)"},
		{"threshold above keys", yamlEdit("threshold: 1", "threshold: 2"), "brand.yaml", "threshold", "want between 1 and the number of release keys (1)"},
		{"threshold not a number", yamlEdit("threshold: 1", "threshold: two"), "brand.yaml", "threshold", "cannot unmarshal"},
		// Text fields.
		{"tagline markup", yamlEdit("tagline: Tor for everything behind this router", "tagline: Tor for <b>everything</b>"), "brand.yaml", "texts.tagline", "no HTML markup"},
		{"tagline missing", yamlEdit("  tagline: Tor for everything behind this router\n", ""), "brand.yaml", "texts.tagline", "missing"},
		{"footer too long", yamlEdit("footer: Made by Test.", "footer: "+strings.Repeat("long ", 50)+"Made by Test."), "brand.yaml", "texts.footer", "at most 200"},
		{"state text control", yamlEdit("  footer:", "  tor_up: \"Tor is\\tup\"\n  footer:"), "brand.yaml", "texts.tor_up", "control characters"},
		{"net text without network", yamlEdit("  footer:", "  net_off: Normal internet, no Tor\n  footer:"), "brand.yaml", "texts.net_off", `must name the network ("tor_off")`},
		{"vendor missing", yamlEdit("vendor: Test Vendor Ltd.\n", ""), "brand.yaml", "vendor", "missing"},
		{"product name", yamlEdit("product_name: Test Router", "product_name: Test/Router™"), "brand.yaml", "product_name", "want 1 to 48 letters"},
		{"hostname", yamlEdit("hostname: test-router", "hostname: Test_Router"), "brand.yaml", "hostname", "a DNS label"},
		{"hostname dash", yamlEdit("hostname: test-router", "hostname: test-"), "brand.yaml", "hostname", "a DNS label"},
		{"ssid prefix too long", yamlEdit("ssid_prefix: TestNet", "ssid_prefix: TestNetworkWithALongName"), "brand.yaml", "ssid_prefix", "must fit 32 bytes"},
		{"language", yamlEdit("language: en", "language: english"), "brand.yaml", "language", "language tag"},
		{"channel", yamlEdit("channel: stable", "channel: Stable!"), "brand.yaml", "channel", "lowercase"},
		{"country unassigned", yamlEdit("country: DE", "country: XX"), "brand.yaml", "country", "not an officially assigned ISO 3166-1 alpha-2"},
		{"country uk", yamlEdit("country: DE", "country: UK"), "brand.yaml", "country", `the United Kingdom is "GB"`},
		{"country lowercase", yamlEdit("country: DE", "country: de"), "brand.yaml", "country", `capitals: "DE" (Germany)`},
		{"country world domain", yamlEdit("country: DE", `country: "00"`), "brand.yaml", "country", "world regulatory domain"},
		{"country alpha-3", yamlEdit("country: DE", "country: DEU"), "brand.yaml", "country", "not an officially assigned"},
		{"country withdrawn", yamlEdit("country: DE", "country: AN"), "brand.yaml", "country", "not an officially assigned"},
		{"country number", yamlEdit("country: DE", "country: 276"), "brand.yaml", "country", "not an officially assigned"},
		// Structure.
		{"id mismatch", yamlEdit("id: test", "id: acme"), "brand.yaml", "id", `"acme" does not match its directory "test"`},
		{"unknown field", yamlEdit("channel: stable", "channel: stable\nwifi_password: hunter2"), "brand.yaml", "wifi_password", "unknown field"},
		{"unknown nested field", yamlEdit(`  text: "#111111"`, "  text: \"#111111\"\n  link: \"#0000ee\""), "brand.yaml", "colors.link", "unknown field"},
		{"field twice", yamlEdit("channel: stable", "channel: stable\nchannel: beta"), "brand.yaml", "channel", "given twice"},
		{"colors not a mapping", yamlEdit("colors:\n  primary: \"#0b6e4f\"\n  background: \"#ffffff\"\n  text: \"#111111\"", `colors: "#0b6e4f"`), "brand.yaml", "colors", "want a mapping"},
		{"not yaml", setFile("brand.yaml", []byte("id: test\n  bad: [indent\n")), "brand.yaml", "(yaml)", ""},
		{"empty file", setFile("brand.yaml", []byte("# nothing\n")), "brand.yaml", "(yaml)", "want a mapping"},
	}
}

// TestBadInputs: each bad input gives an error naming the file and the
// field. The whole list of messages is a golden file to review as text.
func TestBadInputs(t *testing.T) {
	var golden strings.Builder
	for _, c := range badCases(t) {
		t.Run(c.name, func(t *testing.T) {
			files := goodFiles(t)
			c.edit(t, files)
			root := writeBrand(t, files)
			_, err := Load(root, "test")
			if err == nil {
				t.Fatal("loaded")
			}
			msg := err.Error()
			path := filepath.Join(root, "test", c.file)
			found := false
			for _, line := range strings.Split(msg, "\n") {
				if strings.HasPrefix(line, path+":") && strings.Contains(line, ": "+c.field+": ") && strings.Contains(line, c.want) {
					found = true
				}
			}
			if !found {
				t.Errorf("want an error line naming %s, field %s, with %q; got:\n%s", path, c.field, c.want, msg)
			}
			var be *Error
			if !errors.As(err, &be) {
				t.Errorf("not a *brand.Error: %T", err)
			}
			golden.WriteString("# " + c.name + "\n" + strings.ReplaceAll(msg, filepath.Dir(root), "") + "\n")
		})
	}
	file := filepath.Join("testdata", "bad-inputs.golden")
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(file, []byte(golden.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/brand -update)", err)
	}
	if golden.String() != string(want) {
		t.Errorf("error messages differ from %s; run go test ./internal/brand -update and review the diff", file)
	}
}

// One run reports every problem, each with its line.
func TestAllProblemsAtOnce(t *testing.T) {
	files := goodFiles(t)
	yamlEdit("hostname: test-router", "hostname: Bad_Host")(t, files)
	yamlEdit(`primary: "#0b6e4f"`, `primary: "#0b6e4"`)(t, files)
	yamlEdit("threshold: 1", "threshold: 3")(t, files)
	files["logo.svg"] = nil
	root := writeBrand(t, files)
	_, err := Load(root, "test")
	if err == nil {
		t.Fatal("loaded")
	}
	path := filepath.Join(root, "test", "brand.yaml")
	for _, want := range []string{path + ":4: hostname:", path + ":11: colors.primary:", path + ":9: logo:", path + ":21: threshold:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 4 {
		t.Errorf("%d problems reported, want 4:\n%v", n, err)
	}
}

func TestContrast(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want float64
	}{{"#000000", "#ffffff", 21}, {"#ffffff", "#ffffff", 1}, {"#777777", "#ffffff", 4.48}} {
		if got := Contrast(c.a, c.b); got < c.want-0.01 || got > c.want+0.01 {
			t.Errorf("Contrast(%s, %s) = %.2f, want %.2f", c.a, c.b, got, c.want)
		}
	}
}

func TestOnion(t *testing.T) {
	pub := sha256.Sum256([]byte("x"))
	addr := OnionAddress(pub[:])
	if len(addr) != 62 || checkOnion(addr) != nil || checkOnion("www."+addr) != nil {
		t.Fatalf("%s: %v", addr, checkOnion(addr))
	}
	// The Tor Project's own onion service.
	if err := checkOnion("2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wie.onion", "expyuzz4wqqyqhjn.onion", "1" + addr[1:]} {
		if checkOnion(bad) == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestCreate(t *testing.T) {
	root := filepath.Join(t.TempDir(), "brands")
	pub := testKey(t, "c").Public().Marshal()
	b, err := Create(root, Scaffold{ID: "acme-co", KeyName: "acme.pub", PublicKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	if b.ProductName != "Acme Co" || b.SSIDPrefix != "AcmeCo" || b.Hostname != "acme-co" || b.Dir != filepath.Join(root, "acme-co") {
		t.Fatalf("%+v", b)
	}
	// What Create wrote loads again, from its final place. Without a
	// country the scaffold leaves the field for the vendor to fill in.
	if again, err := Load(root, "acme-co"); err != nil || again.Country != "" || again.Channel != "stable" {
		t.Fatalf("%v %+v", err, again)
	}
	if y, _ := os.ReadFile(filepath.Join(root, "acme-co", "brand.yaml")); !strings.Contains(string(y), "# country: DE # CHANGE ME") {
		t.Errorf("scaffold lacks the country line:\n%s", y)
	}
	withCountry, err := Create(filepath.Join(t.TempDir(), "brands"), Scaffold{ID: "gb-co", KeyName: "a.pub", PublicKey: pub, Country: "GB"})
	if err != nil || withCountry.Country != "GB" {
		t.Fatalf("scaffold with country: %v %+v", err, withCountry)
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 1 {
		t.Fatalf("leftovers in %s: %v", root, entries)
	}
	for _, c := range []struct {
		s    Scaffold
		want string
	}{
		{Scaffold{ID: "acme-co", KeyName: "a.pub", PublicKey: pub}, "already exists"},
		{Scaffold{ID: "Bad", KeyName: "a.pub", PublicKey: pub}, "brand id"},
		{Scaffold{ID: "x", KeyName: "a.pub", PublicKey: testKey(t, "c").Marshal()}, "SECRET key"},
		{Scaffold{ID: "x", KeyName: "a.pub", PublicKey: []byte("junk")}, "public key"},
		{Scaffold{ID: "x", KeyName: "../a.pub", PublicKey: pub}, "file name"},
		{Scaffold{ID: "x", KeyName: "a.pub", PublicKey: pub, Primary: "#ffee00"}, "contrast"},
		{Scaffold{ID: "x", KeyName: "a.pub", PublicKey: pub, Country: "UK"}, `country: "UK"`},
	} {
		if _, err := Create(root, c.s); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.s.ID, err, c.want)
		}
	}
	if entries, _ := os.ReadDir(root); len(entries) != 1 {
		t.Fatalf("a refused Create left files: %v", entries)
	}
}
