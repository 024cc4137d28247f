package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/torwrt/torwrt/internal/cliout"
	"github.com/torwrt/torwrt/internal/manifest"
	"github.com/torwrt/torwrt/internal/updater"
	"github.com/torwrt/torwrt/internal/usign"
)

// Exit codes of `manifest verify`, `check` and `daemon`, after the ones
// `verify image` defines in main.go (0-6 keep their meaning). Documented in
// docs/updates.md; scripts branch on them, so they never change meaning.
const (
	exitThreshold  = 7  // fewer than M valid signatures from distinct trusted keys
	exitExpired    = 8  // manifest past not_after (against the effective time)
	exitReplay     = 9  // manifest older than the last accepted one
	exitRollback   = 10 // release not newer than installed, or below the floor
	exitTooLarge   = 11 // manifest or image larger than allowed
	exitMismatch   = 12 // image hash or size differs from the manifest
	exitNoMemory   = 13 // not enough free RAM for the image
	exitSysupgrade = 14 // sysupgrade --test refused the image, or flashing failed
	exitNetwork    = 15 // no mirror answered (Tor down, mirrors down, timeouts)
	exitBusy       = 16 // another update check holds the lock
	exitChannel    = 17 // a signed manifest of another release channel
)

func init() {
	extraCommands["manifest"] = runManifest
}

// exitCodeForUpdate maps manifest and updater errors, then image errors.
// The most specific sentinel wins: a mirror list error that wraps a
// refusal reports the refusal.
func exitCodeForUpdate(err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, manifest.ErrTooLarge), errors.Is(err, updater.ErrTooLarge):
		return exitTooLarge
	case errors.Is(err, manifest.ErrThreshold):
		return exitThreshold
	case errors.Is(err, manifest.ErrExpired):
		return exitExpired
	case errors.Is(err, manifest.ErrReplay):
		return exitReplay
	case errors.Is(err, manifest.ErrRollback):
		return exitRollback
	case errors.Is(err, manifest.ErrWrongBoard):
		return exitWrongBoard
	case errors.Is(err, updater.ErrWrongChannel):
		return exitChannel
	case errors.Is(err, manifest.ErrMalformed), errors.Is(err, manifest.ErrBadSchema):
		return exitMalformed
	case errors.Is(err, updater.ErrHashMismatch):
		return exitMismatch
	case errors.Is(err, updater.ErrNoMemory):
		return exitNoMemory
	case errors.Is(err, updater.ErrSysupgrade):
		return exitSysupgrade
	case errors.Is(err, updater.ErrBusy):
		return exitBusy
	case errors.Is(err, manifest.ErrConfig), errors.Is(err, updater.ErrConfiguration):
		return exitUsage
	}
	if code := exitCodeFor(err); code != exitFailure {
		return code
	}
	if errors.Is(err, updater.ErrMirrors) || errors.Is(err, updater.ErrTimeout) {
		return exitNetwork
	}
	return exitFailure
}

func runManifest(ctx context.Context, stdout, stderr io.Writer, args []string) int {
	// With --json, stdout carries exactly one document, whatever happens;
	// stderr has the message for people either way.
	doc := cliout.Document[*manifestVerifyResult]{Schema: cliout.Schema("verify", "manifest", "verify")}
	asJSON := cliout.JSONFlag(args)
	finish := func(code int, err error) int {
		if asJSON {
			doc.OK, doc.ExitCode = code == exitOK, code
			if err != nil {
				doc.Error = &cliout.Error{Code: errorCode(code, err), Message: err.Error()}
			}
			cliout.Write(stdout, doc)
		}
		return code
	}
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "verify manifest verify: %v\n", err)
		return finish(code, err)
	}
	reject := func(file string, err error) int {
		fmt.Fprintf(stderr, "verify manifest verify: REJECTED %s: %v\n", file, err)
		return finish(exitCodeForUpdate(err), err)
	}
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprintln(stderr, "usage: verify manifest verify --keys DIR --threshold M [--board NAME --installed BUILD] [--now TIME] [--state FILE] [--json] FILE")
		return finish(exitUsage, errors.New("want: verify manifest verify [flags] FILE"))
	}
	fs := flag.NewFlagSet("verify manifest verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keys := fs.String("keys", "/etc/opkg/keys", "directory of trusted usign public keys named by fingerprint")
	threshold := fs.Int("threshold", 1, "number of distinct trusted keys that must have signed")
	board := fs.String("board", "", "also select the release for this board")
	installed := fs.Uint64("installed", 0, "installed build number, for the anti-rollback check with --board")
	nowFlag := fs.String("now", "", "judge expiry at this RFC 3339 time instead of the system clock")
	statePath := fs.String("state", "", "updater state file: also check freshness against the last accepted manifest")
	fs.BoolVar(&asJSON, "json", asJSON, "print one JSON document on stdout, success or failure (docs/cli.md)")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		// The flag package printed the error and the usage to stderr.
		return finish(exitUsage, err)
	}
	if fs.NArg() != 1 {
		return fail(exitUsage, errors.New("want one FILE"))
	}
	file := fs.Arg(0)
	now := time.Now()
	if *nowFlag != "" {
		t, err := time.Parse(time.RFC3339, *nowFlag)
		if err != nil {
			return fail(exitUsage, fmt.Errorf("--now %q: want RFC 3339, e.g. 2025-11-01T12:00:00Z", *nowFlag))
		}
		now = t
	}
	kr, err := usign.LoadKeyDir(*keys)
	if err != nil {
		return fail(exitFailure, err)
	}
	var st manifest.State
	if *statePath != "" {
		s, err := updater.ReadState(*statePath)
		if err != nil {
			return fail(exitFailure, err)
		}
		st = s.Manifest
	}
	b, err := readManifestFile(file)
	if err != nil {
		return reject(file, err)
	}
	v, err := manifest.Check(b, kr, *threshold, now, st)
	if err != nil {
		return reject(file, err)
	}
	m := v.Manifest
	var rel *manifest.Release
	if *board != "" {
		rel, err = manifest.Select(m, *board, *installed)
		if err != nil && !errors.Is(err, manifest.ErrUpToDate) {
			return reject(file, err)
		}
	}
	if asJSON {
		doc.Result = &manifestVerifyResult{File: file, PayloadSHA256: v.Digest, Manifest: m, SignedBy: []cliout.Key{}, Selected: rel}
		for _, k := range v.Keys {
			doc.Result.SignedBy = append(doc.Result.SignedBy, cliout.Key{Fingerprint: k})
		}
		return finish(exitOK, nil)
	}
	fmt.Fprintf(stdout, "OK %s: channel %s, sequence %d, valid until %s, signed by %d keys %v, %d releases\n",
		file, m.Channel, m.Sequence, m.NotAfter.Format(time.RFC3339), len(v.Keys), v.Keys, len(m.Releases))
	if rel != nil {
		fmt.Fprintf(stdout, "release for %s: %s build %d, %s (%d bytes, sha256 %s)\n", *board, rel.Version, rel.Build, rel.Image, rel.Size, rel.SHA256)
	} else if *board != "" {
		fmt.Fprintf(stdout, "board %s: build %s is installed and the newest\n", *board, strconv.FormatUint(*installed, 10))
	}
	return exitOK
}

// manifestVerifyResult is the result of `manifest verify --json`
// (torwrt.verify.manifest.verify/v1).
type manifestVerifyResult struct {
	File          string             `json:"file"`
	PayloadSHA256 string             `json:"payload_sha256"`
	SignedBy      []cliout.Key       `json:"signed_by"` // the distinct trusted keys counted
	Manifest      *manifest.Manifest `json:"manifest"`
	// Selected is the release for --board, absent when the installed
	// build is the newest.
	Selected *manifest.Release `json:"selected,omitempty"`
}

// errorCode is the stable code (docs/cli.md) of a refusal that exits with
// code; usign tells an unknown key from a bad signature under exit 4.
func errorCode(code int, err error) string {
	switch code {
	case exitUsage:
		if errors.Is(err, manifest.ErrConfig) || errors.Is(err, updater.ErrConfiguration) {
			return cliout.CodeConfig
		}
		return cliout.CodeUsage
	case exitUnsigned:
		return cliout.CodeUnsigned
	case exitBadSig:
		if errors.Is(err, usign.ErrUnknownKey) {
			return cliout.CodeUnknownKey
		}
		return cliout.CodeBadSignature
	case exitWrongBoard:
		return cliout.CodeWrongBoard
	case exitMalformed:
		return cliout.CodeMalformed
	case exitThreshold:
		return cliout.CodeThreshold
	case exitExpired:
		return cliout.CodeExpired
	case exitReplay:
		return cliout.CodeReplay
	case exitRollback:
		return cliout.CodeRollback
	case exitTooLarge:
		return cliout.CodeTooLarge
	case exitMismatch:
		return cliout.CodeMismatch
	case exitNoMemory:
		return cliout.CodeNoMemory
	case exitSysupgrade:
		return cliout.CodeSysupgrade
	case exitNetwork:
		return cliout.CodeNetwork
	case exitBusy:
		return cliout.CodeBusy
	}
	if errors.Is(err, os.ErrNotExist) {
		return cliout.CodeNotFound
	}
	return cliout.CodeFailed
}

// readManifestFile reads at most manifest.MaxSize+1 bytes, so a huge file
// is refused as too large without being read whole.
func readManifestFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, manifest.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > manifest.MaxSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", manifest.ErrTooLarge, path, manifest.MaxSize)
	}
	return b, nil
}
