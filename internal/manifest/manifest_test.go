package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/torwrt/torwrt/internal/usign"
)

// detReader is a deterministic byte stream, so test keys are the same on
// every run and on every architecture.
type detReader struct {
	seed []byte
	n    uint64
	buf  []byte
}

func (r *detReader) Read(p []byte) (int, error) {
	for len(r.buf) < len(p) {
		var c [8]byte
		binary.BigEndian.PutUint64(c[:], r.n)
		r.n++
		h := sha256.Sum256(append(append([]byte{}, r.seed...), c[:]...))
		r.buf = append(r.buf, h[:]...)
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// addSig signs env's payload with k, as release.Sign does with a
// signer.Signer, and adds the signature.
func addSig(env *Envelope, k *usign.SecretKey) error {
	sig, err := k.Sign(env.Signed)
	if err != nil {
		return err
	}
	return env.AddSignature(sig)
}

func testKeys(t testing.TB, n int, seed string) ([]*usign.SecretKey, *usign.Keyring) {
	t.Helper()
	r := &detReader{seed: []byte(seed)}
	var secs []*usign.SecretKey
	kr, _ := usign.NewKeyring()
	for i := 0; i < n; i++ {
		k, err := usign.GenerateKey(r, "test key")
		if err != nil {
			t.Fatal(err)
		}
		secs = append(secs, k)
		if err := kr.Add(k.Public()); err != nil {
			t.Fatal(err)
		}
	}
	return secs, kr
}

var t0 = time.Date(2025, 11, 1, 12, 0, 0, 0, time.UTC)

func testManifest() *Manifest {
	return &Manifest{
		Schema: 1, Channel: "stable", IssuedAt: t0, NotAfter: t0.Add(7 * 24 * time.Hour), Sequence: 10,
		Releases: []Release{{
			Profile: "gl-ar150", Board: []string{"glinet,gl-ar150", "gl-ar150"}, Version: "24.10.3-torwrt2", Build: 42,
			Image: "torwrt-gl-ar150-sysupgrade.bin", Size: 1234, SHA256: strings.Repeat("ab", 32),
			TorVersion: "0.4.8.13", MinVersion: 40, Rollout: Rollout{Group: "default", Priority: 50, SpreadHours: 24},
		}, {
			Profile: "gl-mt300a", Board: []string{"glinet,gl-mt300a"}, Version: "24.10.3-torwrt2", Build: 42,
			Image: "torwrt-gl-mt300a-sysupgrade.bin", Size: 2345, SHA256: strings.Repeat("cd", 32),
			TorVersion: "0.4.8.13", MinVersion: 1, Rollout: Rollout{Group: "default", Priority: 100},
		}},
	}
}

func signed(t testing.TB, m *Manifest, keys ...*usign.SecretKey) []byte {
	t.Helper()
	env, err := NewEnvelope(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if err := addSig(env, k); err != nil {
			t.Fatal(err)
		}
	}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// envelopeWith builds an envelope from raw parts, bypassing Sign's checks,
// the way an attacker would.
func envelopeWith(payload []byte, sigs ...*usign.Signature) []byte {
	var b strings.Builder
	b.WriteString(`{"signed":"` + base64.StdEncoding.EncodeToString(payload) + `","signatures":[`)
	for i, s := range sigs {
		if i > 0 {
			b.WriteString(",")
		}
		text := strings.ReplaceAll(string(s.Marshal()), "\n", `\n`)
		b.WriteString(`{"keyid":"` + s.Fingerprint.String() + `","sig":"` + text + `"}`)
	}
	b.WriteString("]}\n")
	return []byte(b.String())
}

func TestEncodeGolden(t *testing.T) {
	p, err := Encode(testManifest())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"schema":1,"channel":"stable","issued_at":"2025-11-01T12:00:00Z","not_after":"2025-11-08T12:00:00Z","sequence":10,"releases":[` +
		`{"profile":"gl-ar150","board":["glinet,gl-ar150","gl-ar150"],"version":"24.10.3-torwrt2","build":42,"image":"torwrt-gl-ar150-sysupgrade.bin","size":1234,"sha256":"` + strings.Repeat("ab", 32) + `","tor_version":"0.4.8.13","min_version":40,"rollout":{"group":"default","priority":50,"spread_hours":24}},` +
		`{"profile":"gl-mt300a","board":["glinet,gl-mt300a"],"version":"24.10.3-torwrt2","build":42,"image":"torwrt-gl-mt300a-sysupgrade.bin","size":2345,"sha256":"` + strings.Repeat("cd", 32) + `","tor_version":"0.4.8.13","min_version":1,"rollout":{"group":"default","priority":100,"spread_hours":0}}]}` + "\n"
	if string(p) != want {
		t.Fatalf("Encode:\n%s\nwant:\n%s", p, want)
	}
	m, err := DecodeManifest(p)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Encode(m)
	if !bytes.Equal(again, p) {
		t.Fatal("decode/encode not stable")
	}
}

func TestVerify(t *testing.T) {
	secs, kr := testKeys(t, 3, "trusted")
	stranger, _ := testKeys(t, 1, "stranger")
	now := t0.Add(time.Hour)
	good := signed(t, testManifest(), secs[0], secs[1])
	payload, _ := Encode(testManifest())
	sig0, _ := secs[0].Sign(payload)
	zero := &usign.Signature{Fingerprint: secs[1].Fingerprint}
	strangerSig, _ := stranger[0].Sign(payload)
	// A signature by a trusted key over other bytes.
	otherSig, _ := secs[1].Sign([]byte("something else"))

	older := testManifest()
	older.Sequence = 9
	olderIssued := testManifest()
	olderIssued.Sequence = 11
	olderIssued.IssuedAt = t0.Add(-time.Hour)
	sameSeqOther := testManifest()
	sameSeqOther.Channel = "beta"
	nonCanonical := bytes.Replace(payload, []byte(`"schema":1,`), []byte(`"schema": 1,`), 1)
	unknownField := bytes.Replace(payload, []byte(`"schema":1,`), []byte(`"schema":1,"x":1,`), 1)
	foldedKey := bytes.Replace(payload, []byte(`"channel"`), []byte(`"CHANNEL"`), 1)
	dupKey := bytes.Replace(payload, []byte(`"channel":"stable",`), []byte(`"channel":"stable","channel":"stable",`), 1)
	sign2 := func(p []byte) []byte {
		a, _ := secs[0].Sign(p)
		b, _ := secs[1].Sign(p)
		return envelopeWith(p, a, b)
	}
	accepted := State{Sequence: 10, IssuedAt: t0}

	tests := []struct {
		name string
		in   []byte
		st   State
		now  time.Time
		want error
	}{
		{"ok", good, State{}, now, nil},
		{"ok 3 of 3", signed(t, testManifest(), secs...), State{}, now, nil},
		{"same manifest again", good, State{Sequence: 10, IssuedAt: t0, Digest: hexSum(payload)}, now, nil},
		{"one signature", signed(t, testManifest(), secs[0]), State{}, now, ErrThreshold},
		{"same key twice", envelopeWith(payload, sig0, sig0), State{}, now, ErrThreshold},
		{"unknown key not counted", envelopeWith(payload, sig0, strangerSig), State{}, now, ErrThreshold},
		{"all-zero signature", envelopeWith(payload, sig0, zero), State{}, now, ErrThreshold},
		{"signature over other bytes", envelopeWith(payload, sig0, otherSig), State{}, now, ErrThreshold},
		{"unsigned", envelopeWith(payload), State{}, now, ErrThreshold},
		{"expired", good, State{}, t0.Add(8 * 24 * time.Hour), ErrExpired},
		{"lower sequence", signed(t, older, secs[0], secs[1]), accepted, now, ErrReplay},
		{"older issued_at", signed(t, olderIssued, secs[0], secs[1]), accepted, now, ErrReplay},
		{"same sequence other content", signed(t, sameSeqOther, secs[0], secs[1]), State{Sequence: 10, IssuedAt: t0, Digest: hexSum(payload)}, now, ErrReplay},
		{"too large", append(good, bytes.Repeat([]byte(" "), MaxSize)...), State{}, now, ErrTooLarge},
		{"malformed json", []byte(`{"signed":`), State{}, now, ErrMalformed},
		{"not json", []byte("\x00\x01"), State{}, now, ErrMalformed},
		{"empty", nil, State{}, now, ErrMalformed},
		{"trailing data", append(append([]byte{}, good...), []byte("{}")...), State{}, now, ErrMalformed},
		{"envelope unknown key", []byte(strings.Replace(string(good), `{"signed"`, `{"x":1,"signed"`, 1)), State{}, now, ErrMalformed},
		{"envelope duplicate key", []byte(strings.Replace(string(good), `{"signed"`, `{"signatures":[],"signed"`, 1)), State{}, now, ErrMalformed},
		{"envelope folded key", []byte(strings.Replace(string(good), `{"signed"`, `{"Signed"`, 1)), State{}, now, ErrMalformed},
		{"keyid mismatch", []byte(strings.Replace(string(good), `"keyid":"`+secs[0].Fingerprint.String(), `"keyid":"`+secs[2].Fingerprint.String(), 1)), State{}, now, ErrMalformed},
		{"non-canonical payload", sign2(nonCanonical), State{}, now, ErrMalformed},
		{"unknown payload field", sign2(unknownField), State{}, now, ErrMalformed},
		{"case-folded payload key", sign2(foldedKey), State{}, now, ErrMalformed},
		{"duplicate payload key", sign2(dupKey), State{}, now, ErrMalformed},
		{"schema 2", sign2(bytes.Replace(payload, []byte(`"schema":1`), []byte(`"schema":2`), 1)), State{}, now, ErrBadSchema},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Verify(tc.in, kr, 2, tc.now, tc.st)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if m.Sequence != 10 || len(m.Releases) != 2 {
					t.Fatalf("manifest = %+v", m)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
			if m != nil {
				t.Fatal("manifest returned with an error")
			}
			t.Logf("refused: %v", err)
		})
	}
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	const hexd = "0123456789abcdef"
	out := make([]byte, 64)
	for i, c := range s {
		out[2*i], out[2*i+1] = hexd[c>>4], hexd[c&15]
	}
	return string(out)
}

func TestVerifyConfig(t *testing.T) {
	secs, kr := testKeys(t, 2, "trusted")
	good := signed(t, testManifest(), secs...)
	for _, th := range []int{0, -1, 3} {
		if _, err := Verify(good, kr, th, t0, State{}); !errors.Is(err, ErrConfig) {
			t.Errorf("threshold %d: %v, want ErrConfig", th, err)
		}
	}
	if _, err := Verify(good, kr, 1, time.Time{}, State{}); !errors.Is(err, ErrConfig) {
		t.Errorf("zero now: %v", err)
	}
}

func TestStateNext(t *testing.T) {
	secs, kr := testKeys(t, 2, "trusted")
	v, err := Check(signed(t, testManifest(), secs...), kr, 2, t0, State{})
	if err != nil {
		t.Fatal(err)
	}
	st := State{}.Next(v)
	if st.Sequence != 10 || !st.IssuedAt.Equal(t0) || len(st.Digest) != 64 {
		t.Fatalf("state %+v", st)
	}
	if len(v.Keys) != 2 {
		t.Fatalf("keys %v", v.Keys)
	}
	// The same envelope is accepted again against the state it produced.
	if _, err := Check(signed(t, testManifest(), secs...), kr, 2, t0, st); err != nil {
		t.Fatal(err)
	}
}

func TestSignRefusesSameKeyTwice(t *testing.T) {
	secs, _ := testKeys(t, 1, "trusted")
	env, _ := NewEnvelope(testManifest())
	if err := addSig(env, secs[0]); err != nil {
		t.Fatal(err)
	}
	if err := addSig(env, secs[0]); err == nil {
		t.Fatal("second signature by one key accepted")
	}
}

func TestValidate(t *testing.T) {
	mut := func(f func(m *Manifest)) *Manifest { m := testManifest(); f(m); return m }
	bad := map[string]*Manifest{
		"no channel":        mut(func(m *Manifest) { m.Channel = "" }),
		"slash in channel":  mut(func(m *Manifest) { m.Channel = "a/b" }),
		"lifetime too long": mut(func(m *Manifest) { m.NotAfter = m.IssuedAt.Add(MaxLifetime + time.Second) }),
		"not_after first":   mut(func(m *Manifest) { m.NotAfter = m.IssuedAt }),
		"fractional second": mut(func(m *Manifest) { m.IssuedAt = m.IssuedAt.Add(time.Millisecond) }),
		"sequence 0":        mut(func(m *Manifest) { m.Sequence = 0 }),
		"image path":        mut(func(m *Manifest) { m.Releases[0].Image = "../etc/passwd" }),
		"image dotfile":     mut(func(m *Manifest) { m.Releases[0].Image = ".x" }),
		"image dash":        mut(func(m *Manifest) { m.Releases[0].Image = "-x" }),
		"image duplicate":   mut(func(m *Manifest) { m.Releases[1].Image = m.Releases[0].Image }),
		"upper hex":         mut(func(m *Manifest) { m.Releases[0].SHA256 = strings.Repeat("AB", 32) }),
		"short hash":        mut(func(m *Manifest) { m.Releases[0].SHA256 = "ab" }),
		"size 0":            mut(func(m *Manifest) { m.Releases[0].Size = 0 }),
		"size huge":         mut(func(m *Manifest) { m.Releases[0].Size = MaxImageSize + 1 }),
		"no board":          mut(func(m *Manifest) { m.Releases[0].Board = nil }),
		"board space":       mut(func(m *Manifest) { m.Releases[0].Board = []string{"a b"} }),
		"floor above build": mut(func(m *Manifest) { m.Releases[0].MinVersion = 43 }),
		"priority 101":      mut(func(m *Manifest) { m.Releases[0].Rollout.Priority = 101 }),
		"spread negative":   mut(func(m *Manifest) { m.Releases[0].Rollout.SpreadHours = -1 }),
		"build 0":           mut(func(m *Manifest) { m.Releases[0].Build = 0; m.Releases[0].MinVersion = 0 }),
	}
	for name, m := range bad {
		if _, err := Encode(m); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Encode: %v, want ErrMalformed", name, err)
		}
	}
}

func TestSelect(t *testing.T) {
	m := testManifest()
	r, err := Select(m, "gl-ar150", 41)
	if err != nil || r.Image != "torwrt-gl-ar150-sysupgrade.bin" {
		t.Fatalf("Select: %v %v", r, err)
	}
	cases := []struct {
		board     string
		installed uint64
		want      error
	}{
		{"glinet,gl-ar300m", 1, ErrWrongBoard},
		{"gl-ar150", 42, ErrUpToDate},
		{"gl-ar150", 43, ErrRollback},
	}
	for _, c := range cases {
		if _, err := Select(m, c.board, c.installed); !errors.Is(err, c.want) {
			t.Errorf("Select(%s, %d): %v, want %v", c.board, c.installed, err, c.want)
		}
	}
	if f := Floor(m, "gl-ar150"); f != 40 {
		t.Errorf("Floor = %d", f)
	}
}

func TestRolloutDelay(t *testing.T) {
	r := Rollout{Priority: 0, SpreadHours: 10}
	if d := r.Delay(0.5); d != 5*time.Hour {
		t.Errorf("delay %v", d)
	}
	r.Priority = 50
	if d := r.Delay(0.5); d != 150*time.Minute {
		t.Errorf("delay %v", d)
	}
	r.Priority = 100
	if d := r.Delay(0.99); d != 0 {
		t.Errorf("urgent delay %v", d)
	}
}
