package provenance_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"testing"

	"github.com/torwrt/torwrt/internal/provenance"
	"github.com/torwrt/torwrt/internal/signer"
	"github.com/torwrt/torwrt/internal/usign"
)

// fuzzSeed returns n deterministic bytes for label, so fuzz keys (and so
// any crasher found with them) are the same on every run.
func fuzzSeed(label string, n int) []byte {
	var out []byte
	for i := 0; len(out) < n; i++ {
		s := sha256.Sum256([]byte("torwrt fuzz " + label + " " + strconv.Itoa(i)))
		out = append(out, s[:]...)
	}
	return out[:n]
}

// ecdsaDSSE is a P-256 DSSE signer with a fixed key id; its signatures are
// randomized ASN.1 DER, the form VerifyDSSE must parse.
type ecdsaDSSE struct {
	id   string
	priv *ecdsa.PrivateKey
}

var _ signer.Signer = ecdsaDSSE{}

func (e ecdsaDSSE) KeyID() string            { return e.id }
func (e ecdsaDSSE) Public() crypto.PublicKey { return &e.priv.PublicKey }
func (e ecdsaDSSE) Close() error             { return nil }

func (e ecdsaDSSE) Sign(_ context.Context, msg []byte) ([]byte, error) {
	sum := sha256.Sum256(msg)
	return ecdsa.SignASN1(rand.Reader, e.priv, sum[:])
}

// fuzzPAE is DSSE's pre-authentication encoding written from the
// specification, independent of provenance.PAE.
func fuzzPAE(typ string, body []byte) string {
	return "DSSEv1 " + strconv.Itoa(len(typ)) + " " + typ + " " + strconv.Itoa(len(body)) + " " + string(body)
}

// FuzzVerifyDSSE: VerifyDSSE never panics, and whatever it accepts is a
// payload of the expected type that one of the fuzz keys really signed,
// with at least threshold distinct trusted keys whose signatures verify
// when checked here from the raw JSON.
func FuzzVerifyDSSE(f *testing.F) {
	uk, err := usign.GenerateKey(bytes.NewReader(fuzzSeed("usign", 40)), "fuzz image key")
	if err != nil {
		f.Fatal(err)
	}
	ed, err := signer.FromUsign(uk)
	if err != nil {
		f.Fatal(err)
	}
	ecPriv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), fuzzSeed("ecdsa", 32))
	if err != nil {
		f.Fatal(err)
	}
	ec := ecdsaDSSE{id: "ec-fuzz", priv: ecPriv}
	outsider, err := usign.GenerateKey(bytes.NewReader(fuzzSeed("outsider", 40)), "untrusted")
	if err != nil {
		f.Fatal(err)
	}
	untrusted, err := signer.FromUsign(outsider)
	if err != nil {
		f.Fatal(err)
	}
	keys := map[string]crypto.PublicKey{
		ed.KeyID(): uk.Public().Key,
		ec.KeyID(): &ecPriv.PublicKey,
	}

	stmt, err := provenance.Statement(statementInput(map[string][]byte{"a.bin": []byte("a"), "b.bin": []byte("b")}))
	if err != nil {
		f.Fatal(err)
	}
	// Every PAE signed below: the only messages an accepted envelope can
	// carry, since the fuzzer cannot forge a signature.
	signed := map[string]bool{}
	ctx := f.Context()
	sign := func(payload []byte, s ...signer.Signer) []byte {
		env, err := provenance.SignDSSE(ctx, provenance.PayloadType, payload, s...)
		if err != nil {
			f.Fatal(err)
		}
		signed[fuzzPAE(provenance.PayloadType, payload)] = true
		return env
	}
	both := sign(stmt, ed, ec)
	edOnly := sign(stmt, ed)
	short := sign([]byte("{}"), ec, untrusted)
	three, err := provenance.AddDSSESignature(ctx, edOnly, ec)
	if err != nil {
		f.Fatal(err)
	}
	three, err = provenance.AddDSSESignature(ctx, three, untrusted)
	if err != nil {
		f.Fatal(err)
	}

	for _, env := range [][]byte{both, edOnly, short, three} {
		f.Add(env, uint8(1))
		f.Add(env, uint8(2))
		f.Add(env[:len(env)/2], uint8(1))
		f.Add(bytes.TrimSuffix(env, []byte("\n")), uint8(1))
	}
	// Mutations with a known answer or a known trap.
	var e provenance.Envelope
	if err := json.Unmarshal(both, &e); err != nil {
		f.Fatal(err)
	}
	mut := func(edit func(*provenance.Envelope)) []byte {
		c := e
		c.Signatures = slices.Clone(e.Signatures)
		edit(&c)
		b, err := json.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	f.Add(mut(func(c *provenance.Envelope) { c.PayloadType = "application/json" }), uint8(1))
	f.Add(mut(func(c *provenance.Envelope) { c.Payload = base64.RawStdEncoding.EncodeToString(stmt) }), uint8(1))
	f.Add(mut(func(c *provenance.Envelope) { c.Payload = base64.URLEncoding.EncodeToString(stmt) }), uint8(1))
	f.Add(mut(func(c *provenance.Envelope) { c.Signatures = append(c.Signatures, c.Signatures[0]) }), uint8(2))
	f.Add(mut(func(c *provenance.Envelope) { c.Signatures[1].KeyID = c.Signatures[0].KeyID }), uint8(2))
	f.Add(mut(func(c *provenance.Envelope) {
		c.Signatures[0].Sig = base64.StdEncoding.EncodeToString(make([]byte, 64))
	}), uint8(1))
	f.Add(mut(func(c *provenance.Envelope) { c.Signatures[1].Sig = "MAYCAQACAQA=" }), uint8(1)) // ECDSA r=s=0
	f.Add(mut(func(c *provenance.Envelope) { c.Signatures = nil }), uint8(1))
	f.Add([]byte(`{"payload":"","payloadType":"","signatures":[]}`), uint8(1))
	f.Add([]byte(`{"payload":"e30=","payloadType":"x","signatures":[{"keyid":"","sig":""}],"extra":1}`), uint8(1))
	f.Add([]byte(`{"Payload":"e30=","PAYLOADTYPE":"x","signatures":null}`), uint8(1))
	f.Add([]byte(`null`), uint8(1))
	f.Add([]byte(`{}{}`), uint8(0))
	f.Add([]byte{}, uint8(1))

	f.Fuzz(func(t *testing.T, envelope []byte, th uint8) {
		threshold := int(th % 4)
		v, err := provenance.VerifyDSSE(envelope, keys, threshold)
		if err != nil {
			if v != nil {
				t.Fatal("result returned with an error")
			}
			if !errors.Is(err, provenance.ErrDSSE) && !errors.Is(err, provenance.ErrInput) {
				t.Fatalf("error is neither ErrDSSE nor ErrInput: %v", err)
			}
			return
		}
		if threshold < 1 {
			t.Fatalf("threshold %d accepted", threshold)
		}
		if v.PayloadType != provenance.PayloadType {
			t.Fatalf("accepted payload type %q, want %q", v.PayloadType, provenance.PayloadType)
		}
		if !signed[fuzzPAE(v.PayloadType, v.Payload)] {
			t.Fatalf("accepted a payload no fuzz key signed: %q", v.Payload)
		}
		if len(v.KeyIDs) < threshold || !slices.IsSorted(v.KeyIDs) || len(slices.Compact(slices.Clone(v.KeyIDs))) != len(v.KeyIDs) {
			t.Fatalf("key ids %q for threshold %d", v.KeyIDs, threshold)
		}
		// Check each counted key from the raw JSON, without the package.
		var raw struct {
			Signatures []struct {
				KeyID string `json:"keyid"`
				Sig   string `json:"sig"`
			} `json:"signatures"`
		}
		if err := json.NewDecoder(bytes.NewReader(envelope)).Decode(&raw); err != nil {
			t.Fatalf("accepted envelope does not decode: %v", err)
		}
		pae := []byte(fuzzPAE(v.PayloadType, v.Payload))
		for _, id := range v.KeyIDs {
			pub, ok := keys[id]
			if !ok {
				t.Fatalf("counted untrusted key %q", id)
			}
			good := false
			for _, s := range raw.Signatures {
				sig, err := base64.StdEncoding.DecodeString(s.Sig)
				if s.KeyID != id || err != nil {
					continue
				}
				switch k := pub.(type) {
				case ed25519.PublicKey:
					good = good || ed25519.Verify(k, pae, sig)
				case *ecdsa.PublicKey:
					sum := sha256.Sum256(pae)
					good = good || ecdsa.VerifyASN1(k, sum[:], sig)
				}
			}
			if !good {
				t.Fatalf("key %s counted without a signature that verifies", id)
			}
		}
	})
}

// FuzzSubjects: Subjects, which Attest runs on a statement read from
// dist/, never panics and returns one subject per statement subject only
// for an in-toto v1 statement.
func FuzzSubjects(f *testing.F) {
	stmt, err := provenance.Statement(statementInput(map[string][]byte{"a.bin": []byte("a"), "b.bin": []byte("b")}))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(stmt)
	f.Add(stmt[:len(stmt)/2])
	f.Add(bytes.Replace(stmt, []byte(provenance.StatementType), []byte("https://in-toto.io/Statement/v0.1"), 1))
	f.Add(bytes.Replace(stmt, []byte(`"sha256"`), []byte(`"sha512"`), 1))
	f.Add([]byte(`{"_type":"` + provenance.StatementType + `","subject":null}`))
	f.Add([]byte(`{"_TYPE":"` + provenance.StatementType + `","subject":[{"name":"x","digest":{"sha256":"1","SHA256":"2"}}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		subjects, err := provenance.Subjects(b)
		if err != nil {
			if subjects != nil {
				t.Fatal("subjects returned with an error")
			}
			return
		}
		var st struct {
			Type    string            `json:"_type"`
			Subject []json.RawMessage `json:"subject"`
		}
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatalf("accepted statement does not decode: %v", err)
		}
		if st.Type != provenance.StatementType {
			t.Fatalf("accepted _type %q", st.Type)
		}
		if len(subjects) != len(st.Subject) {
			t.Fatalf("%d subjects from %d", len(subjects), len(st.Subject))
		}
	})
}
