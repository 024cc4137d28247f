package release_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"testing"

	"github.com/torwrt/torwrt/internal/manifest"
	"github.com/torwrt/torwrt/internal/release"
	"github.com/torwrt/torwrt/internal/usign"
)

// fuzzKeys returns n usign keys made from fixed seeds, so the seed corpus
// and any crasher found with it are the same on every run.
func fuzzKeys(tb testing.TB, label string, n int) []*usign.SecretKey {
	tb.Helper()
	var out []*usign.SecretKey
	for i := range n {
		var r []byte
		for j := 0; len(r) < 40; j++ {
			s := sha256.Sum256([]byte("torwrt fuzz " + label + " " + strconv.Itoa(i) + " " + strconv.Itoa(j)))
			r = append(r, s[:]...)
		}
		k, err := usign.GenerateKey(bytes.NewReader(r), label+" "+strconv.Itoa(i))
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, k)
	}
	return out
}

func fuzzPubs(ks ...*usign.SecretKey) []*usign.PublicKey {
	var out []*usign.PublicKey
	for _, k := range ks {
		out = append(out, k.Public())
	}
	return out
}

// fuzzSign signs an unsigned key list envelope with each key.
func fuzzSign(tb testing.TB, unsigned []byte, ks ...*usign.SecretKey) []byte {
	tb.Helper()
	env, err := manifest.Decode(unsigned, manifest.MaxSize)
	if err != nil {
		tb.Fatal(err)
	}
	for _, k := range ks {
		if err := addSig(env, k); err != nil {
			tb.Fatal(err)
		}
	}
	out, err := env.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// keyListCorpus is a signed root (version 1, 2 of a, b, c), a signed
// rotation to version 2 (2 of a, b, d, signed by a, b and d), their
// payloads, and every payload any fuzz key signed.
type keyListCorpus struct {
	root, rotation, rootPayload, rotPayload []byte
	v1, v2                                  *release.KeyList
	signed                                  map[string]bool
}

func newKeyListCorpus(tb testing.TB) *keyListCorpus {
	ks := fuzzKeys(tb, "release", 4)
	a, b, c, d := ks[0], ks[1], ks[2], ks[3]
	kc := &keyListCorpus{signed: map[string]bool{}}
	var err error
	kc.v1, err = release.NewKeyList(1, 2, fuzzPubs(a, b, c), map[string]string{a.Fingerprint.String(): "alice"})
	if err != nil {
		tb.Fatal(err)
	}
	rootEnv, err := release.NewKeyListEnvelope(kc.v1)
	if err != nil {
		tb.Fatal(err)
	}
	kc.root = fuzzSign(tb, rootEnv, a, b)
	kc.rootPayload, _ = kc.v1.Encode()
	next, v2, err := release.Rotate(kc.v1, fuzzPubs(a, b, d), 2, nil)
	if err != nil {
		tb.Fatal(err)
	}
	kc.v2 = v2
	kc.rotation = fuzzSign(tb, next, a, b, d)
	kc.rotPayload, _ = v2.Encode()
	kc.signed[string(kc.rootPayload)] = true
	kc.signed[string(kc.rotPayload)] = true
	return kc
}

// countValid counts the distinct Ed25519 keys of kl whose signature on
// env verifies, checked here rather than by the package.
func countValid(tb testing.TB, env *manifest.Envelope, kl *release.KeyList) int {
	tb.Helper()
	byFP := map[usign.Fingerprint]ed25519.PublicKey{}
	for _, k := range kl.Keys {
		pub, err := usign.ParsePublicKey([]byte(k.Public))
		if err != nil {
			tb.Fatalf("accepted list has a bad key: %v", err)
		}
		byFP[pub.Fingerprint] = pub.Key
	}
	seen := map[string]bool{}
	for _, s := range env.Signatures {
		pub, ok := byFP[s.Sig.Fingerprint]
		if ok && ed25519.Verify(pub, env.Signed, s.Sig.Sig[:]) {
			seen[string(pub)] = true
		}
	}
	return len(seen)
}

// FuzzDecodeKeyList: DecodeKeyList never panics; an accepted list
// validates, is its own canonical encoding, decodes again to the same
// bytes, and gives a keyring of exactly its keys.
func FuzzDecodeKeyList(f *testing.F) {
	kc := newKeyListCorpus(f)
	for _, p := range [][]byte{kc.rootPayload, kc.rotPayload} {
		f.Add(p)
		f.Add(p[:len(p)/2])
		f.Add(bytes.TrimSuffix(p, []byte("\n")))
		f.Add(append(bytes.Clone(p), '\n'))
		f.Add(bytes.Replace(p, []byte(`"threshold":2`), []byte(`"threshold":0`), 1))
		f.Add(bytes.Replace(p, []byte(`"threshold":2`), []byte(`"threshold":4`), 1))
		f.Add(bytes.Replace(p, []byte(`"version":`), []byte(`"Version":`), 1))
		f.Add(bytes.Replace(p, []byte(`"holder":"alice"`), []byte(`"holder":"al\u0069ce"`), 1))
	}
	f.Add([]byte(`{"type":"torwrt-keys","version":1,"threshold":1,"keys":[]}` + "\n"))
	f.Add([]byte(`{"type":"torwrt-keys","version":0,"threshold":1,"keys":null}` + "\n"))
	f.Add([]byte(`null`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, payload []byte) {
		kl, err := release.DecodeKeyList(payload)
		if err != nil {
			if kl != nil {
				t.Fatal("key list returned with an error")
			}
			if !errors.Is(err, release.ErrKeyList) {
				t.Fatalf("error does not wrap ErrKeyList: %v", err)
			}
			return
		}
		if err := kl.Validate(); err != nil {
			t.Fatalf("accepted list does not validate: %v", err)
		}
		out, err := kl.Encode()
		if err != nil {
			t.Fatalf("Encode of an accepted list: %v", err)
		}
		if !bytes.Equal(out, payload) {
			t.Fatalf("accepted a non-canonical payload:\n%q\n%q", payload, out)
		}
		again, err := release.DecodeKeyList(out)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if out2, _ := again.Encode(); !bytes.Equal(out, out2) {
			t.Fatal("encoding not stable")
		}
		kr, err := kl.Keyring()
		if err != nil {
			t.Fatalf("Keyring of an accepted list: %v", err)
		}
		if kr.Len() != len(kl.Keys) {
			t.Fatalf("keyring has %d keys, the list %d", kr.Len(), len(kl.Keys))
		}
	})
}

// FuzzVerifyKeyChain: VerifyRootKeyList and VerifyRotation never panic on
// any root and rotation file; whatever they accept is a payload a fuzz key
// really signed, validates, and carries the thresholds (counted here) of
// its own keys and, for a rotation, of the previous version's keys.
func FuzzVerifyKeyChain(f *testing.F) {
	kc := newKeyListCorpus(f)
	ks := fuzzKeys(f, "release", 4)
	a, b, d := ks[0], ks[1], ks[3]
	rootEnv, _ := release.NewKeyListEnvelope(kc.v1)
	next, _, _ := release.Rotate(kc.v1, fuzzPubs(a, b, d), 2, nil)
	f.Add(kc.root, kc.rotation)
	f.Add(kc.root, kc.root)
	f.Add(kc.rotation, kc.rotation)
	f.Add(kc.root, fuzzSign(f, next, a, b))     // old threshold only: d never signed
	f.Add(kc.root, fuzzSign(f, next, a, d))     // one old key
	f.Add(fuzzSign(f, rootEnv, a), kc.rotation) // root below its threshold
	f.Add(rootEnv, kc.rotation)
	f.Add(kc.root[:len(kc.root)/2], kc.rotation[:len(kc.rotation)/3])
	f.Add(kc.root, bytes.Replace(kc.rotation, []byte(`"signatures":[`), []byte(`"signatures":[{"keyid":"0000000000000000","sig":"x"},`), 1))
	f.Add([]byte(`{"signed":"","signatures":[]}`), []byte(`{}`))
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, root, rotation []byte) {
		kl, err := release.VerifyRootKeyList(root)
		if err != nil {
			if kl != nil {
				t.Fatal("root returned with an error")
			}
			return
		}
		renv := checkAccepted(t, kc, root, kl)
		if n := countValid(t, renv, kl); n < kl.Threshold {
			t.Fatalf("root accepted with %d valid signatures of its own keys, threshold %d", n, kl.Threshold)
		}
		nl, err := release.VerifyRotation(kl, rotation)
		if err != nil {
			if nl != nil {
				t.Fatal("rotation returned with an error")
			}
			return
		}
		if nl.Version != kl.Version+1 {
			t.Fatalf("rotation from version %d to %d", kl.Version, nl.Version)
		}
		env := checkAccepted(t, kc, rotation, nl)
		if n := countValid(t, env, kl); n < kl.Threshold {
			t.Fatalf("rotation accepted with %d valid signatures of the trusted keys, threshold %d", n, kl.Threshold)
		}
		if n := countValid(t, env, nl); n < nl.Threshold {
			t.Fatalf("rotation accepted with %d valid signatures of its own keys, threshold %d", n, nl.Threshold)
		}
		// The chain function agrees with the two steps.
		last, err := release.VerifyKeyChain(root, rotation)
		if err != nil {
			t.Fatalf("VerifyKeyChain refuses what the steps accept: %v", err)
		}
		if a, _ := last.Encode(); !bytes.Equal(a, env.Signed) {
			t.Fatal("VerifyKeyChain returned another list")
		}
	})
}

// checkAccepted checks an accepted key list file: its payload is one a
// fuzz key signed, and kl is exactly that payload.
func checkAccepted(t *testing.T, kc *keyListCorpus, data []byte, kl *release.KeyList) *manifest.Envelope {
	t.Helper()
	env, err := manifest.Decode(data, manifest.MaxSize)
	if err != nil {
		t.Fatalf("accepted file does not decode: %v", err)
	}
	if !kc.signed[string(env.Signed)] {
		t.Fatalf("accepted a key list no fuzz key signed: %q", env.Signed)
	}
	if err := kl.Validate(); err != nil {
		t.Fatalf("accepted list does not validate: %v", err)
	}
	if p, err := kl.Encode(); err != nil || !bytes.Equal(p, env.Signed) {
		t.Fatalf("returned list is not the signed payload (%v)", err)
	}
	return env
}

// FuzzInspect: Inspect, which every release verb runs first on a file
// other key holders hand over, never panics, names one kind, and reports
// the digest of the payload it decoded.
func FuzzInspect(f *testing.F) {
	kc := newKeyListCorpus(f)
	f.Add(kc.root)
	f.Add(kc.rotation)
	f.Add(kc.root[:len(kc.root)-10])
	f.Add([]byte(`{"signed":"eyJ0eXBlIjoidG9yd3J0LWtleXMifQ==","signatures":[]}`)) // {"type":"torwrt-keys"}
	f.Add([]byte(`{"signed":"eyJ0eXBlIjoidG9yd3J0LWtleXMiLCJUeXBlIjoieCJ9","signatures":[]}`))
	f.Add([]byte(`{"signed":"e30=","signatures":[]}`)) // {}
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := release.Inspect(data)
		if err != nil {
			if in != nil {
				t.Fatal("result returned with an error")
			}
			return
		}
		sum := sha256.Sum256(in.Envelope.Signed)
		if in.Digest != hex.EncodeToString(sum[:]) {
			t.Fatal("digest is not the payload's")
		}
		switch in.Kind {
		case release.KindKeyList:
			if in.KeyList == nil || in.Manifest != nil {
				t.Fatal("key list without its list")
			}
			if err := in.KeyList.Validate(); err != nil {
				t.Fatalf("inspected key list does not validate: %v", err)
			}
		case release.KindManifest:
			if in.Manifest == nil || in.KeyList != nil {
				t.Fatal("manifest without its manifest")
			}
		default:
			t.Fatalf("kind %q", in.Kind)
		}
	})
}
