package overlay

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/torwrt/torwrt/internal/uci"
)

// No secret shared by every router may ship in the image: root password,
// host keys, Wi-Fi passphrases and Tor keys are made on the device. These
// checks catch the ways one could slip in through a template, a brand or
// an extra file. They err on the side of refusing.

// secretPaths are files that only ever hold per-device secrets.
var secretPaths = []*regexp.Regexp{
	regexp.MustCompile(`^/etc/shadow-?$`),
	regexp.MustCompile(`^/etc/dropbear/dropbear_[a-z0-9]+_host_key$`),
	regexp.MustCompile(`^/etc/ssh/ssh_host_.*_key$`),
	regexp.MustCompile(`/(secret_id_key|secret_onion_key(_ntor)?|ed25519_master_id_secret_key(_encrypted)?|ed25519_signing_secret_key|hs_ed25519_secret_key|control_auth_cookie)$`),
	regexp.MustCompile(`^/etc/torwrt/device-secrets$`),
	regexp.MustCompile(`\.(sec|key)$`),
}

// crypt(3) hashes: $1$ MD5, $2?$ bcrypt, $5$/$6$ SHA-crypt, $y$ yescrypt.
var cryptHash = regexp.MustCompile(`\$(1|2[abxy]?|5|6|y|gy|7)\$[./A-Za-z0-9]`)

// secretOptions are UCI options that hold a credential.
var secretOptions = map[string]bool{
	"key": true, "key1": true, "key2": true, "key3": true, "key4": true,
	"password": true, "sae_password": true, "auth_secret": true, "acct_secret": true,
	"private_key": true, "priv_key": true, "preshared_key": true, "psk": true,
}

// usignSecretPrefix is how the base64 of a usign secret key ("Ed", then
// the KDF name "BK") begins.
const usignSecretPrefix = "RWRCSw"

func checkNoSecrets(f renderedFile) error {
	refuse := func(what string) error {
		return fmt.Errorf("overlay: %s %s; secrets are made on each router at first boot and never shipped in an image", f.path, what)
	}
	for _, re := range secretPaths {
		if re.MatchString(f.path) {
			return refuse("is a path that holds per-device secrets")
		}
	}
	for rest := f.data; ; {
		i := bytes.Index(rest, []byte("-----BEGIN "))
		if i < 0 {
			break
		}
		block, tail := pem.Decode(rest[i:])
		if block == nil {
			rest = rest[i+len("-----BEGIN "):]
			continue
		}
		if strings.Contains(block.Type, "PRIVATE KEY") {
			return refuse("contains a PEM " + block.Type)
		}
		rest = tail
	}
	for _, line := range bytes.Split(f.data, []byte("\n")) {
		if bytes.HasPrefix(bytes.TrimSpace(line), []byte(usignSecretPrefix)) {
			return refuse("contains a usign secret key")
		}
	}
	if bytes.HasPrefix(f.data, []byte("\x7fELF")) {
		// Executables hold arbitrary byte strings; the checks above are
		// the ones that cannot misfire on them.
		return nil
	}
	if m := cryptHash.Find(f.data); m != nil {
		return refuse(fmt.Sprintf("contains what looks like a password hash (%q...)", m))
	}
	if bytes.Contains(f.data, []byte("HashedControlPassword")) {
		return refuse("sets a Tor control password")
	}
	if dir, _ := path.Split(f.path); dir == "/etc/config/" {
		cfg, err := uci.ParseBytes(f.path, f.data)
		if err != nil {
			return fmt.Errorf("overlay: %s: %w", f.path, err)
		}
		for _, s := range cfg.Sections {
			for _, o := range s.Options {
				if !secretOptions[o.Name] {
					continue
				}
				for _, v := range o.Values {
					if v != "" {
						return refuse(fmt.Sprintf("sets option %s at line %d", o.Name, o.Line))
					}
				}
			}
		}
	}
	return nil
}
