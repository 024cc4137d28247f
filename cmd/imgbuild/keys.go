package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/torwrt/torwrt/internal/signer"
	"github.com/torwrt/torwrt/internal/usign"
)

// keyKinds is what every --key that signs accepts.
const keyKinds = "a usign .sec file (mode 0600), an Ed25519 or ECDSA P-256 PEM file, a pkcs11: URI or a KMS URI (hashivault://, awskms://, gcpkms://, azurekms://)"

// openSigner is signer.Open; tests wrap it to count opens and closes.
var openSigner = signer.Open

// openKey opens a signing key for build, sign and the release verbs alike:
// every key kind signer.Open takes. The caller closes the key, with a
// defer right where it opened it.
func openKey(ctx context.Context, e env, ref string) (signer.Signer, error) {
	if ref == "" {
		return nil, usagef("want --key: %s", keyKinds)
	}
	return openSigner(ctx, ref, signer.Options{Getenv: e.getenv})
}

// openImageKey is openKey for a key that signs images: Ed25519 only,
// since routers verify images with usign. A key of another type is closed
// and refused.
func openImageKey(ctx context.Context, e env, ref string) (signer.Signer, error) {
	s, err := openKey(ctx, e, ref)
	if err != nil {
		return nil, err
	}
	if _, err := signer.UsignFingerprint(s); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// keyAlgorithm names s's scheme for output.
func keyAlgorithm(s signer.Signer) signer.Algorithm {
	alg, _ := signer.AlgorithmOf(s.Public())
	return alg
}

// loadTrustedKeys reads the public keys a --keys flag names, in any of the
// forms people have at hand: one .pub file (what keygen writes), a
// directory of .pub files, or a router-style key directory whose files are
// named by fingerprint (/etc/opkg/keys).
func loadTrustedKeys(path string) (*usign.Keyring, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		k, err := usign.ReadPublicKeyFile(path)
		if err != nil {
			return nil, err
		}
		return usign.NewKeyring(k)
	}
	pubs, err := filepath.Glob(filepath.Join(path, "*.pub"))
	if err != nil {
		return nil, err
	}
	if len(pubs) == 0 {
		return usign.LoadKeyDir(path)
	}
	sort.Strings(pubs)
	var keys []*usign.PublicKey
	for _, p := range pubs {
		k, err := usign.ReadPublicKeyFile(p)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	kr, err := usign.NewKeyring(keys...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (%s)", path, err, strings.Join(pubs, ", "))
	}
	return kr, nil
}
