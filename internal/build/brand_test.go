package build_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/brand"
	"github.com/torwrt/torwrt/internal/build"
	"github.com/torwrt/torwrt/internal/imagediff"
	"github.com/torwrt/torwrt/internal/imagesig"
	"github.com/torwrt/torwrt/internal/squashfs"
	"github.com/torwrt/torwrt/internal/usign"
)

// TestBrandsDifferOnlyWhereTheBrandSays builds both profiles with the
// default brand and with brands/acme, against the simulated ImageBuilder,
// and compares the images file by file.
//
// Both builds sign with the e2e test key and ship it as the only release
// key (Options.ReleaseKeys), so the keys are the same in both images and
// every difference must come from the brand. Then:
//
//   - only file contents differ (no modes, owners, times), and line by
//     line: every line only in the acme image holds one of acme's values
//     (hostname, SSID prefix, product name, vendor, banner, mirrors,
//     colours, logo, texts, support URL) and every line only in the
//     torwrt image one of torwrt's;
//   - every brand field that differs between the two brands must appear in
//     some added line (so a field the overlay or the router config does not
//     carry yet fails here, naming the field);
//   - /etc/banner, /etc/config/system (hostname), /etc/config/wireless
//     (SSIDs) and /etc/torwrt/verify.json (mirrors) must be among them;
//   - the header (metadata, signing key) must not differ.
//
// The test logs the list of differing files with the fields explaining
// each.
func TestBrandsDifferOnlyWhereTheBrandSays(t *testing.T) {
	f := setup(t)
	acme, err := brand.Load(filepath.Join(root, "brands"), "acme")
	if err != nil {
		t.Fatal(err)
	}
	brands := []*brand.Brand{f.brand, acme}
	for _, p := range f.profiles {
		t.Run(p.ID, func(t *testing.T) {
			var images []string
			for _, b := range brands {
				out := t.TempDir()
				o := f.options(t, p, out, t.TempDir())
				o.Brand = b
				rep, err := build.Run(t.Context(), o)
				if err != nil {
					t.Fatalf("brand %s: %v", b.ID, err)
				}
				if rep.Brand != b.ID || !strings.HasPrefix(rep.Image, b.ID+"-") {
					t.Errorf("brand %s: report brand %q, image %q: the output name and report must carry the brand", b.ID, rep.Brand, rep.Image)
				}
				img := filepath.Join(out, p.ID, rep.Image)
				checkImage(t, f, p, img)
				images = append(images, img)
			}
			diff, err := imagediff.Compare(t.Context(), images[0], images[1])
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range diff.Header {
				if !strings.HasPrefix(h, "size:") && !strings.HasPrefix(h, "rootfs offset:") {
					t.Errorf("image header differs: %s", h)
				}
			}
			a, b := rootfs(t, images[0]), rootfs(t, images[1])
			markA, markB := brandMarkers(f.brand), brandMarkers(acme)
			used := map[string]bool{}
			var paths []string
			var report strings.Builder
			for _, c := range diff.Files {
				paths = append(paths, c.Path)
				var ca, cb []byte
				if c.A != nil && c.A.SHA256 != "" {
					ca = readFile(t, a, c.Path)
				}
				if c.B != nil && c.B.SHA256 != "" {
					cb = readFile(t, b, c.Path)
				}
				if slices.ContainsFunc(c.Fields, func(f string) bool { return f != "content" && f != "size" }) {
					t.Errorf("%s: %s differ; a brand changes only file contents", c.Path, strings.Join(c.Fields, ", "))
				}
				// Line by line: every removed line must hold a torwrt
				// value and every added line an acme value.
				removed, added := diffLines(ca, cb)
				why := map[string]bool{}
				var unexplained []string
				for _, side := range []struct {
					lines []string
					marks map[string][][]byte
					sign  string
				}{{removed, markA, "-"}, {added, markB, "+"}} {
					for _, line := range side.lines {
						fields := explain(line, side.marks)
						if len(fields) == 0 {
							unexplained = append(unexplained, side.sign+line)
						}
						for _, f := range fields {
							if f == "(blank)" {
								continue
							}
							why[f] = true
							if side.sign == "+" {
								used[f] = true
							}
						}
					}
				}
				fmt.Fprintf(&report, "  %-8s %-38s %s\n", c.Kind, c.Path, strings.Join(sortedKeys(why), ", "))
				if len(unexplained) > 0 {
					t.Errorf("%s differs where no brand field says (%d lines):\n%s", c.Path, len(unexplained), strings.Join(unexplained[:min(len(unexplained), 12)], "\n"))
				}
			}
			t.Logf("%s: %d files differ between brand torwrt and brand acme:\n%s", p.ID, len(paths), report.String())
			for _, want := range []string{"/etc/banner", "/etc/config/system", "/etc/config/wireless", "/etc/torwrt/verify.json"} {
				if !slices.Contains(paths, want) {
					t.Errorf("%s does not differ between the brands; it must (hostname, SSIDs, banner, mirrors)", want)
				}
			}
			for _, field := range sortedKeys(markB) {
				if !used[field] && !slices.EqualFunc(markA[field], markB[field], bytes.Equal) {
					t.Errorf("brand field %s (acme: %q) is not rendered into any file of the image", field, shortMarkers(markB[field]))
				}
			}
		})
	}
}

// brandMarkers are the byte strings each brand field leaves in the files
// it is rendered into.
func brandMarkers(b *brand.Brand) map[string][][]byte {
	m := map[string][][]byte{
		"hostname":          {[]byte("'" + b.Hostname + "'"), []byte(`"` + b.Hostname + `"`), []byte("hostname=" + b.Hostname), []byte("hostname " + b.Hostname)},
		"ssid_prefix":       {[]byte(b.SSIDPrefix + "-tor_")},
		"product_name":      {[]byte(b.ProductName)},
		"vendor":            {[]byte(b.Vendor)},
		"support_url":       {[]byte(b.SupportURL)},
		"colors.primary":    {[]byte(b.Colors.Primary)},
		"colors.background": {[]byte(b.Colors.Background)},
		"colors.text":       {[]byte(b.Colors.Text)},
		"texts.tagline":     {[]byte(b.Texts.Tagline)},
		"texts.footer":      {[]byte(b.Texts.Footer)},
		"logo":              {[]byte(base64.StdEncoding.EncodeToString(b.LogoData))},
		"country":           {[]byte("option country '" + b.Country + "'")},
		"channel":           {[]byte(`"channel": "` + b.Channel + `"`)},
	}
	// Optional texts: only those the brand sets.
	for field, v := range map[string]string{
		"texts.tor_up": b.Texts.TorUp, "texts.tor_starting": b.Texts.TorStarting, "texts.tor_down": b.Texts.TorDown,
		"texts.net_off": b.Texts.NetOff, "texts.net_medium": b.Texts.NetMedium, "texts.net_max": b.Texts.NetMax, "texts.net_unknown": b.Texts.NetUnknown,
	} {
		if v != "" {
			m[field] = [][]byte{[]byte(v)}
		}
	}
	// Files the brand gives whole (banner, logo): each of their lines.
	for field, block := range map[string][]byte{"banner": []byte(b.BannerText), "logo": b.LogoData} {
		for _, line := range strings.Split(string(block), "\n") {
			if strings.TrimSpace(line) != "" {
				m[field] = append(m[field], []byte(line))
			}
		}
	}
	for _, u := range b.Mirrors {
		m["update_mirrors"] = append(m["update_mirrors"], []byte(u))
	}
	return m
}

// explain names the brand fields whose values appear in line. A blank
// line needs none.
func explain(line string, marks map[string][][]byte) []string {
	if strings.TrimSpace(line) == "" {
		return []string{"(blank)"}
	}
	var fields []string
	for _, field := range sortedKeys(marks) {
		for _, mk := range marks[field] {
			if len(mk) > 0 && strings.Contains(line, string(mk)) {
				fields = append(fields, field)
				break
			}
		}
	}
	return fields
}

// diffLines returns the lines only in a and only in b (a longest common
// subsequence diff; files here are small).
func diffLines(a, b []byte) (removed, added []string) {
	split := func(d []byte) []string {
		if len(d) == 0 {
			return nil
		}
		return strings.SplitAfter(string(d), "\n")
	}
	x, y := split(a), split(b)
	if len(x)*len(y) > 16<<20 {
		return x, y
	}
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	i, j := 0, 0
	for i < len(x) && j < len(y) {
		switch {
		case x[i] == y[j]:
			i, j = i+1, j+1
		case lcs[i+1][j] >= lcs[i][j+1]:
			removed = append(removed, strings.TrimSuffix(x[i], "\n"))
			i++
		default:
			added = append(added, strings.TrimSuffix(y[j], "\n"))
			j++
		}
	}
	for ; i < len(x); i++ {
		removed = append(removed, strings.TrimSuffix(x[i], "\n"))
	}
	for ; j < len(y); j++ {
		added = append(added, strings.TrimSuffix(y[j], "\n"))
	}
	return removed, added
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func shortMarkers(marks [][]byte) string {
	if len(marks) == 0 {
		return ""
	}
	s := string(marks[0])
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return s
}

// rootfs opens the squashfs root filesystem of a signed image.
func rootfs(t *testing.T, img string) *squashfs.FS {
	t.Helper()
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := usign.NewKeyring(setup(t).key.Public())
	if err != nil {
		t.Fatal(err)
	}
	res, err := imagesig.VerifyFile(img, kr, imagesig.Options{})
	if err != nil {
		t.Fatalf("%s: %v", img, err)
	}
	fsys, _, err := squashfs.OpenInImage(bytes.NewReader(data), res.Layout.PayloadEnd)
	if err != nil {
		t.Fatal(err)
	}
	return fsys
}

func readFile(t *testing.T, fsys *squashfs.FS, path string) []byte {
	t.Helper()
	s, err := readAll(fsys, strings.TrimPrefix(path, "/"))
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return []byte(s)
}
