// Package updatertest builds what update tests need: deterministic usign
// keys, signed and broken sysupgrade images, signed manifests, a recording
// SOCKS5 server standing in for Tor, and a sysupgrade stand-in that logs
// its argv. Only tests import it.
package updatertest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/torwrt/torwrt/internal/fwimage"
	"github.com/torwrt/torwrt/internal/imagesig/imagesign"
	"github.com/torwrt/torwrt/internal/manifest"
	"github.com/torwrt/torwrt/internal/signer"
	"github.com/torwrt/torwrt/internal/ucert"
	"github.com/torwrt/torwrt/internal/usign"
)

// Board is the board name test routers have.
const Board = "glinet,gl-ar150"

// DetReader is a deterministic byte stream (sha256 in counter mode), so
// keys and images are the same on every run and architecture.
type DetReader struct {
	Seed []byte
	n    uint64
	buf  []byte
}

func (r *DetReader) Read(p []byte) (int, error) {
	for len(r.buf) < len(p) {
		var c [8]byte
		binary.BigEndian.PutUint64(c[:], r.n)
		r.n++
		h := sha256.Sum256(append(append([]byte{}, r.Seed...), c[:]...))
		r.buf = append(r.buf, h[:]...)
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// Keys makes n usign keys from seed and a keyring trusting all of them.
func Keys(tb testing.TB, n int, seed string) ([]*usign.SecretKey, *usign.Keyring) {
	tb.Helper()
	r := &DetReader{Seed: []byte(seed)}
	kr, _ := usign.NewKeyring()
	var out []*usign.SecretKey
	for i := 0; i < n; i++ {
		k, err := usign.GenerateKey(r, "torwrt test key")
		if err != nil {
			tb.Fatal(err)
		}
		if err := kr.Add(k.Public()); err != nil {
			tb.Fatal(err)
		}
		out = append(out, k)
	}
	return out, kr
}

// WriteKeyDir writes the public keys in /etc/opkg/keys layout.
func WriteKeyDir(tb testing.TB, dir string, keys ...*usign.SecretKey) {
	tb.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	for _, k := range keys {
		pub := k.Public()
		if err := os.WriteFile(filepath.Join(dir, pub.Fingerprint.String()), pub.Marshal(), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// SigKind is how an image's signature chunk is made.
type SigKind int

const (
	Signed   SigKind = iota // a real signature by Spec.Key
	Unsigned                // no signature chunk
	ZeroSig                 // an all-zero signature claiming Spec.Key's fingerprint
	FakeCert                // the "# fake certificate" placeholder
)

// ImageSpec describes a test sysupgrade image.
type ImageSpec struct {
	PayloadSize int // bytes of fake firmware before the chunks
	Boards      []string
	Version     string
	Key         *usign.SecretKey
	Sig         SigKind
}

// Image builds the image bytes: payload, metadata chunk (stock JSON), and
// the signature chunk the spec asks for.
func Image(tb testing.TB, s ImageSpec) []byte {
	tb.Helper()
	if s.Version == "" {
		s.Version = "24.10.3"
	}
	if len(s.Boards) == 0 {
		s.Boards = []string{Board, "gl-ar150"}
	}
	payload := make([]byte, s.PayloadSize)
	// A cheap pattern that differs per version, so two images of the
	// same size have different hashes.
	seed := sha256.Sum256([]byte(s.Version))
	for i := 0; i < len(payload); i += 32 {
		copy(payload[i:], seed[:])
		seed[0]++
	}
	meta := &fwimage.Metadata{
		MetadataVersion: "1.1", CompatVersion: "1.0", SupportedDevices: s.Boards,
		Version: fwimage.Version{Dist: "torwrt", Version: s.Version, Revision: "r1-test", Target: "ath79/generic", Board: "glinet_gl-ar150"},
	}
	js, err := meta.MarshalStock()
	if err != nil {
		tb.Fatal(err)
	}
	var withMeta bytes.Buffer
	if err := fwimage.AppendChunk(&withMeta, bytes.NewReader(payload), fwimage.TypeMetadata, fwimage.MetadataChunk(js)); err != nil {
		tb.Fatal(err)
	}
	var chunk []byte
	switch s.Sig {
	case Unsigned:
		return withMeta.Bytes()
	case Signed:
		sg, err := signer.FromUsign(s.Key)
		if err != nil {
			tb.Fatal(err)
		}
		signed, err := imagesign.Sign(tb.Context(), bytes.NewReader(withMeta.Bytes()), int64(withMeta.Len()), sg)
		if err != nil {
			tb.Fatal(err)
		}
		chunk = signed.Chunk
	case ZeroSig:
		sig := &usign.Signature{Fingerprint: s.Key.Fingerprint}
		if chunk, err = ucert.EncodeSignature(sig.Marshal()); err != nil {
			tb.Fatal(err)
		}
	case FakeCert:
		chunk = []byte(fwimage.FakeCertificate + "\n")
	}
	var out bytes.Buffer
	if err := fwimage.AppendChunk(&out, bytes.NewReader(withMeta.Bytes()), fwimage.TypeSignature, chunk); err != nil {
		tb.Fatal(err)
	}
	return out.Bytes()
}

// Sum is the hex sha256 of b.
func Sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Release describes img as a manifest release for the test board.
func Release(img []byte, name string, build uint64) manifest.Release {
	return manifest.Release{
		Profile: "gl-ar150", Board: []string{Board, "gl-ar150"}, Version: "24.10.3-torwrt" + itoa(build), Build: build,
		Image: name, Size: int64(len(img)), SHA256: Sum(img), TorVersion: "0.4.8.13", MinVersion: 1,
		Rollout: manifest.Rollout{Group: "default", Priority: 100},
	}
}

func itoa(n uint64) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// T0 is the issue time of test manifests.
var T0 = time.Date(2025, 11, 1, 12, 0, 0, 0, time.UTC)

// Manifest makes a manifest issued at T0, valid 7 days.
func Manifest(seq uint64, rels ...manifest.Release) *manifest.Manifest {
	return &manifest.Manifest{Schema: 1, Channel: "stable", IssuedAt: T0, NotAfter: T0.Add(7 * 24 * time.Hour), Sequence: seq, Releases: rels}
}

// Envelope encodes m and signs it with keys.
func Envelope(tb testing.TB, m *manifest.Manifest, keys ...*usign.SecretKey) []byte {
	tb.Helper()
	env, err := manifest.NewEnvelope(m)
	if err != nil {
		tb.Fatal(err)
	}
	for _, k := range keys {
		sig, err := k.Sign(env.Signed)
		if err != nil {
			tb.Fatal(err)
		}
		if err := env.AddSignature(sig); err != nil {
			tb.Fatal(err)
		}
	}
	b, err := env.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// RawEnvelope builds an envelope around m's payload with the given
// signatures, bypassing Sign's refusal of repeated keys, as an attacker
// would.
func RawEnvelope(tb testing.TB, m *manifest.Manifest, sigs ...*usign.Signature) []byte {
	tb.Helper()
	p, err := manifest.Encode(m)
	if err != nil {
		tb.Fatal(err)
	}
	env := &manifest.Envelope{Signed: p}
	for _, s := range sigs {
		env.Signatures = append(env.Signatures, manifest.Signature{KeyID: s.Fingerprint, Sig: s})
	}
	b, err := env.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// Connect is one CONNECT request the SOCKS server saw.
type Connect struct {
	// AddrType is the SOCKS5 ATYP: 1 IPv4, 3 domain name, 4 IPv6.
	AddrType byte
	Host     string
	Port     uint16
	User     string
}

// SOCKS is a minimal SOCKS5 server (RFC 1928, with RFC 1929
// username/password) that records every CONNECT and forwards it to the
// address Route returns. It stands in for Tor's SocksPort.
type SOCKS struct {
	Addr  string
	Route func(host string, port uint16) string

	mu       sync.Mutex
	connects []Connect
	ln       net.Listener
}

// StartSOCKS listens on 127.0.0.1 and serves until the test ends.
func StartSOCKS(tb testing.TB, route func(host string, port uint16) string) *SOCKS {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &SOCKS{Addr: ln.Addr().String(), Route: route, ln: ln}
	go s.serve()
	tb.Cleanup(func() { ln.Close() })
	return s
}

// Connects returns what the server has seen so far.
func (s *SOCKS) Connects() []Connect {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Connect(nil), s.connects...)
}

func (s *SOCKS) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.handle(c)
	}
}

func (s *SOCKS) handle(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 512)
	if _, err := io.ReadFull(c, buf[:2]); err != nil || buf[0] != 5 {
		return
	}
	methods := buf[2 : 2+int(buf[1])]
	if _, err := io.ReadFull(c, methods); err != nil {
		return
	}
	user := ""
	switch {
	case bytes.IndexByte(methods, 2) >= 0:
		c.Write([]byte{5, 2})
		if _, err := io.ReadFull(c, buf[:2]); err != nil || buf[0] != 1 {
			return
		}
		u := make([]byte, buf[1])
		if _, err := io.ReadFull(c, u); err != nil {
			return
		}
		if _, err := io.ReadFull(c, buf[:1]); err != nil {
			return
		}
		if _, err := io.ReadFull(c, make([]byte, buf[0])); err != nil {
			return
		}
		user = string(u)
		c.Write([]byte{1, 0})
	case bytes.IndexByte(methods, 0) >= 0:
		c.Write([]byte{5, 0})
	default:
		c.Write([]byte{5, 0xff})
		return
	}
	if _, err := io.ReadFull(c, buf[:4]); err != nil || buf[0] != 5 || buf[1] != 1 {
		return
	}
	cn := Connect{AddrType: buf[3], User: user}
	switch buf[3] {
	case 1, 4:
		ip := make([]byte, map[byte]int{1: 4, 4: 16}[buf[3]])
		if _, err := io.ReadFull(c, ip); err != nil {
			return
		}
		cn.Host = net.IP(ip).String()
	case 3:
		if _, err := io.ReadFull(c, buf[:1]); err != nil {
			return
		}
		name := make([]byte, buf[0])
		if _, err := io.ReadFull(c, name); err != nil {
			return
		}
		cn.Host = string(name)
	default:
		return
	}
	if _, err := io.ReadFull(c, buf[:2]); err != nil {
		return
	}
	cn.Port = binary.BigEndian.Uint16(buf[:2])
	s.mu.Lock()
	s.connects = append(s.connects, cn)
	s.mu.Unlock()
	target := s.Route(cn.Host, cn.Port)
	up, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		c.Write([]byte{5, 4, 0, 1, 0, 0, 0, 0, 0, 0}) // host unreachable
		return
	}
	defer up.Close()
	c.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	c.SetDeadline(time.Time{})
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(c, up); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	<-done
	<-done
}

// Sysupgrade writes a stand-in for /sbin/sysupgrade into dir: a shell
// script that appends its argv as one line to the returned log and exits
// with testExit for `--test` and 0 otherwise.
func Sysupgrade(tb testing.TB, dir string, testExit int) (path, log string) {
	tb.Helper()
	path = filepath.Join(dir, "sysupgrade")
	log = filepath.Join(dir, "sysupgrade.log")
	script := "#!/bin/sh\necho \"$*\" >> '" + log + "'\n" +
		"if [ \"$1\" = --test ]; then exit " + itoa(uint64(testExit)) + "; fi\nexit 0\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		tb.Fatal(err)
	}
	return path, log
}

// Calls returns the argv lines the stand-in logged.
func Calls(tb testing.TB, log string) []string {
	tb.Helper()
	b, err := os.ReadFile(log)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		tb.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// FlashCalls returns the logged calls that would have flashed: any call
// that is not `--test`.
func FlashCalls(tb testing.TB, log string) []string {
	var out []string
	for _, c := range Calls(tb, log) {
		if !strings.HasPrefix(c, "--test ") {
			out = append(out, c)
		}
	}
	return out
}

// MemInfo writes a /proc/meminfo stand-in with the given MemAvailable.
func MemInfo(tb testing.TB, dir string, avail int64) string {
	tb.Helper()
	p := filepath.Join(dir, "meminfo")
	s := "MemTotal:       60000 kB\nMemFree:        1000 kB\nMemAvailable:   " + itoa(uint64(avail>>10)) + " kB\n"
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}

// Trickle is a mirror that sends the headers of a size-byte response and
// then one byte every 50 ms: fast enough for any stall timeout, far too
// slow to ever finish. It stops when the client or the test is done.
func Trickle(t testing.TB, size int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		w.WriteHeader(200)
		for range size {
			if _, err := w.Write([]byte{0}); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-t.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}
