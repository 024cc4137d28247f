package release_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/manifest"
	"github.com/torwrt/torwrt/internal/release"
	"github.com/torwrt/torwrt/internal/usign"
)

// addSig signs env's payload with k and adds the signature, without the
// checks Sign makes first (what an attacker holding k can do).
func addSig(env *manifest.Envelope, k *usign.SecretKey) error {
	sig, err := k.Sign(env.Signed)
	if err != nil {
		return err
	}
	return env.AddSignature(sig)
}

// TestKeyListOneKeyTwice performs the attack on key lists: a root key list
// names one Ed25519 key twice, under two key ids, with threshold 2, and
// the one key signs it as both. It must be refused, as must a manifest
// check against such a key set, and NewKeyList must not write one.
func TestKeyListOneKeyTwice(t *testing.T) {
	dir := t.TempDir()
	alice := newHolder(t, dir, "alice")
	twin := *alice.key
	twin.Fingerprint = usign.Fingerprint{0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee}
	pubs := []*usign.PublicKey{alice.key.Public(), twin.Public()}

	if _, err := release.NewKeyList(1, 2, pubs, nil); !errors.Is(err, release.ErrKeyList) || !strings.Contains(err.Error(), "same Ed25519 public key") {
		t.Errorf("NewKeyList with one key twice: %v", err)
	}

	// The attacker writes the payload by hand, in canonical form.
	kl := release.KeyList{Type: release.KeyListType, Version: 1, Threshold: 2}
	for _, p := range pubs {
		q := *p
		q.Comment = ""
		kl.Keys = append(kl.Keys, release.ListedKey{KeyID: p.Fingerprint.String(), Public: string(q.Marshal())})
	}
	if kl.Keys[0].KeyID > kl.Keys[1].KeyID {
		kl.Keys[0], kl.Keys[1] = kl.Keys[1], kl.Keys[0]
	}
	var payload bytes.Buffer
	enc := json.NewEncoder(&payload)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&kl); err != nil {
		t.Fatal(err)
	}
	env := &manifest.Envelope{Signed: payload.Bytes()}
	for _, k := range []*usign.SecretKey{alice.key, &twin} {
		if err := addSig(env, k); err != nil {
			t.Fatal(err)
		}
	}
	data, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := release.VerifyRootKeyList(data); err == nil {
		t.Fatalf("root key list with one key under two ids accepted as %d-of-%d", got.Threshold, len(got.Keys))
	} else if !strings.Contains(err.Error(), "same Ed25519 public key") {
		t.Errorf("refused, but the error does not name the duplicate: %v", err)
	}

	// A manifest signed by the one key twice, checked against a key set
	// holding it twice.
	kr, err := usign.NewKeyring(pubs...)
	if err != nil {
		t.Fatal(err)
	}
	m := makeDist(t, alice)
	menv := prepare(t, m, 3)
	e, _ := manifest.Decode(menv, 0)
	for _, k := range []*usign.SecretKey{alice.key, &twin} {
		if err := addSig(e, k); err != nil {
			t.Fatal(err)
		}
	}
	signed, _ := e.Marshal()
	if _, err := release.Verify(t.Context(), signed, release.VerifyOptions{Keys: kr, Threshold: 2, Now: now}); !errors.Is(err, manifest.ErrConfig) {
		t.Errorf("manifest 2-of-2 by one key under two fingerprints: %v, want ErrConfig", err)
	}
}
