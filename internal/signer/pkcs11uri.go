package signer

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// pkcs11URI is the subset of RFC 7512 that Open understands:
//
//	pkcs11:token=LABEL;object=LABEL;id=%01?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=PIN
//
// Path attributes: token, serial, manufacturer, model, slot-id, object, id,
// type (must be "private" if given). Query attributes: module-path,
// pin-value, pin-source (file path or file: URI). The PIN may also come from
// TORWRT_PKCS11_PIN. Unknown attributes are refused, so a typo cannot
// silently select another key.
type pkcs11URI struct {
	Token, Serial, Manufacturer, Model string
	SlotID                             *uint
	Object                             string
	ID                                 []byte
	ModulePath                         string
	pin                                string // never printed
	PINSource                          string
}

func parsePKCS11URI(ref string) (*pkcs11URI, error) {
	desc := Redact(ref)
	rest, ok := strings.CutPrefix(ref, "pkcs11:")
	if !ok {
		return nil, fmt.Errorf("%w: %s: not a pkcs11: URI", ErrBadURI, desc)
	}
	path, query, _ := strings.Cut(rest, "?")
	u := &pkcs11URI{}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrBadURI, desc, fmt.Sprintf(format, a...))
	}
	seen := map[string]bool{}
	attr := func(part string) (string, string, error) {
		k, v, ok := strings.Cut(part, "=")
		if !ok || k == "" {
			return "", "", bad("attribute %q: want name=value", part)
		}
		if seen[k] {
			return "", "", bad("attribute %q given twice", k)
		}
		seen[k] = true
		val, err := url.PathUnescape(v)
		if err != nil {
			return "", "", bad("attribute %q: bad percent-encoding", k)
		}
		return k, val, nil
	}
	if path != "" {
		for _, part := range strings.Split(path, ";") {
			k, v, err := attr(part)
			if err != nil {
				return nil, err
			}
			switch k {
			case "token":
				u.Token = v
			case "serial":
				u.Serial = v
			case "manufacturer":
				u.Manufacturer = v
			case "model":
				u.Model = v
			case "object":
				u.Object = v
			case "id":
				u.ID = []byte(v)
			case "slot-id":
				n, err := strconv.ParseUint(v, 10, 32)
				if err != nil {
					return nil, bad("slot-id %q: want a decimal number", v)
				}
				s := uint(n)
				u.SlotID = &s
			case "type":
				if v != "private" {
					return nil, bad("type=%s: the signing key is the private key; use type=private or leave it out", v)
				}
			case "library-manufacturer", "library-description", "library-version", "slot-description", "slot-manufacturer":
				// Accepted and ignored: they describe, never select.
			default:
				return nil, bad("unknown path attribute %q", k)
			}
		}
	}
	if query != "" {
		for _, part := range strings.Split(query, "&") {
			k, v, err := attr(part)
			if err != nil {
				return nil, err
			}
			switch k {
			case "module-path":
				u.ModulePath = v
			case "pin-value":
				u.pin = v
			case "pin-source":
				u.PINSource = strings.TrimPrefix(v, "file:")
			case "module-name":
				return nil, bad("module-name is not supported; give the library's full path as module-path (SoftHSM2 on Debian: /usr/lib/softhsm/libsofthsm2.so)")
			default:
				return nil, bad("unknown query attribute %q", k)
			}
		}
	}
	if u.ModulePath == "" {
		return nil, bad("module-path is required, e.g. ?module-path=/usr/lib/softhsm/libsofthsm2.so")
	}
	if u.Object == "" && len(u.ID) == 0 {
		return nil, bad("name the key with object=LABEL or id=%%XX")
	}
	if u.pin != "" && u.PINSource != "" {
		return nil, bad("give pin-value or pin-source, not both")
	}
	return u, nil
}

// resolvePIN returns the user PIN: pin-value, then pin-source, then the
// environment.
func (u *pkcs11URI) resolvePIN(getenv func(string) string) (string, error) {
	if u.pin != "" {
		return u.pin, nil
	}
	if u.PINSource != "" {
		fi, err := os.Stat(u.PINSource)
		if err != nil {
			return "", fmt.Errorf("pkcs11 pin-source: %w", err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return "", fmt.Errorf("%w: pin-source %s has mode %04o; run: chmod 600 %s", ErrInsecureKeyFile, u.PINSource, fi.Mode().Perm(), u.PINSource)
		}
		b, err := os.ReadFile(u.PINSource)
		if err != nil {
			return "", fmt.Errorf("pkcs11 pin-source: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	if p := getenv(PINEnv); p != "" {
		return p, nil
	}
	return "", fmt.Errorf("%w: no PIN for the PKCS#11 token; set %s, or add pin-source=/path/to/pinfile to the URI", ErrBadURI, PINEnv)
}

func (u *pkcs11URI) keyName() string {
	var parts []string
	if u.Token != "" {
		parts = append(parts, "token "+strconv.Quote(u.Token))
	}
	if u.Object != "" {
		parts = append(parts, "object "+strconv.Quote(u.Object))
	}
	if len(u.ID) > 0 {
		parts = append(parts, fmt.Sprintf("id %x", u.ID))
	}
	return strings.Join(parts, ", ")
}
