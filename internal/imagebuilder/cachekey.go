package imagebuilder

import (
	"crypto/sha256"
	"encoding/hex"
)

// ScriptsSHA256 hashes what the driver adds to every `make image` run
// (the entry script, the mksquashfs hook and the installed-tree makefile):
// a step cache keys the run with it, so a changed hook is a different run.
func ScriptsSHA256() string {
	h := sha256.New()
	h.Write([]byte(entryScriptFile))
	h.Write([]byte{0})
	h.Write(mksquashfsHook)
	h.Write([]byte{0})
	h.Write(installedMakefile)
	return hex.EncodeToString(h.Sum(nil))
}
