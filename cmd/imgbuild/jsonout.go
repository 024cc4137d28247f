package main

import (
	"errors"
	"flag"
	"io"
	"io/fs"

	"github.com/torwrt/torwrt/internal/brand"
	"github.com/torwrt/torwrt/internal/build"
	"github.com/torwrt/torwrt/internal/cliout"
	"github.com/torwrt/torwrt/internal/dist"
	"github.com/torwrt/torwrt/internal/fwimage"
	"github.com/torwrt/torwrt/internal/ibarchive"
	"github.com/torwrt/torwrt/internal/imagesig"
	"github.com/torwrt/torwrt/internal/manifest"
	"github.com/torwrt/torwrt/internal/profile"
	"github.com/torwrt/torwrt/internal/provenance"
	"github.com/torwrt/torwrt/internal/release"
	"github.com/torwrt/torwrt/internal/signer"
	"github.com/torwrt/torwrt/internal/ucert"
	"github.com/torwrt/torwrt/internal/usign"
)

// invocation is one run of a verb: which document it prints with --json
// and the result it reports. report writes the one document at the end,
// so a run prints exactly one, success or failure.
type invocation struct {
	schema string        // torwrt.imgbuild.<verb>/v1, set by newFlags
	fs     *flag.FlagSet // the verb's flags, to read --json from
	result any           // set by setResult
}

// jsonWanted says whether the verb has --json and it was given.
func (c *invocation) jsonWanted() bool {
	if c.fs == nil {
		return false
	}
	f := c.fs.Lookup("json")
	return f != nil && f.Value.String() == "true"
}

func (c *invocation) write(w io.Writer, code int, err error) error {
	doc := cliout.Document[any]{Schema: c.schema, OK: err == nil, ExitCode: code, Result: c.result}
	if err != nil {
		doc.Error = errorObject(err, code)
	}
	return cliout.Write(w, doc)
}

// setResult records what the verb reports with --json; report prints it.
// A verb may set a result and still fail (diff --exit-code, lock --check).
func setResult(e env, v any) error {
	if e.cli == nil { // a verb called outside run (completion's probe)
		return cliout.Write(e.stdout, cliout.Document[any]{OK: true, Result: v})
	}
	e.cli.result = v
	return nil
}

// markJSON sets --json when it is among args that failed to parse, so a
// flag error is reported as a document too: the flag package stops at
// the bad flag and never sees a --json after it.
func markJSON(fs *flag.FlagSet, args []string) {
	if fs.Lookup("json") != nil && cliout.JSONFlag(args) {
		fs.Set("json", "true")
	}
}

// detailedError is an error made of several problems, each reported as
// one entry of error.details.
type detailedError interface{ Details() []string }

func errorObject(err error, exit int) *cliout.Error {
	e := &cliout.Error{Code: errorCode(err, exit), Message: err.Error()}
	var d detailedError
	if errors.As(err, &d) {
		e.Details = d.Details()
	}
	return e
}

// errorCodes maps sentinel errors to the stable codes of docs/cli.md; the
// first match wins, so specific causes come before general ones.
var errorCodes = []struct {
	code string
	errs []error
}{
	{cliout.CodeNotAnImage, []error{errNotAnImage}},
	{cliout.CodeDiffer, []error{errDiffer}},
	{cliout.CodeStale, []error{errStale}},
	{cliout.CodeUnsigned, []error{imagesig.ErrUnsigned}},
	{cliout.CodeWrongBoard, []error{imagesig.ErrWrongBoard, manifest.ErrWrongBoard}},
	{cliout.CodeThreshold, []error{manifest.ErrThreshold, release.ErrThreshold}},
	{cliout.CodeExpired, []error{manifest.ErrExpired}},
	{cliout.CodeReplay, []error{manifest.ErrReplay}},
	{cliout.CodeRollback, []error{manifest.ErrRollback}},
	{cliout.CodeTooLarge, []error{fwimage.ErrTooLarge, manifest.ErrTooLarge, ibarchive.ErrTooLarge, build.ErrTooBig}},
	{cliout.CodeMismatch, []error{release.ErrDigest, release.ErrDist, ibarchive.ErrHashMismatch, ibarchive.ErrNotListed, build.ErrDrift}},
	{cliout.CodeUnknownKey, []error{usign.ErrUnknownKey}},
	{cliout.CodeBadSignature, []error{usign.ErrBadSignature, signer.ErrBadSignature, provenance.ErrDSSE, release.ErrRotation}},
	{cliout.CodeInvalid, []error{release.ErrAltered, release.ErrUnverifiable, errInvalidBrand}},
	{cliout.CodeMalformed, []error{fwimage.ErrMalformed, fwimage.ErrCRC, fwimage.ErrUnknownType, imagesig.ErrNoMetadata,
		ucert.ErrMalformed, usign.ErrMalformed, manifest.ErrMalformed, manifest.ErrBadSchema, release.ErrKeyList,
		ibarchive.ErrCorrupt, ibarchive.ErrUnsafePath, ibarchive.ErrSpecialFile, ibarchive.ErrTopDir}},
	{cliout.CodeInsecureKey, []error{usign.ErrInsecureKeyFile, signer.ErrInsecureKeyFile}},
	{cliout.CodeKeyType, []error{signer.ErrUnsupportedKey, signer.ErrBadURI}},
	{cliout.CodeNoLock, []error{profile.ErrNoLock}},
	{cliout.CodeConfig, []error{manifest.ErrConfig}},
	{cliout.CodeNotFound, []error{fs.ErrNotExist, profile.ErrNotFound, brand.ErrNotFound}},
}

// errorCode is err's stable code: a sentinel's, else its exit class's.
func errorCode(err error, exit int) string {
	var fe flagError
	if errors.As(err, &fe) {
		return cliout.CodeUsage
	}
	for _, c := range errorCodes {
		for _, s := range c.errs {
			if errors.Is(err, s) {
				return c.code
			}
		}
	}
	switch exit {
	case exitUsage:
		return cliout.CodeUsage
	case exitRejected:
		return cliout.CodeRejected
	}
	return cliout.CodeFailed
}

var (
	errNotAnImage   = errors.New("not a sysupgrade image")
	errDiffer       = errors.New("images differ")
	errStale        = errors.New("locks are stale")
	errInvalidBrand = errors.New("brand has problems")
)

// chunkJSON is a chunk as every document shows it.
func chunkJSON(c fwimage.Chunk) cliout.Chunk {
	return cliout.Chunk{Type: c.Type.String(), TypeID: uint8(c.Type), Offset: c.Offset, Len: c.Len, CRC: c.CRC, CRCOK: true}
}

// buildResult is the result of `build --json` (torwrt.imgbuild.build/v1):
// one build report per profile, as dist/<profile>/build-report.json has
// it, with the signing key as a key object.
type buildResult struct {
	Builds []buildReport `json:"builds"`
}

type buildReport struct {
	*dist.Report
	SignedBy cliout.Key `json:"signed_by"`
	// DistDir, Timings and Cached belong to this run, so
	// build-report.json leaves them out (it is reproducible); the
	// document has them. Cached lists the steps replayed from the step
	// cache; StoppedAfter and WorkDir are set by --until.
	DistDir      string            `json:"dist_dir"`
	Timings      map[string]string `json:"timings"`
	Cached       []string          `json:"cached,omitempty"`
	StoppedAfter string            `json:"stopped_after,omitempty"`
	WorkDir      string            `json:"work_dir,omitempty"`
}

func newBuildResult(reports []*build.Result) buildResult {
	res := buildResult{Builds: []buildReport{}}
	for _, r := range reports {
		b := buildReport{Report: r.Report, SignedBy: cliout.Key{Fingerprint: r.SignedBy}, DistDir: r.DistDir, Timings: r.Timings, Cached: r.Cached}
		if r.StoppedAfter != "" {
			b.StoppedAfter, b.WorkDir = r.StoppedAfter, r.WorkDir
		}
		res.Builds = append(res.Builds, b)
	}
	return res
}
