package provenance

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/torwrt/torwrt/internal/signer"
)

// ErrDSSE marks an envelope that does not verify.
var ErrDSSE = errors.New("provenance: DSSE envelope does not verify")

// Envelope is a DSSE envelope (https://github.com/secure-systems-lab/dsse).
type Envelope struct {
	Payload     string         `json:"payload"`
	PayloadType string         `json:"payloadType"`
	Signatures  []EnvelopeSign `json:"signatures"`
}

// EnvelopeSign is one signature in an Envelope.
type EnvelopeSign struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

// PAE is DSSE's pre-authentication encoding, the bytes that are signed:
// "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body.
func PAE(payloadType string, payload []byte) []byte {
	var b bytes.Buffer
	b.WriteString("DSSEv1 ")
	b.WriteString(strconv.Itoa(len(payloadType)))
	b.WriteByte(' ')
	b.WriteString(payloadType)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(payload)))
	b.WriteByte(' ')
	b.Write(payload)
	return b.Bytes()
}

// SignDSSE wraps payload (an in-toto statement: payloadType PayloadType)
// in a DSSE envelope signed by every signer (keyid: the signer's key id,
// which for a usign release key is its fingerprint), and returns the envelope as
// one line of JSON with a final newline (the .intoto.jsonl form). Ed25519
// signatures are deterministic, so equal inputs give equal envelopes.
func SignDSSE(ctx context.Context, payloadType string, payload []byte, signers ...signer.Signer) ([]byte, error) {
	if len(signers) == 0 {
		return nil, fmt.Errorf("%w: no signer for the DSSE envelope", ErrInput)
	}
	if payloadType == "" || len(payload) == 0 {
		return nil, fmt.Errorf("%w: DSSE payload and payload type are required", ErrInput)
	}
	pae := PAE(payloadType, payload)
	env := Envelope{Payload: base64.StdEncoding.EncodeToString(payload), PayloadType: payloadType}
	seen := map[string]bool{}
	for _, s := range signers {
		if seen[s.KeyID()] {
			return nil, fmt.Errorf("%w: key %s given twice", ErrInput, s.KeyID())
		}
		seen[s.KeyID()] = true
		sig, err := s.Sign(ctx, pae)
		if err != nil {
			return nil, fmt.Errorf("signing provenance with key %s: %w", s.KeyID(), err)
		}
		env.Signatures = append(env.Signatures, EnvelopeSign{KeyID: s.KeyID(), Sig: base64.StdEncoding.EncodeToString(sig)})
	}
	b, err := json.Marshal(env)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// AddDSSESignature adds s's signature to an existing envelope (another key
// holder countersigning), refusing a key that already signed.
func AddDSSESignature(ctx context.Context, envelope []byte, s signer.Signer) ([]byte, error) {
	env, payload, err := decodeEnvelope(envelope)
	if err != nil {
		return nil, err
	}
	for _, have := range env.Signatures {
		if have.KeyID == s.KeyID() {
			return nil, fmt.Errorf("%w: already signed by key %s", ErrInput, s.KeyID())
		}
	}
	sig, err := s.Sign(ctx, PAE(env.PayloadType, payload))
	if err != nil {
		return nil, fmt.Errorf("signing provenance with key %s: %w", s.KeyID(), err)
	}
	env.Signatures = append(env.Signatures, EnvelopeSign{KeyID: s.KeyID(), Sig: base64.StdEncoding.EncodeToString(sig)})
	b, err := json.Marshal(env)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func decodeEnvelope(envelope []byte) (*Envelope, []byte, error) {
	var env Envelope
	dec := json.NewDecoder(bytes.NewReader(envelope))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return nil, nil, fmt.Errorf("%w: envelope: %v", ErrDSSE, err)
	}
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: payload: %v", ErrDSSE, err)
	}
	return &env, payload, nil
}

// Verified is what VerifyDSSE found.
type Verified struct {
	PayloadType string
	Payload     []byte
	// KeyIDs are the trusted keys whose signatures verified, sorted.
	KeyIDs []string
}

// VerifyDSSE checks an envelope against trusted public keys (by key id)
// and returns its payload if at least threshold distinct trusted keys
// signed it. Unknown keys and bad signatures never count.
func VerifyDSSE(envelope []byte, keys map[string]crypto.PublicKey, threshold int) (*Verified, error) {
	if threshold < 1 {
		return nil, fmt.Errorf("%w: threshold %d", ErrInput, threshold)
	}
	env, payload, err := decodeEnvelope(envelope)
	if err != nil {
		return nil, err
	}
	pae := PAE(env.PayloadType, payload)
	ok := map[string]bool{}
	var why []string
	for _, s := range env.Signatures {
		pub, known := keys[s.KeyID]
		if !known {
			why = append(why, "untrusted key "+strconv.Quote(s.KeyID))
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err != nil || signer.Verify(pub, pae, sig) != nil {
			why = append(why, "bad signature by key "+s.KeyID)
			continue
		}
		ok[s.KeyID] = true
	}
	if len(ok) < threshold {
		return nil, fmt.Errorf("%w: %d valid signatures from trusted keys, %d required %v", ErrDSSE, len(ok), threshold, why)
	}
	v := &Verified{PayloadType: env.PayloadType, Payload: payload}
	for k := range ok {
		v.KeyIDs = append(v.KeyIDs, k)
	}
	sort.Strings(v.KeyIDs)
	return v, nil
}
