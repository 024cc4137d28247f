package imagebuilder

import (
	"crypto/rand"
	"encoding/hex"
)

// randomID names a container run. It never keys a cache, so it need not be
// derived from inputs; it only has to be unique.
func randomID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
