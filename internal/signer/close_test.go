//go:build cgo

package signer

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/torwrt/torwrt/internal/signer/signertest"
	"github.com/torwrt/torwrt/internal/usign"
)

// moduleRefs is how many open keys hold the PKCS#11 library at path: the
// sessions Close must release, and what keeps C_Finalize from running.
func moduleRefs(path string) int {
	modules.Lock()
	defer modules.Unlock()
	if m := modules.m[path]; m != nil {
		return m.refs
	}
	return 0
}

// TestOpenCloseBalance opens every key kind Open takes that this machine
// has (usign and PEM files, two keys in a real SoftHSM2 token, an
// in-memory usign key) and checks that Close releases what Open took: the
// token's sessions and, with the last key, the module itself; that a
// second Close is harmless; and that a closed key no longer signs.
func TestOpenCloseBalance(t *testing.T) {
	hsm := signertest.NewSoftHSM(t)
	hsm.GenerateKey(t, "ed", "01", "EC:edwards25519")
	hsm.GenerateKey(t, "ec", "02", "EC:prime256v1")
	opt := Options{Getenv: func(k string) string {
		if k == PINEnv {
			return hsm.PIN
		}
		return ""
	}}
	dir := t.TempDir()
	uk, err := usign.GenerateKey(rand.Reader, "close test")
	if err != nil {
		t.Fatal(err)
	}
	sec := filepath.Join(dir, "k.sec")
	if err := os.WriteFile(sec, uk.Marshal(), 0o600); err != nil {
		t.Fatal(err)
	}
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ecPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err := WritePEMPrivateKey(filepath.Join(dir, "ed.pem"), edPriv); err != nil {
		t.Fatal(err)
	}
	if err := WritePEMPrivateKey(filepath.Join(dir, "ec.pem"), ecPriv); err != nil {
		t.Fatal(err)
	}
	refs := []string{sec, "file://" + filepath.Join(dir, "ed.pem"), filepath.Join(dir, "ec.pem"), hsm.URI("ed"), hsm.URI("ec"), hsm.URI("ed")}

	var open []Signer
	for i, ref := range refs {
		s, err := Open(t.Context(), ref, opt)
		if err != nil {
			t.Fatalf("Open(%s): %v", Redact(ref), err)
		}
		open = append(open, s)
		if _, err := s.Sign(t.Context(), []byte("before close")); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		// Three of the keys so far live in the token.
		want := 0
		for _, r := range refs[:i+1] {
			if r == hsm.URI("ed") || r == hsm.URI("ec") {
				want++
			}
		}
		if got := moduleRefs(hsm.Module); got != want {
			t.Fatalf("after opening %d keys: module held by %d keys, want %d", i+1, got, want)
		}
	}
	mem, err := FromUsign(uk)
	if err != nil {
		t.Fatal(err)
	}
	open = append(open, mem)

	for i, s := range open {
		if err := s.Close(); err != nil {
			t.Fatalf("closing %s: %v", s, err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("closing %s twice: %v", s, err)
		}
		if _, err := s.Sign(t.Context(), []byte("after close")); !errors.Is(err, ErrBackend) {
			t.Fatalf("%s signed after Close: %v", s, err)
		}
		want := 0
		for _, r := range refs[min(i+1, len(refs)):] {
			if r == hsm.URI("ed") || r == hsm.URI("ec") {
				want++
			}
		}
		if got := moduleRefs(hsm.Module); got != want {
			t.Fatalf("after closing %d keys: module held by %d keys, want %d", i+1, got, want)
		}
	}
	modules.Lock()
	left := len(modules.m)
	modules.Unlock()
	if left != 0 {
		t.Fatalf("%d PKCS#11 modules still loaded after every key was closed", left)
	}
	// The module was finalized; opening again loads it afresh.
	s, err := Open(t.Context(), hsm.URI("ed"), opt)
	if err != nil {
		t.Fatalf("reopening after the module was finalized: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := moduleRefs(hsm.Module); got != 0 {
		t.Fatalf("module held by %d keys after the last Close", got)
	}
}
