package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/torwrt/torwrt/internal/usign"
)

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
