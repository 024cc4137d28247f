// Command verify runs on the router. `verify image` refuses any sysupgrade
// image that is not signed by a release key; later verbs fetch and install
// signed updates over Tor.
//
// Keep its imports small: it is cross-compiled for 16 MB-flash MIPS boards.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/torwrt/torwrt/internal/fwimage"
	"github.com/torwrt/torwrt/internal/imagesig"
	"github.com/torwrt/torwrt/internal/ucert"
	"github.com/torwrt/torwrt/internal/usign"
)

// boardNameFile is where OpenWrt's board detection writes the board name.
const boardNameFile = "/tmp/sysinfo/board_name"

// version is set at build time with -ldflags "-X main.version=...".
var version = "devel"

// Exit codes of `verify image`, documented in docs/cli.md. Scripts on the
// router branch on them, so they never change meaning.
const (
	exitOK         = 0
	exitFailure    = 1 // could not read the image or keys
	exitUsage      = 2
	exitUnsigned   = 3 // no signature, or the fake certificate
	exitBadSig     = 4 // unknown key, bad or all-zero signature
	exitWrongBoard = 5
	exitMalformed  = 6 // chunk chain, CRC, metadata or ucert blob broken
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Stdout, os.Stderr, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, stdout, stderr io.Writer, args []string) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "--version", "-version", "version":
		fmt.Fprintf(stdout, "torwrt-verify %s\n", version)
		return exitOK
	case "-h", "--help", "help":
		usage(stdout)
		return exitOK
	case "image":
		return runImage(stdout, stderr, args[1:])
	}
	if cmd, ok := extraCommands[args[0]]; ok {
		return cmd(ctx, stdout, stderr, args[1:])
	}
	fmt.Fprintf(stderr, "verify: unknown command %q\n", args[0])
	usage(stderr)
	return exitUsage
}

// extraCommands lets other files of the package add verbs.
var extraCommands = map[string]func(ctx context.Context, stdout, stderr io.Writer, args []string) int{}

func usage(w io.Writer) {
	fmt.Fprintf(w, `torwrt-verify %s: the router's update checker and status page

Usage:
  verify daemon [--config FILE] [--debug] [--check-config]
      run the status page (/torbox), the first-boot setup view
      (/torbox/setup) and periodic signed update checks over Tor;
      --check-config loads the config and what it names, then exits
  verify check [--once] [--config FILE] [--ignore-rollout] [--json] [--debug]
      one update check now
  verify status [--config FILE] [--addr HOST:PORT] [--local]
      print the status page's JSON
  verify manifest verify --keys DIR --threshold M [--board NAME --installed BUILD]
                         [--now RFC3339] [--state FILE] [--json] FILE
      check a signed update manifest offline
  verify image --keys DIR [--board NAME | --any-board] IMAGE
      check a sysupgrade image's signature and board; without --board
      the board is read from %s, and without either it refuses
  verify --version

FILE defaults to %s.

Exit codes: 0 accepted, installed, up to date or deferred; 1 local error;
2 usage or configuration; 3 image unsigned; 4 bad signature or unknown key;
5 wrong board; 6 malformed image or manifest; 7-16 manifest and update
refusals (threshold, expired, replay, rollback, too large, hash mismatch,
no memory, sysupgrade, no mirror, busy): see docs/updates.md.
`, version, boardNameFile, defaultConfigPath)
}

func runImage(stdout, stderr io.Writer, args []string) int {
	fs := flag.NewFlagSet("verify image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keys := fs.String("keys", "/etc/opkg/keys", "directory of trusted usign public keys named by fingerprint")
	board := fs.String("board", "", "require this board in the image metadata (default: the content of "+boardNameFile+")")
	anyBoard := fs.Bool("any-board", false, "skip the board check (host-side use only; the router must always check its board)")
	quiet := fs.Bool("q", false, "print nothing on success")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "verify image: want one IMAGE")
		return exitUsage
	}
	img := fs.Arg(0)
	// Fail closed: an image signed by a genuine key for another board must
	// never pass because the board is unknown.
	switch {
	case *anyBoard && *board != "":
		fmt.Fprintln(stderr, "verify image: give --board NAME or --any-board, not both")
		return exitUsage
	case *anyBoard:
	case *board == "":
		b, err := os.ReadFile(boardNameFile)
		if err != nil || len(trimSpace(b)) == 0 {
			why := "is empty"
			if err != nil {
				why = "cannot be read: " + err.Error()
			}
			fmt.Fprintf(stderr, "verify image: REFUSED %s: no board to check the image against (%s %s); give --board NAME, or --any-board to skip the check on a build host\n", img, boardNameFile, why)
			return exitUsage
		}
		*board = string(trimSpace(b))
	}
	kr, err := usign.LoadKeyDir(*keys)
	if err != nil {
		fmt.Fprintf(stderr, "verify image: %v\n", err)
		return exitFailure
	}
	res, err := imagesig.VerifyFile(img, kr, imagesig.Options{Board: *board})
	if err != nil {
		fmt.Fprintf(stderr, "verify image: REJECTED %s: %v\n", img, err)
		return exitCodeFor(err)
	}
	if !*quiet {
		fmt.Fprintf(stdout, "OK %s: signed by %s, boards %v, version %s\n", img, res.Key, res.Metadata.SupportedDevices, res.Metadata.Version.Version)
	}
	return exitOK
}

func exitCodeFor(err error) int {
	switch {
	case errors.Is(err, imagesig.ErrUnsigned):
		return exitUnsigned
	case errors.Is(err, usign.ErrUnknownKey), errors.Is(err, usign.ErrBadSignature):
		return exitBadSig
	case errors.Is(err, imagesig.ErrWrongBoard):
		return exitWrongBoard
	case errors.Is(err, fwimage.ErrMalformed), errors.Is(err, fwimage.ErrCRC),
		errors.Is(err, fwimage.ErrUnknownType), errors.Is(err, fwimage.ErrTooLarge),
		errors.Is(err, ucert.ErrMalformed), errors.Is(err, usign.ErrMalformed),
		errors.Is(err, imagesig.ErrNoMetadata):
		return exitMalformed
	}
	return exitFailure
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
