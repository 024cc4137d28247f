package uci

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	const src = `# a comment
package network

config interface 'lan'
	option device 'br-lan'  # trailing comment
	option proto static
	option ipaddr "192.168.1.1"
	list dns '1.1.1.1'
	list dns 9.9.9.9
	option empty ''
	option joined 'a b'"c d"e\ f
	option esc "say \"hi\" \\ ok"
	option quote 'it'\''s'
	option hash 'not#comment'

config device
	option name \
		'br-lan'
	option multi 'line one
line two'
`
	f, err := ParseBytes("network", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if f.Package != "network" {
		t.Errorf("package = %q", f.Package)
	}
	if len(f.Sections) != 2 {
		t.Fatalf("got %d sections, want 2", len(f.Sections))
	}
	lan := f.Section("lan")
	if lan == nil || lan.Type != "interface" || lan.Line != 4 {
		t.Fatalf("lan section = %+v", lan)
	}
	want := map[string]string{
		"device": "br-lan",
		"proto":  "static",
		"ipaddr": "192.168.1.1",
		"empty":  "",
		"joined": "a bc de f",
		"esc":    `say "hi" \ ok`,
		"quote":  "it's",
		"hash":   "not#comment",
	}
	for k, v := range want {
		got, ok := lan.Get(k)
		if !ok || got != v {
			t.Errorf("option %s = %q, %v; want %q", k, got, ok, v)
		}
	}
	if got := lan.List("dns"); !reflect.DeepEqual(got, []string{"1.1.1.1", "9.9.9.9"}) {
		t.Errorf("list dns = %q", got)
	}
	dev := f.SectionsOfType("device")
	if len(dev) != 1 || dev[0].Name != "" {
		t.Fatalf("device sections = %+v", dev)
	}
	if got, _ := dev[0].Get("name"); got != "br-lan" {
		t.Errorf("continued option name = %q", got)
	}
	if got, _ := dev[0].Get("multi"); got != "line one\nline two" {
		t.Errorf("multi-line value = %q", got)
	}
	if o := dev[0].Options[1]; o.Line != 19 {
		t.Errorf("line of multi = %d, want 19", o.Line)
	}
	if err := Lint("network", f); err != nil {
		t.Errorf("lint: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"option outside section", "option foo bar\n", "t:1: option outside of a config section"},
		{"missing value", "config x\n\toption foo\n", "t:2: option foo: missing value"},
		{"too many args", "config x\n\toption foo bar baz\n", "t:2: option foo: too many arguments"},
		{"config too many", "config a b c\n", "t:1: config: too many arguments"},
		{"config no type", "config\n", "t:1: config: missing section type"},
		{"bad section name", "config a 'b-c'\n", `t:1: config: invalid section name "b-c"`},
		{"bad option name", "config a\n\toption 'x.y' 1\n", `t:2: option: invalid name "x.y"`},
		{"unterminated single", "config a\n\toption x 'abc\n", "t:2: unterminated ' quote"},
		{"unterminated double", "config a\n\toption x \"abc\n", `t:2: unterminated " quote`},
		{"unknown keyword", "config a\n\toptoin x y\n", `t:2: unknown statement "optoin"`},
		{"crlf", "config a\r\n", "t:1: carriage return"},
		{"duplicate option", "config a\n\toption x 1\n\toption x 2\n", `t:3: option "x" already set at line 2`},
		{"option then list", "config a\n\toption x 1\n\tlist x 2\n", `t:3: list "x" already set at line 2`},
		{"late package", "config a\npackage b\n", "t:2: package: must be the first statement"},
		{"trailing backslash", "config a\n\toption x y\\", "t:2: backslash at end of file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseBytes("t", []byte(tc.src))
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
			var ue *Error
			if !errors.As(err, &ue) {
				t.Fatalf("error %T is not *uci.Error", err)
			}
		})
	}
}

func TestLint(t *testing.T) {
	for _, tc := range []struct {
		name, pkg, src string
		want           []string // substrings; none means clean
	}{
		{"clean wireless", "wireless", "config wifi-device 'radio0'\n\toption type 'mac80211'\nconfig wifi-iface\n\toption device 'radio0'\n", nil},
		{"unknown type", "network", "config interface 'lan'\nconfig interfce 'wan'\n", []string{`network:2: unknown section type "interfce" in network`}},
		{"wifi type in network", "network", "config wifi-iface\n", []string{`unknown section type "wifi-iface"`}},
		{"duplicate section", "dhcp", "config dhcp 'lan'\nconfig dhcp 'lan'\n", []string{`network:2: section "lan" already defined at line 1`}},
		{"two problems", "system", "config sytem\nconfig timeserver 'ntp'\nconfig led\nconfig foo\n", []string{`:1: unknown section type "sytem"`, `:4: unknown section type "foo"`}},
		{"package mismatch", "firewall", "package network\nconfig zone\n", []string{`package statement says "network", file is "firewall"`}},
		{"no schema", "tor", "config tor\n", []string{"no schema"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseBytes("network", []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			err = Lint(tc.pkg, f)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("lint: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("lint passed, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("lint error %q does not contain %q", err, w)
				}
			}
		})
	}
	if _, err := ParseAndLint("x", "tor", []byte("config tor\n")); !errors.Is(err, ErrNoSchema) {
		t.Errorf("ParseAndLint unknown package: %v, want ErrNoSchema", err)
	}
}

func TestQuoteRoundTrip(t *testing.T) {
	for _, v := range []string{"", "plain", "with space", "it's", `back\slash`, `"dq"`, "'", "''", "a\nb", "#hash", "$(x) `y`"} {
		src := "config a\n\toption v " + Quote(v) + "\n"
		f, err := ParseBytes("q", []byte(src))
		if err != nil {
			t.Fatalf("Quote(%q) = %s: %v", v, Quote(v), err)
		}
		if got, _ := f.Sections[0].Get("v"); got != v {
			t.Errorf("Quote(%q) parsed back as %q", v, got)
		}
	}
}

func TestSectionTypes(t *testing.T) {
	got, ok := SectionTypes("firewall")
	if !ok || got[0] != "defaults" || len(got) != 8 {
		t.Errorf("SectionTypes(firewall) = %q, %v", got, ok)
	}
	if _, ok := SectionTypes("nope"); ok {
		t.Error("SectionTypes(nope) ok")
	}
}

func FuzzParse(f *testing.F) {
	f.Add("config a 'b'\n\toption c \"d\"\n\tlist e f\\\ng\n")
	f.Add("package network\nconfig interface lan\n\toption x 'a'\\''b'\n")
	f.Fuzz(func(t *testing.T, src string) {
		file, err := ParseBytes("fuzz", []byte(src))
		if err != nil {
			return
		}
		// Whatever parses must print back (with Quote) to the same thing.
		var b strings.Builder
		for _, s := range file.Sections {
			b.WriteString("config " + Quote(s.Type))
			if s.Name != "" {
				b.WriteString(" " + Quote(s.Name))
			}
			b.WriteString("\n")
			for _, o := range s.Options {
				for _, v := range o.Values {
					b.WriteString("\t" + kindOf(o.List) + " " + o.Name + " " + Quote(v) + "\n")
				}
			}
		}
		again, err := ParseBytes("again", []byte(b.String()))
		if err != nil {
			t.Fatalf("re-parse of %q: %v", b.String(), err)
		}
		if len(again.Sections) != len(file.Sections) {
			t.Fatalf("sections %d != %d", len(again.Sections), len(file.Sections))
		}
		for i, s := range file.Sections {
			a := again.Sections[i]
			if a.Type != s.Type || a.Name != s.Name || len(a.Options) != len(s.Options) {
				t.Fatalf("section %d differs: %+v vs %+v", i, a, s)
			}
			for j, o := range s.Options {
				if !reflect.DeepEqual(a.Options[j].Values, o.Values) {
					t.Fatalf("values differ: %q vs %q", a.Options[j].Values, o.Values)
				}
			}
		}
	})
}
