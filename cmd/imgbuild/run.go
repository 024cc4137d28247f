package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/torwrt/torwrt/internal/cliout"
)

// env is what a verb may touch of the process, so tests run the whole CLI
// in-process and read its output.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// flagSets, when set, collects every flag set newFlags makes, so
	// `imgbuild completion` can read each verb's flags without a second
	// list that could drift.
	flagSets *[]*flag.FlagSet
	// cli is the current run of a verb, for its --json document; run
	// sets it.
	cli *invocation
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
	// subs are the verb's subcommands, if it has any (`release sign`).
	subs []string
}

func verbs() []verb {
	return []verb{
		{"build", "build signed images for a profile (short form: imgbuild --profile P)", runBuild, nil},
		{"keygen", "make a usign release key pair", runKeygen, nil},
		{"sign", "sign a sysupgrade image with a release key", runSign, nil},
		{"verify", "check an image's signature against trusted keys", runVerify, nil},
		{"inspect", "show an image's fwtool chunks, metadata and hashes", runInspect, nil},
		{"diff", "explain the differences between two images", runDiff, nil},
		{"lock", "resolve a profile's image digest and packages into its lock file", runLock, nil},
		{"release", "prepare, sign, verify and attest a release; rotate release keys", runRelease,
			[]string{"prepare", "sign", "verify", "keys", "rotate", "attest", "pubkey"}},
		{"ib", "ib import: verify and unpack an ImageBuilder archive, pack it as an OCI image", runIB, []string{"import"}},
		{"version", "print the version of imgbuild and the commit it was built from", runVersion, nil},
		{"brand", "brand init NAME scaffolds brands/NAME/; brand check NAME validates it", runBrand, []string{"init", "check"}},
		{"completion", "print a shell completion script: completion bash|zsh|fish", runCompletion, nil},
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
		e.cli = &invocation{}
		err := v.run(ctx, e, rest)
		return report(e, name, err)
	}
	names := make([]string, 0, len(verbs())+1)
	for _, v := range verbs() {
		names = append(names, v.name)
	}
	fmt.Fprintf(e.stderr, "imgbuild: unknown command %q%s\n\n", name, didYouMean(name, append(names, "help"), ""))
	printUsage(e.stderr)
	return exitUsage
}

// report prints err for people on stderr and, with --json, the run's one
// document on stdout; it returns the exit code.
func report(e env, name string, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK // --help printed the usage, not a document
	}
	code := reportText(e, name, err)
	if e.cli != nil && e.cli.jsonWanted() {
		if werr := e.cli.write(e.stdout, code, err); werr != nil {
			fmt.Fprintf(e.stderr, "imgbuild %s: writing JSON: %v\n", name, werr)
			if code == exitOK {
				code = exitFailure
			}
		}
	}
	return code
}

func reportText(e env, name string, err error) int {
	var ue usageError
	var re rejectedError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "imgbuild %s: %v\n", name, err)
		var fe flagError
		if errors.As(err, &fe) {
			fmt.Fprintf(e.stderr, "%s\nRun `%s --help` for the flags.\n", fe.usage, fe.cmd)
		}
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

// newFlags makes a verb's flag set. --help prints the verb's usage to
// stdout; parseFlags reports misuse once, as a usage error.
func newFlags(e env, name, argsUsage, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet("imgbuild "+name, flag.ContinueOnError)
	fs.SetOutput(e.stdout)
	if e.cli != nil {
		e.cli.schema, e.cli.fs = cliout.Schema("imgbuild", strings.Fields(name)...), fs
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: imgbuild %s [flags] %s\n\n%s\n\nFlags:\n", name, argsUsage, summary)
		fs.PrintDefaults()
	}
	if e.flagSets != nil {
		*e.flagSets = append(*e.flagSets, fs)
	}
	return fs
}

// flagError is a flag the command line got wrong, with the verb's usage
// line, which report prints after the error.
type flagError struct {
	err   error
	cmd   string // "imgbuild inspect"
	usage string // "Usage: imgbuild inspect [flags] IMAGE"
}

func (f flagError) Error() string { return f.err.Error() }
func (f flagError) Unwrap() error { return f.err }

// parseFlags parses args, allowing flags after positional arguments
// (`imgbuild verify IMAGE --keys DIR`), which the flag package alone does
// not. The flag package's own printing is silenced: --help prints the
// usage to stdout, and a bad flag becomes one usage error (with a
// suggestion for a misspelled flag) that report prints to stderr.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	out, usage := fs.Output(), fs.Usage
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	defer func() { fs.SetOutput(out); fs.Usage = usage }()
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			fs.SetOutput(out)
			if errors.Is(err, flag.ErrHelp) {
				usage()
				return nil, err
			}
			markJSON(fs, args)
			var text bytes.Buffer
			fs.SetOutput(&text)
			usage()
			line, _, _ := strings.Cut(text.String(), "\n")
			line = strings.TrimSpace(line)
			return nil, usageError{flagError{fmt.Errorf("%v%s", err, suggestFlag(fs, err)), fs.Name(), line}}
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

// suggestFlag names the defined flag nearest to an undefined one.
func suggestFlag(fs *flag.FlagSet, err error) string {
	bad, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: ")
	if !ok {
		return ""
	}
	bad = strings.TrimLeft(bad, "-")
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, flagSpelling(f.Name)) })
	return didYouMean("--"+bad, names, "--")
}

// flagSpelling is how docs/cli.md writes a flag: -o, --profile.
func flagSpelling(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// didYouMean returns `; did you mean "X"?` for the candidate nearest to
// word (edit distance at most 2, ties to the first in sorted order), or ""
// when none is near. prefix is stripped from both before comparing, so
// "--" does not count toward the distance.
func didYouMean(word string, candidates []string, prefix string) string {
	best, bestD := "", 3
	w := strings.TrimPrefix(word, prefix)
	sorted := slices.Clone(candidates)
	slices.Sort(sorted)
	for _, c := range sorted {
		// d < len(w): a one-letter typo is not "near" every one-letter flag.
		if d := levenshtein(w, strings.TrimLeft(c, "-")); d < bestD && d < len(w) {
			best, bestD = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// levenshtein is the edit distance (insertions, deletions, substitutions)
// between a and b, counted in runes.
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// outputOptions is the shared --json flag of reporting verbs.
type outputOptions struct{ json bool }

func (o *outputOptions) addFlags(fs *flag.FlagSet) {
	fs.BoolVar(&o.json, "json", false, "print one JSON document on stdout, success or failure (docs/cli.md)")
}
