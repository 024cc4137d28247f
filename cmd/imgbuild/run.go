package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// env is what a verb may touch of the process, so tests run the whole CLI
// in-process and read its output.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

func stdEnv() env {
	return env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
}

// Exit codes, documented in docs/cli.md.
const (
	exitOK       = 0
	exitFailure  = 1 // the operation failed (I/O, build error, ...)
	exitUsage    = 2 // bad flags or arguments
	exitRejected = 3 // a verification refused its input
)

type verb struct {
	name    string
	summary string
	run     func(ctx context.Context, e env, args []string) error
}

func verbs() []verb {
	return []verb{
		{"build", "build signed images for a profile (short form: imgbuild --profile P)", runBuild},
		{"keygen", "make a usign release key pair", runKeygen},
		{"sign", "sign a sysupgrade image with a release key", runSign},
		{"verify", "check an image's signature against trusted keys", runVerify},
		{"inspect", "show an image's fwtool chunks, metadata and hashes", runInspect},
		{"diff", "explain the differences between two images", runDiff},
		{"lock", "resolve a profile's image digest and packages into its lock file", runLock},
		{"release", "prepare, sign, verify and attest a release; rotate release keys", runRelease},
		{"ib", "ib import: verify and unpack an ImageBuilder archive, pack it as an OCI image", runIB},
		{"version", "print the version of imgbuild", runVersion},
		{"brand", "brand init NAME scaffolds brands/NAME/; brand check NAME validates it", runBrand},
	}
}

// usageError marks errors caused by the command line; they exit 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// rejectedError marks a verification that refused its input; exit 3.
type rejectedError struct{ err error }

func (r rejectedError) Error() string { return r.err.Error() }
func (r rejectedError) Unwrap() error { return r.err }

func run(ctx context.Context, e env, args []string) int {
	if len(args) == 0 {
		printUsage(e.stderr)
		return exitUsage
	}
	name, rest := args[0], args[1:]
	if strings.HasPrefix(name, "-") {
		switch name {
		case "-h", "-help", "--help":
			printUsage(e.stdout)
			return exitOK
		case "-version", "--version":
			name, rest = "version", nil
		default:
			// `imgbuild --profile gl-ar150` is the short form of build.
			name, rest = "build", args
		}
	}
	if name == "help" {
		printUsage(e.stdout)
		return exitOK
	}
	for _, v := range verbs() {
		if v.name != name {
			continue
		}
		err := v.run(ctx, e, rest)
		return report(e, name, err)
	}
	fmt.Fprintf(e.stderr, "imgbuild: unknown command %q; run: imgbuild help\n", name)
	return exitUsage
}

func report(e env, name string, err error) int {
	var ue usageError
	var re rejectedError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "imgbuild %s: %v\n", name, err)
		return exitUsage
	case errors.As(err, &re):
		fmt.Fprintf(e.stderr, "imgbuild %s: REJECTED: %v\n", name, err)
		return exitRejected
	default:
		fmt.Fprintf(e.stderr, "imgbuild %s: %v\n", name, err)
		return exitFailure
	}
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, "imgbuild builds reproducible, signed OpenWrt images for torwrt routers.\n\nUsage:\n  imgbuild <command> [flags] [args]\n  imgbuild --profile gl-ar150     (same as: imgbuild build --profile gl-ar150)\n\nCommands:\n")
	vs := verbs()
	sort.Slice(vs, func(i, j int) bool { return vs[i].name < vs[j].name })
	for _, v := range vs {
		fmt.Fprintf(w, "  %-10s %s\n", v.name, v.summary)
	}
	fmt.Fprintf(w, "\nRun `imgbuild <command> --help` for a command's flags.\nExit codes: 0 ok, 1 failure, 2 usage, 3 verification rejected.\n")
}

// newFlags makes a verb's flag set that writes help to stdout and errors to
// stderr, and reports misuse as a usage error.
func newFlags(e env, name, argsUsage, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet("imgbuild "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stdout, "Usage: imgbuild %s [flags] %s\n\n%s\n\nFlags:\n", name, argsUsage, summary)
		fs.SetOutput(e.stdout)
		fs.PrintDefaults()
		fs.SetOutput(e.stderr)
	}
	return fs
}

// parseFlags parses args, allowing flags after positional arguments
// (`imgbuild verify IMAGE --keys DIR`), which the flag package alone does
// not.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err}
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// outputOptions is the shared --json flag of reporting verbs.
type outputOptions struct{ json bool }

func (o *outputOptions) addFlags(fs *flag.FlagSet) {
	fs.BoolVar(&o.json, "json", false, "print the result as JSON on stdout")
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
