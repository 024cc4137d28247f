package brand

import (
	"crypto/sha256"
	"crypto/sha3"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
)

// checkOnion accepts a v3 onion service hostname (56 base32 characters
// then .onion, with a valid checksum), so a mistyped mirror address is
// caught here and not on every router that can no longer update through it.
func checkOnion(host string) error {
	name, ok := strings.CutSuffix(host, ".onion")
	if !ok {
		return errors.New("not a .onion address")
	}
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		name = name[i+1:] // subdomains of an onion service are fine
	}
	if len(name) != 56 {
		return errors.New("a v3 onion address has 56 characters before .onion")
	}
	raw, err := base32.StdEncoding.DecodeString(strings.ToUpper(name))
	if err != nil || len(raw) != 35 {
		return errors.New("an onion address is lowercase letters a-z and digits 2-7")
	}
	pub, sum, version := raw[:32], raw[32:34], raw[34]
	if version != 3 {
		return errors.New("not a version 3 onion address")
	}
	want := onionChecksum(pub)
	if sum[0] != want[0] || sum[1] != want[1] {
		return errors.New("checksum does not match: the address is mistyped")
	}
	return nil
}

func onionChecksum(pub []byte) [2]byte {
	h := sha3.Sum256(append(append([]byte(".onion checksum"), pub...), 3))
	return [2]byte{h[0], h[1]}
}

// OnionAddress returns the v3 onion hostname of an Ed25519 public key.
func OnionAddress(pub []byte) string {
	sum := onionChecksum(pub)
	raw := append(append(append([]byte{}, pub...), sum[:]...), 3)
	return strings.ToLower(base32.StdEncoding.EncodeToString(raw)) + ".onion"
}

// PlaceholderOnion is the n-th placeholder mirror address of brand id: a
// valid v3 address derived from a hash, so nobody holds its key. brand
// init writes it; brand check warns about it.
func PlaceholderOnion(id string, n int) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("torwrt brand placeholder mirror %s/%d", id, n)))
	return OnionAddress(h[:])
}
