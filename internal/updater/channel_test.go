package updater

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/manifest"
	"github.com/torwrt/torwrt/internal/updater/updatertest"
)

// A router follows one release channel (verify.json "channel", the
// brand's). A validly signed manifest of another channel is refused
// before it is accepted: nothing is downloaded or flashed, and the replay
// floor does not move, so the router's own channel still updates after.
func TestChannel(t *testing.T) {
	e := newEnv(t)
	img := e.image(updatertest.ImageSpec{})
	rel := updatertest.Release(img, imageName, 42)
	e.serveBytes(imageName, img)

	beta := updatertest.Manifest(10, rel)
	beta.Channel = "beta"
	e.serveBytes("release.json", updatertest.Envelope(t, beta, e.keys[0], e.keys[1]))
	res, err := e.check(e.config())
	if !errors.Is(err, ErrWrongChannel) || !IsRefusal(err) {
		t.Fatalf("beta manifest on a stable router: %v", err)
	}
	for _, want := range []string{`channel "beta"`, `follows channel "stable"`, "nothing downloaded"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if res.Status != StatusRefused {
		t.Errorf("status %q, want %q", res.Status, StatusRefused)
	}
	if r := e.requestsFor(imageName); len(r) != 0 {
		t.Errorf("image fetched for a manifest of another channel: %+v", r)
	}
	if f := updatertest.FlashCalls(t, e.sysLog); len(f) != 0 {
		t.Fatalf("flashed: %v", f)
	}
	st, _, err := LoadState(e.state)
	if err != nil {
		t.Fatal(err)
	}
	if st.Manifest.Sequence != 0 {
		t.Errorf("the beta manifest moved the replay floor to sequence %d", st.Manifest.Sequence)
	}

	// The stable manifest, with a lower sequence than beta's: accepted and
	// installed.
	e.serveBytes("release.json", updatertest.Envelope(t, updatertest.Manifest(5, rel), e.keys[0], e.keys[1]))
	res, err = e.check(e.config())
	if err != nil || res.Status != StatusInstalled {
		t.Fatalf("stable manifest on a stable router: %v %+v", err, res)
	}
	if f := updatertest.FlashCalls(t, e.sysLog); len(f) != 1 {
		t.Fatalf("flash calls %v, want one", f)
	}
}

// A manifest without a channel is refused as malformed (fail closed):
// the router cannot tell which channel it is for.
func TestChannelMissing(t *testing.T) {
	e := newEnv(t)
	img := e.image(updatertest.ImageSpec{})
	e.serveBytes(imageName, img)
	p, err := manifest.Encode(updatertest.Manifest(10, updatertest.Release(img, imageName, 42)))
	if err != nil {
		t.Fatal(err)
	}
	for name, payload := range map[string][]byte{
		"no channel key": bytes.Replace(p, []byte(`"channel":"stable",`), nil, 1),
		"empty channel":  bytes.Replace(p, []byte(`"channel":"stable"`), []byte(`"channel":""`), 1),
	} {
		t.Run(name, func(t *testing.T) {
			if bytes.Equal(payload, p) {
				t.Fatal("payload unchanged")
			}
			env := &manifest.Envelope{Signed: payload}
			for _, k := range e.keys[:2] {
				s, err := k.Sign(payload)
				if err != nil {
					t.Fatal(err)
				}
				env.Signatures = append(env.Signatures, manifest.Signature{KeyID: s.Fingerprint, Sig: s})
			}
			b, err := env.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			e.serveBytes("release.json", b)
			_, err = e.check(e.config())
			if !errors.Is(err, manifest.ErrMalformed) {
				t.Fatalf("manifest without channel: %v", err)
			}
			if r := e.requestsFor(imageName); len(r) != 0 {
				t.Errorf("image fetched: %+v", r)
			}
			if f := updatertest.FlashCalls(t, e.sysLog); len(f) != 0 {
				t.Fatalf("flashed: %v", f)
			}
		})
	}
}

// A router that does not know its channel accepts no manifest: New
// refuses the configuration.
func TestChannelRequired(t *testing.T) {
	_, kr := updatertest.Keys(t, 1, "k")
	cfg := Config{Mirrors: []string{mirror}, Keys: kr, Threshold: 1, Board: "b", SOCKSAddr: "127.0.0.1:9050", StatePath: "/x"}
	if _, err := New(cfg); !errors.Is(err, ErrConfiguration) || !strings.Contains(err.Error(), "channel") {
		t.Fatalf("New without channel: %v", err)
	}
	cfg.Channel = "stable"
	if _, err := New(cfg); err != nil {
		t.Fatalf("New with channel: %v", err)
	}
}
