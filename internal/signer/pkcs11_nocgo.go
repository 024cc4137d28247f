//go:build !cgo

package signer

import (
	"context"
	"fmt"
)

func openPKCS11(_ context.Context, ref string, _ Options) (Signer, error) {
	if _, err := parsePKCS11URI(ref); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%w: %s: this binary was built without cgo, which PKCS#11 needs to load the module; rebuild with CGO_ENABLED=1", ErrBackend, Redact(ref))
}
