// Package cliout is the --json contract of torwrt's two programs: the
// envelope every document has, and the objects (error, key, signature,
// image chunk) that more than one verb reports, so each has one shape.
// docs/cli.md documents it; tests decode strictly into these types.
//
// It is pure and uses only the standard library: the router's cmd/verify
// imports it.
package cliout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Version is the schema version of every document. It changes only when a
// field is removed or changes meaning; adding a field does not.
const Version = "v1"

// Schema names the document a verb prints: torwrt.<program>.<verb>/v1,
// with a subverb joined by a dot: torwrt.imgbuild.release.sign/v1.
func Schema(program string, verb ...string) string {
	s := "torwrt." + program
	for _, v := range verb {
		s += "." + v
	}
	return s + "/" + Version
}

// Document is the envelope: exactly one per run with --json, on stdout,
// success or failure. Result is the verb's own document; on failure it is
// absent unless the verb's documentation says what it holds then.
type Document[T any] struct {
	Schema   string `json:"schema"`
	OK       bool   `json:"ok"`
	ExitCode int    `json:"exit_code"`
	Error    *Error `json:"error,omitempty"`
	Result   T      `json:"result,omitempty"`
}

// Error is why a run failed. Code is stable and machine-readable (one of
// the Code constants); Message is for people and may change.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Details lists the problems one by one when there are several (brand
	// check names every problem with its file and line).
	Details []string `json:"details,omitempty"`
}

// Error codes. Both programs use these strings for the same causes.
const (
	CodeUsage        = "usage"         // bad flags or arguments
	CodeFailed       = "failed"        // anything without a more specific code
	CodeRejected     = "rejected"      // a verification refused its input, no more specific code
	CodeNotFound     = "not_found"     // a named file, profile or brand does not exist
	CodeNotAnImage   = "not_an_image"  // no fwtool trailer: not a sysupgrade image
	CodeUnsigned     = "unsigned"      // no signature chunk, or OpenWrt's fake certificate
	CodeBadSignature = "bad_signature" // a signature does not verify (or is all zeros)
	CodeUnknownKey   = "unknown_key"   // signed by a key that is not trusted
	CodeWrongBoard   = "wrong_board"   // the image or release is for another board
	CodeMalformed    = "malformed"     // chunk chain, CRC, metadata, ucert, manifest or key list broken
	CodeThreshold    = "threshold"     // fewer valid signatures from distinct trusted keys than required
	CodeExpired      = "expired"       // past not_after, or a certificate outside its validity window
	CodeReplay       = "replay"        // manifest older than the last accepted one
	CodeRollback     = "rollback"      // release not newer than the installed build, or below the floor
	CodeTooLarge     = "too_large"     // a file larger than allowed
	CodeMismatch     = "mismatch"      // a hash or size differs from what a signed document says
	CodeConfig       = "config"        // a configuration file or key directory is unusable
	CodeInvalid      = "invalid"       // an input failed validation (brand check, a changed release)
	CodeStale        = "stale"         // lock --check: the lock file is out of date
	CodeDiffer       = "differ"        // diff --exit-code: the images differ
	CodeNoLock       = "no_lock"       // a profile has no lock file, or one that no longer matches it
	CodeInsecureKey  = "insecure_key"  // a secret key file readable by other users
	CodeKeyType      = "key_type"      // a --key that cannot sign: a public key, an unsupported type, a bad reference
	// cmd/verify's update refusals (exit codes 13-16).
	CodeNoMemory   = "no_memory"  // not enough free RAM for the image
	CodeSysupgrade = "sysupgrade" // sysupgrade --test refused the image, or flashing failed
	CodeNetwork    = "network"    // no mirror answered
	CodeBusy       = "busy"       // another update check holds the lock
)

// Key is a usign key as every document names it.
type Key struct {
	Fingerprint string `json:"fingerprint"` // 16 hex digits, the usign key id
	Comment     string `json:"comment,omitempty"`
	File        string `json:"file,omitempty"` // where the key is, when the verb read or wrote a file
}

// KeyRef is a Key for a fingerprint, or nil for "".
func KeyRef(fingerprint string) *Key {
	if fingerprint == "" {
		return nil
	}
	return &Key{Fingerprint: fingerprint}
}

// Signature describes an image's signature chunk.
type Signature struct {
	// Verified says the signature was checked against trusted keys
	// (verify); inspect and diff only read it.
	Verified bool `json:"verified"`
	// FakeCertificate is OpenWrt's placeholder for an unsigned image.
	FakeCertificate bool `json:"fake_certificate"`
	// ChainLength is the number of ucert chain elements: 1 when the
	// release key signed directly, 2 when it certified a build key.
	ChainLength int `json:"chain_length"`
	// Key made the signature over the image (the build key in a chain).
	Key *Key `json:"key,omitempty"`
	// Issuer certified Key in a 2-element chain (the release key).
	Issuer *Key `json:"issuer,omitempty"`
	// ValidFrom and ExpiresAt bound a build key's certificate (unix s).
	ValidFrom int64 `json:"valid_from,omitempty"`
	ExpiresAt int64 `json:"expires_at,omitempty"`
	// Problem is why the chunk could not be read, when it could not.
	Problem string `json:"problem,omitempty"`
}

// Chunk is one fwtool chunk of an image.
type Chunk struct {
	Type   string `json:"type"`    // "metadata", "signature", or unknown(N)
	TypeID uint8  `json:"type_id"` // fwtool's type byte: 0 signature, 1 metadata
	Offset int64  `json:"offset"`  // first byte of the chunk's data
	Len    int64  `json:"len"`     // data length, trailer excluded
	CRC    uint32 `json:"crc"`
	CRCOK  bool   `json:"crc_ok"`
	// Signature, for a signature chunk.
	Signature *Signature `json:"signature,omitempty"`
	// Problem is why a metadata chunk could not be parsed.
	Problem string `json:"problem,omitempty"`
}

// JSONFlag reports whether args (a verb's command line, up to "--") turn
// on a boolean --json flag: -json, --json, or --json=true. A verb uses it
// when its flags failed to parse, to report that failure as a document.
func JSONFlag(args []string) bool {
	on := false
	for _, a := range args {
		if a == "--" || !strings.HasPrefix(a, "-") {
			if a == "--" {
				break
			}
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name != "json" {
			continue
		}
		b, err := strconv.ParseBool(val)
		on = !hasVal || (err == nil && b)
	}
	return on
}

// Write writes doc as indented JSON followed by a newline.
func Write[T any](w io.Writer, doc Document[T]) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// Decode reads exactly one document from data, refusing unknown fields
// and anything after the document but white space.
func Decode[T any](data []byte) (Document[T], error) {
	var doc Document[T]
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return doc, err
	}
	if dec.More() {
		return doc, errTrailing
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err != io.EOF {
		return doc, errTrailing
	}
	return doc, nil
}

// Codes are all error codes, as docs/cli.md lists them.
var Codes = []string{
	CodeUsage, CodeFailed, CodeRejected, CodeNotFound, CodeNotAnImage, CodeUnsigned, CodeBadSignature,
	CodeUnknownKey, CodeWrongBoard, CodeMalformed, CodeThreshold, CodeExpired, CodeReplay, CodeRollback,
	CodeTooLarge, CodeMismatch, CodeConfig, CodeInvalid, CodeStale, CodeDiffer, CodeNoLock, CodeInsecureKey,
	CodeKeyType, CodeNoMemory, CodeSysupgrade, CodeNetwork, CodeBusy,
}

// Check is the contract test both programs' tests use: stdout holds
// exactly one document and nothing else, it decodes strictly into T, its
// schema is the one given, ok and exit_code agree with the exit code the
// process returned, and a failure (only) has an error with a known code
// and a message.
func Check[T any](stdout []byte, schema string, exit int) (Document[T], error) {
	doc, err := Decode[T](stdout)
	if err != nil {
		return doc, fmt.Errorf("stdout is not one %s document: %w", schema, err)
	}
	var problems []string
	if doc.Schema != schema {
		problems = append(problems, fmt.Sprintf("schema %q, want %q", doc.Schema, schema))
	}
	if doc.ExitCode != exit || doc.OK != (exit == 0) {
		problems = append(problems, fmt.Sprintf("ok %v, exit_code %d, but the process exited %d", doc.OK, doc.ExitCode, exit))
	}
	switch {
	case doc.OK && doc.Error != nil:
		problems = append(problems, fmt.Sprintf("ok with an error %+v", *doc.Error))
	case !doc.OK && doc.Error == nil:
		problems = append(problems, "failed without an error object")
	case !doc.OK && (doc.Error.Message == "" || !slices.Contains(Codes, doc.Error.Code)):
		problems = append(problems, fmt.Sprintf("error %+v: want a message and a documented code", *doc.Error))
	}
	if !bytes.HasSuffix(stdout, []byte("}\n")) {
		problems = append(problems, "the document does not end in a newline")
	}
	if problems != nil {
		return doc, errors.New(strings.Join(problems, "; "))
	}
	return doc, nil
}

type decodeError string

func (e decodeError) Error() string { return string(e) }

const errTrailing = decodeError("more than one JSON value")
