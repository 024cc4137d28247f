package fwimage

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// formats.md §2, copied by hand: the metadata JSON of the stock OpenWrt
// 24.10.3 GL-AR150 sysupgrade image, plus its final newline.
const glAR150JSON = `{  "metadata_version": "1.1", "compat_version": "1.0",   "supported_devices":["glinet,gl-ar150","gl-ar150"], "version": { "dist": "OpenWrt", "version": "24.10.3", "revision": "r28872-daca7c049b", "target": "ath79/generic", "board": "glinet_gl-ar150" } }` + "\n"

func glAR150() *Metadata {
	return &Metadata{
		MetadataVersion:  "1.1",
		CompatVersion:    "1.0",
		SupportedDevices: []string{"glinet,gl-ar150", "gl-ar150"},
		Version: Version{
			Dist: "OpenWrt", Version: "24.10.3", Revision: "r28872-daca7c049b",
			Target: "ath79/generic", Board: "glinet_gl-ar150",
		},
	}
}

func TestMarshalStockGLAR150(t *testing.T) {
	got, err := glAR150().MarshalStock()
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != glAR150JSON {
		t.Errorf("MarshalStock\n%q\nwant\n%q", got, glAR150JSON)
	}
	if !json.Valid(got) {
		t.Error("not valid JSON")
	}
	chunk := MetadataChunk(got)
	if !bytes.Equal(chunk[:8], make([]byte, 8)) || string(chunk[8:]) != glAR150JSON {
		t.Errorf("MetadataChunk header %x", chunk[:8])
	}
	m, raw, err := ParseMetadataChunk(chunk)
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != glAR150JSON || !reflect.DeepEqual(m, glAR150()) {
		t.Errorf("ParseMetadataChunk = %+v", m)
	}
	if !m.Supports("glinet,gl-ar150") || !m.Supports("gl-ar150") || m.Supports("glinet,gl-mt300n-v2") {
		t.Error("Supports is wrong")
	}
}

// A compat_version 1.1 image (new device names) as OpenWrt writes it: the
// new names go to new_supported_devices, supported_devices holds the
// legacy message, and a compat_message is set.
func TestMarshalStockCompat(t *testing.T) {
	m := glAR150()
	m.CompatVersion = "1.1"
	m.CompatMessage = "Config cannot be migrated"
	m.NewSupportedDevices = []string{"glinet,gl-ar150"}
	m.SupportedDevices = []string{"Please use sysupgrade -n"}
	got, err := m.MarshalStock()
	if err != nil {
		t.Fatal(err)
	}
	want := `{  "metadata_version": "1.1", "compat_version": "1.1", "compat_message": "Config cannot be migrated", "new_supported_devices": ["glinet,gl-ar150"], "supported_devices": ["Please use sysupgrade -n"],  "version": { "dist": "OpenWrt", "version": "24.10.3", "revision": "r28872-daca7c049b", "target": "ath79/generic", "board": "glinet_gl-ar150" } }` + "\n"
	if string(got) != want {
		t.Errorf("MarshalStock\n%q\nwant\n%q", got, want)
	}
	p, _, err := ParseMetadataChunk(MetadataChunk(got))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, m) {
		t.Errorf("round trip %+v", p)
	}
	if !p.Supports("glinet,gl-ar150") || p.Supports("Please use sysupgrade -n") {
		t.Error("Supports must read new_supported_devices when compat_version is not 1.0")
	}
}

func TestMarshalStockRefuses(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Metadata)
		msg  string
	}{
		{"quote", func(m *Metadata) { m.Version.Version = `24"10` }, "version.version"},
		{"backslash", func(m *Metadata) { m.Version.Board = `a\b` }, "version.board"},
		{"non-ASCII", func(m *Metadata) { m.Version.Dist = "Öpen" }, "version.dist"},
		{"newline", func(m *Metadata) { m.Version.Target = "a\nb" }, "version.target"},
		{"empty field", func(m *Metadata) { m.CompatVersion = "" }, "compat_version"},
		{"no devices", func(m *Metadata) { m.SupportedDevices = nil }, "supported_devices"},
		{"bad device", func(m *Metadata) { m.SupportedDevices = []string{"a", `"`} }, "supported_devices"},
		{"empty device", func(m *Metadata) { m.SupportedDevices = []string{""} }, "supported_devices"},
		{"new devices missing", func(m *Metadata) { m.CompatVersion = "1.1" }, "new_supported_devices"},
		{"new devices with 1.0", func(m *Metadata) { m.NewSupportedDevices = []string{"x"} }, "new_supported_devices"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := glAR150()
			tc.mod(m)
			out, err := m.MarshalStock()
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("MarshalStock = %q, %v; want an error about %s", out, err, tc.msg)
			}
		})
	}
}

func TestParseMetadataChunkErrors(t *testing.T) {
	chunk := func(h []byte, j string) []byte { return append(h, j...) }
	zero := make([]byte, 8)
	tests := []struct {
		name string
		in   []byte
		want error
		msg  string
	}{
		{"short", []byte{0, 0, 0}, ErrMalformed, "no header"},
		{"version 1", chunk([]byte{0, 0, 0, 1, 0, 0, 0, 0}, glAR150JSON), ErrMalformed, "header version 1"},
		{"not json", chunk(zero, "{"), ErrMalformed, "metadata json"},
		{"two objects", chunk(zero, glAR150JSON+glAR150JSON), ErrMalformed, "data after"},
		{"no devices", chunk(zero, `{"metadata_version":"1.1"}`), ErrMalformed, "supported_devices"},
		{"over 30 KiB", chunk(zero, `{"metadata_version":"1.1","supported_devices":["x"],"pad":"`+strings.Repeat("p", MaxMetadataLen)+`"}`), ErrTooLarge, "limit 30720"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ParseMetadataChunk(tc.in)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %v, want %v mentioning %q", err, tc.want, tc.msg)
			}
		})
	}
	// Flags are not interpreted; unknown fields are allowed.
	// LEDE 17.01.4 (ramips/mt7620, the real-ib fixture) writes no
	// metadata_version; its fwtool.sh checks supported_devices only.
	lede := `{  "supported_devices":["gl-mt300a"], "version": { "dist": "LEDE", "version": "17.01.4", "revision": "r3560-79f57e422d", "board": "ramips" } }` + "\n"
	if m, _, err := ParseMetadataChunk(chunk([]byte{0, 0, 0, 0, 0, 0, 0, 0}, lede)); err != nil || !m.Supports("gl-mt300a") || m.Supports("glinet,gl-mt300a") || m.Version.Version != "17.01.4" {
		t.Errorf("LEDE 17.01 metadata: %+v, %v", m, err)
	}
	m, _, err := ParseMetadataChunk(chunk([]byte{0, 0, 0, 0, 0, 0, 0, 9}, `{"metadata_version":"1.1","supported_devices":["x"],"future":1}`))
	if err != nil || !m.Supports("x") {
		t.Errorf("flags and unknown fields: %+v, %v", m, err)
	}
}

func FuzzParseMetadataChunk(f *testing.F) {
	f.Add(MetadataChunk([]byte(glAR150JSON)))
	f.Add(MetadataChunk([]byte(`{"metadata_version":"1.1","compat_version":"1.1","new_supported_devices":["a"],"supported_devices":["b"],"version":{}}`)))
	f.Add(MetadataChunk([]byte(`{"metadata_version":"1","supported_devices":[""]}`)))
	f.Add(MetadataChunk([]byte(`{"metadata_version":"1","compat_version":"1.0","new_supported_devices":[],"supported_devices":["a"],"version":{"dist":"a","version":"a","revision":"a","target":"a","board":"a"}}`)))
	f.Add(MetadataChunk([]byte(`{"metadata_version":"1","compat_version":"2.0","compat_message":"m","new_supported_devices":["n"],"supported_devices":["a"],"version":{"dist":"a","version":"a","revision":"a","target":"a","board":"a"}}`)))
	f.Add([]byte{0, 0, 0, 1})
	f.Add(MetadataChunk([]byte("null")))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, raw, err := ParseMetadataChunk(data)
		if err != nil {
			if m != nil || raw != nil {
				t.Fatal("result returned with an error")
			}
			return
		}
		if len(data) > MaxMetadataLen || len(data) < 8 || !bytes.Equal(raw, data[8:]) {
			t.Fatal("accepted a chunk outside the limits, or raw is not the JSON")
		}
		// metadata_version is optional (LEDE 17.01 images lack it);
		// supported_devices is not, and only under its exact name.
		if len(m.SupportedDevices) == 0 || !bytes.Contains(raw, []byte(`"supported_devices"`)) {
			t.Fatal("accepted metadata without supported_devices")
		}
		for _, d := range m.SupportedDevices {
			m.Supports(d) // must not panic
		}
		// What MarshalStock writes, ParseMetadataChunk reads back
		// unchanged, and the stock bytes are a fixed point.
		out, err := m.MarshalStock()
		if err != nil {
			return
		}
		if !json.Valid(out) || !bytes.HasSuffix(out, []byte("}\n")) {
			t.Fatalf("MarshalStock wrote invalid JSON %q", out)
		}
		m2, _, err := ParseMetadataChunk(MetadataChunk(out))
		if err != nil {
			t.Fatalf("re-parsing %q: %v", out, err)
		}
		if len(m.NewSupportedDevices) == 0 {
			m.NewSupportedDevices = nil // [] and absent are the same list
		}
		if !reflect.DeepEqual(m2, m) {
			t.Fatalf("round trip changed the metadata:\n%+v\n%+v", m, m2)
		}
		out2, err := m2.MarshalStock()
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("MarshalStock is not a fixed point: %v", err)
		}
	})
}

// encoding/json matches keys in any case, stock fwtool's jsonfilter does
// not: a board list under "Supported_Devices" is no board list on the
// router, so it is none here either (found by FuzzParseMetadataChunk).
func TestMetadataKeysMatchExactly(t *testing.T) {
	for _, doc := range []string{
		`{"metadata_version":"1.1","Supported_Devices":["glinet,gl-ar150"]}`,
		`{"metadata_version":"1.1","supported_devices":["a"],"supported_deviCes":["glinet,gl-ar150"]}`,
		`{"metadata_version":"1.1","supported_devices":["a"],"version":{"Board":"glinet_gl-ar150"}}`,
	} {
		if _, _, err := ParseMetadataChunk(MetadataChunk([]byte(doc))); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "another case") {
			t.Errorf("%s: %v, want a refusal of the case-variant key", doc, err)
		}
	}
	if _, _, err := ParseMetadataChunk(MetadataChunk([]byte(glAR150JSON))); err != nil {
		t.Fatalf("stock metadata refused: %v", err)
	}
}
