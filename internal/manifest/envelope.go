package manifest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/torwrt/torwrt/internal/usign"
)

// Envelope is the file routers fetch:
//
//	{"signed":"<base64 of the canonical payload>",
//	 "signatures":[{"keyid":"<16 hex>","sig":"<usign .sig file text>"}]}
//
// Each sig is a whole usign signature file over the decoded payload bytes,
// so `usign -V -m payload -x sig -P /etc/opkg/keys` checks it too.
type Envelope struct {
	Signed     []byte
	Signatures []Signature
}

// Signature is one usign signature over Envelope.Signed.
type Signature struct {
	KeyID usign.Fingerprint
	Sig   *usign.Signature
}

// NewEnvelope encodes m canonically into an unsigned envelope.
func NewEnvelope(m *Manifest) (*Envelope, error) {
	p, err := Encode(m)
	if err != nil {
		return nil, err
	}
	return &Envelope{Signed: p}, nil
}

// AddSignature adds sig, a usign signature over the payload, under its
// key number. Signing happens on the build host (release.Sign with a
// signer.Signer); this only checks and records. A second signature by one
// key is refused: it would look like two signatures but count as one. The
// signature itself is verified by Verify, against the trusted keys.
func (env *Envelope) AddSignature(sig *usign.Signature) error {
	fp := sig.Fingerprint
	for _, have := range env.Signatures {
		if have.KeyID == fp {
			return fmt.Errorf("manifest: already signed by key %s", fp)
		}
	}
	if len(env.Signatures) >= MaxSignatures {
		return fmt.Errorf("manifest: already %d signatures, limit %d", len(env.Signatures), MaxSignatures)
	}
	env.Signatures = append(env.Signatures, Signature{KeyID: fp, Sig: sig})
	return nil
}

type wireSig struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

type wireEnvelope struct {
	Signed     string    `json:"signed"`
	Signatures []wireSig `json:"signatures"`
}

// Marshal returns the envelope file, ending in "\n".
func (env *Envelope) Marshal() ([]byte, error) {
	w := wireEnvelope{Signed: base64.StdEncoding.EncodeToString(env.Signed), Signatures: []wireSig{}}
	for _, s := range env.Signatures {
		w.Signatures = append(w.Signatures, wireSig{KeyID: s.KeyID.String(), Sig: string(s.Sig.Marshal())})
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(&w); err != nil {
		return nil, fmt.Errorf("manifest: encoding envelope: %w", err)
	}
	if buf.Len() > MaxSize {
		return nil, fmt.Errorf("%w: envelope would be %d bytes, routers read at most %d", ErrTooLarge, buf.Len(), MaxSize)
	}
	return buf.Bytes(), nil
}

// Decode parses an envelope of at most max bytes. It is strict: exactly the
// keys "signed" and "signatures" (and "keyid", "sig" per signature), each
// once, no trailing data, standard padded base64, well-formed usign
// signature files whose fingerprint matches keyid. It does not verify
// anything.
func Decode(b []byte, max int) (*Envelope, error) {
	if max <= 0 || max > MaxSize {
		max = MaxSize
	}
	if len(b) > max {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), max)
	}
	d := &tokens{dec: json.NewDecoder(bytes.NewReader(b))}
	env, err := d.envelope()
	if err != nil {
		return nil, fmt.Errorf("%w: envelope: %v", ErrMalformed, err)
	}
	return env, nil
}

// tokens walks the envelope with the streaming tokenizer, so that keys are
// matched exactly (encoding/json folds case) and duplicates are seen.
type tokens struct{ dec *json.Decoder }

// token is Token with a clearer error for a cut-off document.
func (d *tokens) token() (json.Token, error) {
	t, err := d.dec.Token()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("unexpected end at offset %d", d.dec.InputOffset())
	}
	return t, err
}

func (d *tokens) delim(want json.Delim) error {
	t, err := d.token()
	if err != nil {
		return err
	}
	if got, ok := t.(json.Delim); !ok || got != want {
		return fmt.Errorf("at offset %d: want %q, have %v", d.dec.InputOffset(), want, t)
	}
	return nil
}

func (d *tokens) str() (string, error) {
	t, err := d.token()
	if err != nil {
		return "", err
	}
	s, ok := t.(string)
	if !ok {
		return "", fmt.Errorf("at offset %d: want a string, have %v", d.dec.InputOffset(), t)
	}
	return s, nil
}

// object reads {"k":...} calling field for each key; every key must be
// handled and appear once.
func (d *tokens) object(field func(key string) error) error {
	if err := d.delim('{'); err != nil {
		return err
	}
	seen := map[string]bool{}
	for d.dec.More() {
		k, err := d.str()
		if err != nil {
			return err
		}
		if seen[k] {
			return fmt.Errorf("key %q appears twice", k)
		}
		seen[k] = true
		if err := field(k); err != nil {
			return err
		}
	}
	return d.delim('}')
}

func (d *tokens) envelope() (*Envelope, error) {
	env := &Envelope{}
	var haveSigned, haveSigs bool
	err := d.object(func(k string) error {
		switch k {
		case "signed":
			s, err := d.str()
			if err != nil {
				return err
			}
			if env.Signed, err = base64.StdEncoding.Strict().DecodeString(s); err != nil {
				return fmt.Errorf("signed: bad base64: %v", err)
			}
			haveSigned = true
		case "signatures":
			if err := d.signatures(env); err != nil {
				return err
			}
			haveSigs = true
		default:
			return fmt.Errorf("unknown key %q", k)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, err := d.dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the envelope")
	}
	if !haveSigned || !haveSigs {
		return nil, errors.New(`"signed" and "signatures" are required`)
	}
	if len(env.Signed) == 0 {
		return nil, errors.New("empty payload")
	}
	return env, nil
}

func (d *tokens) signatures(env *Envelope) error {
	if err := d.delim('['); err != nil {
		return err
	}
	for d.dec.More() {
		if len(env.Signatures) == MaxSignatures {
			return fmt.Errorf("more than %d signatures", MaxSignatures)
		}
		var keyid, sigText string
		var haveID, haveSig bool
		err := d.object(func(k string) error {
			var err error
			switch k {
			case "keyid":
				keyid, err = d.str()
				haveID = true
			case "sig":
				sigText, err = d.str()
				haveSig = true
			default:
				err = fmt.Errorf("signatures[%d]: unknown key %q", len(env.Signatures), k)
			}
			return err
		})
		if err != nil {
			return err
		}
		i := len(env.Signatures)
		if !haveID || !haveSig {
			return fmt.Errorf(`signatures[%d]: "keyid" and "sig" are required`, i)
		}
		fp, err := usign.ParseFingerprint(keyid)
		if err != nil || fp.String() != keyid {
			return fmt.Errorf("signatures[%d]: keyid %q: want 16 lowercase hex digits", i, keyid)
		}
		sig, err := usign.ParseSignature([]byte(sigText))
		if err != nil {
			return fmt.Errorf("signatures[%d]: %v", i, err)
		}
		if sig.Fingerprint != fp {
			return fmt.Errorf("signatures[%d]: keyid %s but the signature file is by key %s", i, fp, sig.Fingerprint)
		}
		env.Signatures = append(env.Signatures, Signature{KeyID: fp, Sig: sig})
	}
	return d.delim(']')
}

// CheckKeys refuses a trusted key set that holds one Ed25519 public key
// under two fingerprints. A usign fingerprint is only a label stored beside
// the key, so anyone can give a key file any fingerprint; such a set would
// let one key holder's signature count twice toward a threshold.
func CheckKeys(keys *usign.Keyring) error {
	if keys == nil {
		return nil
	}
	seen := map[string]usign.Fingerprint{}
	for _, k := range keys.Keys() {
		if fp, ok := seen[string(k.Key)]; ok {
			return fmt.Errorf("%w: trusted keys %s and %s are the same Ed25519 public key under two fingerprints; it would count twice toward the threshold, keep only one of them",
				ErrConfig, fp, k.Fingerprint)
		}
		seen[string(k.Key)] = k.Fingerprint
	}
	return nil
}

// verifySignatures counts distinct trusted keys with a valid signature over
// the payload. Unknown keys, repeated keys and bad signatures (all-zero
// included) never count; they are reported in ignored. A trusted key set
// that holds one public key twice is a configuration error.
func (env *Envelope) verifySignatures(keys *usign.Keyring, threshold int) (signers, ignored []string, err error) {
	if keys == nil || keys.Len() == 0 {
		return nil, nil, fmt.Errorf("%w: no trusted keys", ErrConfig)
	}
	if err := CheckKeys(keys); err != nil {
		return nil, nil, err
	}
	if threshold < 1 {
		return nil, nil, fmt.Errorf("%w: threshold %d; at least 1 signature must be required", ErrConfig, threshold)
	}
	if threshold > keys.Len() {
		return nil, nil, fmt.Errorf("%w: threshold %d can never be met with %d trusted keys", ErrConfig, threshold, keys.Len())
	}
	signers, ignored = env.CountSignatures(keys)
	if len(signers) < threshold {
		why := ""
		if len(ignored) > 0 {
			why = "; not counted: " + strings.Join(ignored, "; ")
		}
		return nil, ignored, fmt.Errorf("%w: %d valid of %d required (from %d signatures)%s",
			ErrThreshold, len(signers), threshold, len(env.Signatures), why)
	}
	return signers, ignored, nil
}

// CountSignatures returns the distinct trusted keys with a valid signature
// over the payload, sorted, and why every other signature did not count.
// Keys are told apart by their Ed25519 public key, not by fingerprint: a
// key that signed twice, under one fingerprint or several, counts once.
// Unknown keys and bad signatures (all-zero included) never count.
func (env *Envelope) CountSignatures(keys *usign.Keyring) (signers, ignored []string) {
	counted := map[string]usign.Fingerprint{}
	for i, s := range env.Signatures {
		fp := s.Sig.Fingerprint
		if pub, ok := keys.Lookup(fp); ok {
			if first, dup := counted[string(pub.Key)]; dup {
				if first == fp {
					ignored = append(ignored, fmt.Sprintf("signatures[%d]: key %s already counted", i, fp))
				} else {
					ignored = append(ignored, fmt.Sprintf("signatures[%d]: key %s is the same public key as %s, already counted", i, fp, first))
				}
				continue
			}
		}
		pub, err := keys.VerifyReader(bytes.NewReader(env.Signed), s.Sig)
		if err != nil {
			ignored = append(ignored, fmt.Sprintf("signatures[%d]: %v", i, err))
			continue
		}
		counted[string(pub.Key)] = fp
		signers = append(signers, fp.String())
	}
	sort.Strings(signers)
	return signers, ignored
}
