package release

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/torwrt/torwrt/internal/manifest"
	"github.com/torwrt/torwrt/internal/usign"
)

// KeyListType tags a signed key list payload, so a key list can never be
// mistaken for an update manifest (or the reverse).
const KeyListType = "torwrt-keys"

// Key list errors.
var (
	ErrKeyList   = errors.New("release: bad key list")
	ErrRotation  = errors.New("release: key rotation not authorized")
	ErrThreshold = errors.New("release: not enough valid signatures from trusted keys")
)

// KeyList is the signed list of release keys: who may sign manifests and
// how many must. Version 1 is the root a verifier pins; every later version
// must be signed by a threshold of the previous version's keys (and of its
// own keys, so nobody is added without holding the key).
type KeyList struct {
	Type      string      `json:"type"`
	Version   uint64      `json:"version"`
	Threshold int         `json:"threshold"`
	Keys      []ListedKey `json:"keys"`
}

// ListedKey is one release key.
type ListedKey struct {
	KeyID string `json:"keyid"`
	// Public is the usign public key file text (what goes into
	// /etc/opkg/keys/<keyid>).
	Public string `json:"public"`
	// Holder names who holds the key, for people (e.g. "alice").
	Holder string `json:"holder,omitempty"`
}

// maxKeys bounds a key list.
const maxKeys = manifest.MaxSignatures

// NewKeyList makes a key list; keys are sorted by key id.
func NewKeyList(version uint64, threshold int, keys []*usign.PublicKey, holders map[string]string) (*KeyList, error) {
	kl := &KeyList{Type: KeyListType, Version: version, Threshold: threshold}
	for _, k := range keys {
		pk := *k
		pk.Comment = ""
		kl.Keys = append(kl.Keys, ListedKey{KeyID: k.Fingerprint.String(), Public: string(pk.Marshal()), Holder: holders[k.Fingerprint.String()]})
	}
	sort.Slice(kl.Keys, func(i, j int) bool { return kl.Keys[i].KeyID < kl.Keys[j].KeyID })
	if err := kl.Validate(); err != nil {
		return nil, err
	}
	return kl, nil
}

// Validate checks the list's own rules.
func (kl *KeyList) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrKeyList, fmt.Sprintf(format, a...))
	}
	if kl.Type != KeyListType {
		return bad("type %q, want %q", kl.Type, KeyListType)
	}
	if kl.Version < 1 {
		return bad("version must be at least 1")
	}
	if len(kl.Keys) == 0 || len(kl.Keys) > maxKeys {
		return bad("want 1 to %d keys, have %d", maxKeys, len(kl.Keys))
	}
	if kl.Threshold < 1 || kl.Threshold > len(kl.Keys) {
		return bad("threshold %d: must be between 1 and the number of keys (%d)", kl.Threshold, len(kl.Keys))
	}
	// A fingerprint is only a label beside the key: one Ed25519 key listed
	// under two key ids would count twice toward the threshold.
	seen := map[string]string{}
	for i, k := range kl.Keys {
		pub, err := usign.ParsePublicKey([]byte(k.Public))
		if err != nil {
			return bad("keys[%d]: %v", i, err)
		}
		if pub.Fingerprint.String() != k.KeyID {
			return bad("keys[%d]: keyid %s but the public key is %s", i, k.KeyID, pub.Fingerprint)
		}
		if first, ok := seen[string(pub.Key)]; ok {
			return bad("keys[%d]: key %s is the same Ed25519 public key as %s; list each key once", i, k.KeyID, first)
		}
		seen[string(pub.Key)] = k.KeyID
		if i > 0 && kl.Keys[i-1].KeyID >= k.KeyID {
			return bad("keys must be sorted by keyid and unique (%s after %s)", k.KeyID, kl.Keys[i-1].KeyID)
		}
		if strings.ContainsAny(k.Holder, "\n\r") || len(k.Holder) > manifest.MaxString {
			return bad("keys[%d]: holder must be one short line", i)
		}
	}
	return nil
}

// Keyring returns the list's keys as a usign keyring.
func (kl *KeyList) Keyring() (*usign.Keyring, error) {
	kr, _ := usign.NewKeyring()
	for _, k := range kl.Keys {
		pub, err := usign.ParsePublicKey([]byte(k.Public))
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrKeyList, k.KeyID, err)
		}
		if err := kr.Add(pub); err != nil {
			return nil, err
		}
	}
	return kr, nil
}

// Encode returns the canonical payload: compact JSON, struct key order,
// one final newline.
func (kl *KeyList) Encode() ([]byte, error) {
	if err := kl.Validate(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(kl); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// DecodeKeyList parses a key list payload, refusing unknown fields and any
// spelling other than the canonical one.
func DecodeKeyList(payload []byte) (*KeyList, error) {
	var kl KeyList
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&kl); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyList, err)
	}
	again, err := kl.Encode()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(again, payload) {
		return nil, fmt.Errorf("%w: payload is not in canonical form", ErrKeyList)
	}
	return &kl, nil
}

// NewKeyListEnvelope returns the unsigned envelope of kl.
func NewKeyListEnvelope(kl *KeyList) ([]byte, error) {
	p, err := kl.Encode()
	if err != nil {
		return nil, err
	}
	env := &manifest.Envelope{Signed: p}
	return env.Marshal()
}

func threshold(env *manifest.Envelope, kr *usign.Keyring, m int, what string) error {
	if err := manifest.CheckKeys(kr); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrKeyList, what, err)
	}
	valid, ignored := env.CountSignatures(kr)
	if len(valid) < m {
		why := ""
		if len(ignored) > 0 {
			why = "; not counted: " + strings.Join(ignored, "; ")
		}
		return fmt.Errorf("%w: %s: %d valid of %d required%s", ErrThreshold, what, len(valid), m, why)
	}
	return nil
}

// VerifyRootKeyList checks a version-1 key list (the root a verifier pins):
// it must be signed by a threshold of its own keys.
func VerifyRootKeyList(data []byte) (*KeyList, error) {
	env, err := manifest.Decode(data, manifest.MaxSize)
	if err != nil {
		return nil, err
	}
	kl, err := DecodeKeyList(env.Signed)
	if err != nil {
		return nil, err
	}
	kr, err := kl.Keyring()
	if err != nil {
		return nil, err
	}
	if err := threshold(env, kr, kl.Threshold, fmt.Sprintf("key list version %d signed by its own keys", kl.Version)); err != nil {
		return nil, err
	}
	return kl, nil
}

// VerifyRotation checks that data, a signed key list, is the next version
// after trusted and carries a threshold of trusted's signatures and a
// threshold of its own. It returns the new list.
func VerifyRotation(trusted *KeyList, data []byte) (*KeyList, error) {
	env, err := manifest.Decode(data, manifest.MaxSize)
	if err != nil {
		return nil, err
	}
	next, err := DecodeKeyList(env.Signed)
	if err != nil {
		return nil, err
	}
	if next.Version != trusted.Version+1 {
		return nil, fmt.Errorf("%w: key list version %d does not follow the trusted version %d (apply rotations in order)", ErrRotation, next.Version, trusted.Version)
	}
	oldKR, err := trusted.Keyring()
	if err != nil {
		return nil, err
	}
	if err := threshold(env, oldKR, trusted.Threshold, fmt.Sprintf("key list version %d signed by the keys of version %d", next.Version, trusted.Version)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRotation, err)
	}
	newKR, err := next.Keyring()
	if err != nil {
		return nil, err
	}
	if err := threshold(env, newKR, next.Threshold, fmt.Sprintf("key list version %d signed by its own keys", next.Version)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRotation, err)
	}
	return next, nil
}

// VerifyKeyChain starts from a pinned root list and applies each rotation
// in order, returning the newest list.
func VerifyKeyChain(root []byte, rotations ...[]byte) (*KeyList, error) {
	kl, err := VerifyRootKeyList(root)
	if err != nil {
		return nil, fmt.Errorf("root key list: %w", err)
	}
	for i, r := range rotations {
		if kl, err = VerifyRotation(kl, r); err != nil {
			return nil, fmt.Errorf("rotation %d: %w", i+1, err)
		}
	}
	return kl, nil
}

// Rotate returns the unsigned envelope of the next key list after old:
// version old.Version+1 with the given keys and threshold.
func Rotate(old *KeyList, keys []*usign.PublicKey, threshold int, holders map[string]string) ([]byte, *KeyList, error) {
	next, err := NewKeyList(old.Version+1, threshold, keys, holders)
	if err != nil {
		return nil, nil, err
	}
	env, err := NewKeyListEnvelope(next)
	if err != nil {
		return nil, nil, err
	}
	return env, next, nil
}
