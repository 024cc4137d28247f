package main

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/fwimage"
)

// Helpers of the foundation tests (keygen, sign, verify, inspect). Names
// start with fnd so they never collide with other tests of package main.

// fndResult is one in-process run of imgbuild.
type fndResult struct {
	code           int
	stdout, stderr string
}

func fndRun(t *testing.T, args ...string) fndResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e := env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
	code := run(t.Context(), e, args)
	return fndResult{code, stdout.String(), stderr.String()}
}

// fndMust runs imgbuild and fails the test unless it exits 0.
func fndMust(t *testing.T, args ...string) fndResult {
	t.Helper()
	r := fndRun(t, args...)
	if r.code != 0 {
		t.Fatalf("imgbuild %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// fndExpect asserts a failing run's exit code and message.
func fndExpect(t *testing.T, r fndResult, code int, text string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, text) {
		t.Errorf("stderr %q does not mention %q", r.stderr, text)
	}
}

// fndGLAR150 is the metadata JSON of formats.md §2, copied by hand.
const fndGLAR150 = `{  "metadata_version": "1.1", "compat_version": "1.0",   "supported_devices":["glinet,gl-ar150","gl-ar150"], "version": { "dist": "OpenWrt", "version": "24.10.3", "revision": "r28872-daca7c049b", "target": "ath79/generic", "board": "glinet_gl-ar150" } }` + "\n"

// fndCRC is fwtool's CRC written out bit by bit (formats.md §2):
// reflected polynomial 0xEDB88320, init 0xFFFFFFFF, no final xor.
func fndCRC(b []byte) uint32 {
	c := uint32(0xFFFFFFFF)
	for _, x := range b {
		c ^= uint32(x)
		for k := 0; k < 8; k++ {
			if c&1 != 0 {
				c = c>>1 ^ 0xEDB88320
			} else {
				c >>= 1
			}
		}
	}
	return c
}

// fndAppend appends a chunk and its hand-encoded trailer.
func fndAppend(img []byte, typ byte, data []byte) []byte {
	out := append(bytes.Clone(img), data...)
	var tr [16]byte
	binary.BigEndian.PutUint32(tr[0:], 0x46577830)
	binary.BigEndian.PutUint32(tr[4:], fndCRC(out))
	tr[8] = typ
	binary.BigEndian.PutUint32(tr[12:], uint32(len(data)+16))
	return append(out, tr[:]...)
}

func fndPayload(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + i>>8)
	}
	return p
}

// fndUnsigned is a payload of n bytes plus the GL-AR150 metadata chunk.
func fndUnsigned(n int) []byte {
	return fndAppend(fndPayload(n), 1, append(make([]byte, 8), fndGLAR150...))
}

func fndWrite(t *testing.T, path string, data []byte, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func fndRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fndKeygen runs `imgbuild keygen` and returns the key's base path and
// fingerprint, plus a key directory (/etc/opkg/keys layout) trusting it.
func fndKeygen(t *testing.T, dir, name string) (base, fp, keys string) {
	t.Helper()
	base = filepath.Join(dir, name)
	r := fndMust(t, "keygen", "-o", base, "--json")
	fp = jsonDoc[keygenResult](t, r, "keygen").Result.Key.Fingerprint
	if len(fp) != 16 {
		t.Fatalf("keygen fingerprint %q", fp)
	}
	keys = filepath.Join(dir, name+"-keys")
	os.Mkdir(keys, 0o755)
	fndWrite(t, filepath.Join(keys, fp), fndRead(t, base+".pub"), 0o644)
	return base, fp, keys
}

// fndLastChunk returns the data of the file's last chunk.
func fndLastChunk(t *testing.T, img []byte) []byte {
	t.Helper()
	n := len(img)
	if n < 16 || binary.BigEndian.Uint32(img[n-16:]) != fwimage.Magic {
		t.Fatal("image does not end in a trailer")
	}
	size := int(binary.BigEndian.Uint32(img[n-4:]))
	return img[n-size : n-16]
}

// fndSignify returns the path of OpenBSD signify; the conformance tests
// must run, so a missing tool fails.
func fndSignify(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("signify-openbsd")
	if err != nil {
		t.Fatal("signify-openbsd not found: install the Debian package signify-openbsd (apt-get install -y signify-openbsd)")
	}
	return p
}

func fndTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// fndFixtures is the good image and the bad-input table, written to dir
// by the real CLI where it can be (keygen, sign) and by hand where the
// CLI must refuse to produce it.
type fndFixtures struct {
	dir, keys, fp, sec string
	img                map[string]string // name → path
	badKeys            map[string]string // name → key directory
}

func fndMakeFixtures(t *testing.T) *fndFixtures {
	t.Helper()
	dir := t.TempDir()
	f := &fndFixtures{dir: dir, img: map[string]string{}, badKeys: map[string]string{}}
	var base string
	base, f.fp, f.keys = fndKeygen(t, dir, "release")
	f.sec = base + ".sec"
	strangerBase, _, _ := fndKeygen(t, dir, "stranger")

	unsigned := fndUnsigned(8 << 10)
	signedBy := func(name string, in []byte, sec string) []byte {
		p := fndWrite(t, filepath.Join(dir, name+".bin"), in, 0o644)
		fndMust(t, "sign", "--key", sec, p)
		os.Remove(p + ".sig")
		f.img[name] = p
		return fndRead(t, p)
	}
	good := signedBy("good", unsigned, f.sec)
	signedBy("unknown-key", unsigned, strangerBase+".sec")
	other := signedBy("other", fndUnsigned(8<<10+1), f.sec)

	put := func(name string, b []byte) {
		f.img[name] = fndWrite(t, filepath.Join(dir, name+".bin"), b, 0o644)
	}
	mod := func(fn func([]byte)) []byte { b := bytes.Clone(good); fn(b); return b }
	put("trunc-trailer", good[:len(good)-5])
	put("trunc-chunk", good[:len(unsigned)+60])
	put("size-too-large", mod(func(b []byte) { binary.BigEndian.PutUint32(b[len(b)-4:], uint32(len(b)+1)) }))
	put("crc", mod(func(b []byte) { b[4000] ^= 0x10 }))
	put("unknown-type", mod(func(b []byte) { b[len(b)-8] = 4 }))
	zeroSig := "untrusted comment: signed by key " + f.fp + "\n" + fndB64(append(append([]byte("Ed"), fndHex(t, f.fp)...), make([]byte, 64)...)) + "\n"
	put("zero-sig", fndAppend(unsigned, 0, fndBlob([]byte(zeroSig))))
	put("other-image", fndAppend(unsigned, 0, fndLastChunk(t, other)))
	put("fake-cert", fndAppend(unsigned, 0, []byte("# fake certificate")))
	bigMeta := fndAppend(fndPayload(1000), 1, append(make([]byte, 8), `{"metadata_version":"1.1","supported_devices":["glinet,gl-ar150"],"pad":"`+strings.Repeat("p", 31*1024)+`"}`...))
	put("big-metadata", fndAppend(bigMeta, 0, fndLastChunk(t, good))) // the signature cannot matter: parsing refuses first

	// Key directories with one broken key file each.
	pubFile := string(fndRead(t, base+".pub"))
	lines := strings.SplitN(pubFile, "\n", 2)
	payload, err := base64.StdEncoding.DecodeString(strings.TrimSpace(lines[1]))
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"bad-base64": lines[0] + "\n" + strings.Replace(lines[1], "RW", "R!", 1),
		"short-key":  lines[0] + "\n" + base64.StdEncoding.EncodeToString(payload[:41]) + "\n",
		"long-key":   lines[0] + "\n" + base64.StdEncoding.EncodeToString(append(payload, 0)) + "\n",
	} {
		kd := filepath.Join(dir, "keys-"+name)
		os.Mkdir(kd, 0o755)
		fndWrite(t, filepath.Join(kd, f.fp), []byte(content), 0o644)
		f.badKeys[name] = kd
	}
	return f
}

// fndBlob is the bare ucert blob of formats.md §3.
func fndBlob(sig []byte) []byte {
	pad := (4 - len(sig)%4) % 4
	b := binary.BigEndian.AppendUint32(nil, uint32(8+len(sig)+pad))
	b = binary.BigEndian.AppendUint32(b, uint32(4+len(sig)))
	b = append(b, sig...)
	return append(b, make([]byte, pad)...)
}

func fndB64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func fndHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
