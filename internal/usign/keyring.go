package usign

import (
	"fmt"
	"io"
	"sort"
)

// Keyring is a set of trusted public keys, indexed by fingerprint, as in
// /etc/opkg/keys.
type Keyring struct {
	keys map[Fingerprint]*PublicKey
}

// NewKeyring returns a keyring holding keys. Two different keys with one
// fingerprint are an error: usign would pick one by file name.
func NewKeyring(keys ...*PublicKey) (*Keyring, error) {
	kr := &Keyring{keys: make(map[Fingerprint]*PublicKey, len(keys))}
	for _, k := range keys {
		if err := kr.Add(k); err != nil {
			return nil, err
		}
	}
	return kr, nil
}

// Add trusts k.
func (kr *Keyring) Add(k *PublicKey) error {
	if kr.keys == nil {
		kr.keys = map[Fingerprint]*PublicKey{}
	}
	if old, ok := kr.keys[k.Fingerprint]; ok && !old.Key.Equal(k.Key) {
		return fmt.Errorf("usign: two different keys share fingerprint %s", k.Fingerprint)
	}
	kr.keys[k.Fingerprint] = k
	return nil
}

// Len is the number of trusted keys.
func (kr *Keyring) Len() int { return len(kr.keys) }

// Lookup returns the key with fingerprint fp.
func (kr *Keyring) Lookup(fp Fingerprint) (*PublicKey, bool) {
	k, ok := kr.keys[fp]
	return k, ok
}

// Keys returns the keys sorted by fingerprint.
func (kr *Keyring) Keys() []*PublicKey {
	out := make([]*PublicKey, 0, len(kr.keys))
	for _, k := range kr.keys {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Fingerprint.String() < out[j].Fingerprint.String() })
	return out
}

// VerifyReader checks sig over the stream with the trusted key it names and
// returns that key. An unknown fingerprint is refused before any arithmetic.
func (kr *Keyring) VerifyReader(r io.Reader, sig *Signature) (*PublicKey, error) {
	k, ok := kr.keys[sig.Fingerprint]
	if !ok {
		return nil, fmt.Errorf("%w: no trusted key has fingerprint %s", ErrUnknownKey, sig.Fingerprint)
	}
	if err := k.VerifyReader(r, sig); err != nil {
		return nil, err
	}
	return k, nil
}
