package manifest

import (
	"errors"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/usign"
)

// alias returns k's key pair under another fingerprint. A usign
// fingerprint is only 8 bytes stored beside the key, so anyone holding
// one key can write it out as many "keys" as they like.
func alias(k *usign.SecretKey, fp byte) *usign.SecretKey {
	a := *k
	a.Fingerprint = usign.Fingerprint{fp, fp, fp, fp, fp, fp, fp, fp}
	return &a
}

// TestOneKeyCountsOnce performs the attack: one key pair is trusted under
// two fingerprints and signs the manifest as both "keys"; a 2-of-N
// threshold must not be met by it.
func TestOneKeyCountsOnce(t *testing.T) {
	secs, _ := testKeys(t, 2, "same-key")
	k, other := secs[0], secs[1]
	twin := alias(k, 0xee)
	if twin.Fingerprint == k.Fingerprint || !twin.Key.Equal(k.Key) {
		t.Fatal("test setup: the twin must be the same key under another fingerprint")
	}
	b := signed(t, testManifest(), k, twin)

	// The trusted set holds the public key twice: a configuration error,
	// whatever the threshold.
	doubled, err := usign.NewKeyring(k.Public(), twin.Public())
	if err != nil {
		t.Fatal(err)
	}
	for _, threshold := range []int{1, 2} {
		_, err = Verify(b, doubled, threshold, t0, State{})
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "same Ed25519 public key") {
			t.Errorf("threshold %d with one key trusted twice: %v, want ErrConfig naming the duplicate", threshold, err)
		}
	}

	// With a third, genuine key trusted as well, 2-of-3 must still not be
	// met by the one key signing twice.
	tripled, err := usign.NewKeyring(k.Public(), twin.Public(), other.Public())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(b, tripled, 2, t0, State{}); err == nil {
		t.Error("2-of-3 met by one key signing under two fingerprints")
	}

	// Counting alone (as the key list code does) sees one signer.
	env, err := Decode(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	signers, ignored := env.CountSignatures(tripled)
	if len(signers) != 1 || len(ignored) != 1 || !strings.Contains(ignored[0], "same public key") {
		t.Errorf("CountSignatures: signers %v, ignored %v; want one signer and the twin not counted", signers, ignored)
	}

	// The honest set still works: the key and another key sign 2-of-2.
	honest, _ := usign.NewKeyring(k.Public(), other.Public())
	if _, err := Verify(signed(t, testManifest(), k, other), honest, 2, t0, State{}); err != nil {
		t.Errorf("2-of-2 by distinct keys refused: %v", err)
	}
}
