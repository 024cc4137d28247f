package signer

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"

	"github.com/sigstore/sigstore/pkg/signature/kms"
	"github.com/sigstore/sigstore/pkg/signature/options"
)

// openKMS opens a key through a sigstore KMS provider. Providers read their
// credentials from their usual places (VAULT_ADDR and VAULT_TOKEN, the AWS,
// Google and Azure SDK chains); nothing secret goes through the URI.
func openKMS(ctx context.Context, ref, module string) (Signer, error) {
	desc := Redact(ref)
	sv, err := kms.Get(ctx, ref, crypto.SHA256)
	if err != nil {
		var nf *kms.ProviderNotFoundError
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("%w: %s: this binary has no KMS provider for the scheme; link the Go module %s (a blank import next to main, as cmd/imgbuild does)",
				ErrBadURI, desc, module)
		}
		return nil, fmt.Errorf("opening %s: %w: %v", desc, ErrBackend, err)
	}
	pub, err := sv.PublicKey(options.WithContext(ctx))
	if err != nil {
		closeClient(sv)
		return nil, fmt.Errorf("reading the public key of %s: %w: %v (is the KMS reachable and the key name right?)", desc, ErrBackend, err)
	}
	if _, ok := pub.(ed25519.PublicKey); ok {
		// Pure Ed25519 signs the message itself; providers prehash
		// unless the hash function is zero.
		closeClient(sv)
		if sv, err = kms.Get(ctx, ref, crypto.Hash(0)); err != nil {
			return nil, fmt.Errorf("opening %s: %w: %v", desc, ErrBackend, err)
		}
	}
	s, err := newKey("kms "+desc, pub, sv, "", func() error { return closeClient(sv) })
	if err != nil {
		closeClient(sv)
		return nil, err
	}
	return s, nil
}

// closeClient releases a KMS client. sigstore's providers (v1.10) hold
// their SDK clients without a Close method; one that gains one, or that a
// future provider has, is closed here.
func closeClient(sv any) error {
	if c, ok := sv.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
