package manifest

import (
	"bytes"
	"encoding/base64"
	"testing"
	"time"
)

// FuzzManifestDecode: nothing panics, whatever decodes re-encodes to
// something that decodes to the same thing, and random input never
// verifies.
func FuzzManifestDecode(f *testing.F) {
	secs, kr := testKeys(f, 2, "trusted")
	good := signed(f, testManifest(), secs...)
	payload, _ := Encode(testManifest())
	f.Add(good)
	f.Add(signed(f, testManifest(), secs[0]))
	f.Add(payload)
	f.Add([]byte(`{"signed":"` + base64.StdEncoding.EncodeToString(payload) + `","signatures":[]}`))
	f.Add([]byte(`{"signed":"","signatures":[{"keyid":"0000000000000000","sig":"untrusted comment: x\nRWQAAAAAAAAAAA==\n"}]}`))
	f.Add([]byte(`{"signed":"eA==","signatures":[],"signed":"eA=="}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := Decode(b, MaxSize)
		if err == nil {
			out, err := env.Marshal()
			if err != nil {
				t.Fatalf("Marshal of a decoded envelope: %v", err)
			}
			env2, err := Decode(out, MaxSize)
			if err != nil {
				t.Fatalf("re-decode: %v", err)
			}
			out2, _ := env2.Marshal()
			if !bytes.Equal(out, out2) {
				t.Fatal("envelope encoding not stable")
			}
			if m, err := DecodeManifest(env.Signed); err == nil {
				p, err := Encode(m)
				if err != nil || !bytes.Equal(p, env.Signed) {
					t.Fatalf("payload not canonical after decode: %v", err)
				}
			}
		}
		if m, err := DecodeManifest(b); err == nil {
			p, err := Encode(m)
			if err != nil || !bytes.Equal(p, b) {
				t.Fatalf("payload accepted but not canonical: %v", err)
			}
		}
		v, err := Check(b, kr, 2, t0.Add(time.Hour), State{})
		if err == nil && !bytes.Equal(b, good) {
			// The only way to verify is to carry both real signatures
			// over a valid payload; the fuzzer may re-wrap the good
			// payload (whitespace, order), which is legitimate.
			p, _ := Encode(v.Manifest)
			if !bytes.Equal(p, payload) {
				t.Fatalf("fuzzed input verified with a different payload: %s", b)
			}
		}
	})
}
