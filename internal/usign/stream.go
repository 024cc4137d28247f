package usign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"fmt"
	"io"

	"filippo.io/edwards25519"
)

// verifyStream is RFC 8032 Ed25519 verification with the message read once
// from r. crypto/ed25519 wants the whole message in memory; on a router with
// 64 MB of RAM a 16 MiB image held twice (tmpfs plus heap) is what made
// other updaters run out of memory. The arithmetic is the same as the
// standard library's (cofactorless, canonical S required), and tests check
// both agree.
func verifyStream(pub ed25519.PublicKey, sig []byte, r io.Reader) (bool, error) {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false, nil
	}
	if sig[63]&224 != 0 {
		return false, nil
	}
	A, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return false, nil
	}
	S, err := new(edwards25519.Scalar).SetCanonicalBytes(sig[32:])
	if err != nil {
		return false, nil
	}
	h := sha512.New()
	h.Write(sig[:32])
	h.Write(pub)
	if _, err := io.Copy(h, r); err != nil {
		return false, fmt.Errorf("usign: reading signed data: %w", err)
	}
	k, err := new(edwards25519.Scalar).SetUniformBytes(h.Sum(nil))
	if err != nil {
		return false, err
	}
	minusA := new(edwards25519.Point).Negate(A)
	R := new(edwards25519.Point).VarTimeDoubleScalarBaseMult(k, minusA, S)
	return bytes.Equal(sig[:32], R.Bytes()), nil
}
