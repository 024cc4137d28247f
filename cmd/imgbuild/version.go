package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// stampedVersion, when set with -ldflags "-X main.stampedVersion=v1.2.3",
// wins over the module version (a release built with -buildvcs=false).
var stampedVersion string

// readBuildInfo is debug.ReadBuildInfo; tests replace it.
var readBuildInfo = debug.ReadBuildInfo

// versionInfo is what `imgbuild version --json` prints.
type versionInfo struct {
	Version    string `json:"version"`               // v1.2.3, a pseudo-version, or "devel"
	Module     string `json:"module,omitempty"`      // github.com/torwrt/torwrt
	Commit     string `json:"commit,omitempty"`      // vcs.revision
	CommitTime string `json:"commit_time,omitempty"` // vcs.time, RFC 3339
	Modified   bool   `json:"modified"`              // vcs.modified: built from a dirty tree
	GoVersion  string `json:"go_version"`
	Platform   string `json:"platform"` // GOOS/GOARCH
}

// buildVersion reads the version the Go toolchain stamped into the binary:
// the module version when installed with `go install …@vX`, and the commit,
// its time and whether the tree was modified when built in a checkout
// (unless -buildvcs=false).
func buildVersion() versionInfo {
	v := versionInfo{Version: "devel", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := readBuildInfo(); ok {
		v.Module, v.GoVersion = bi.Main.Path, bi.GoVersion
		if mv := bi.Main.Version; mv != "" && mv != "(devel)" {
			v.Version = mv
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.time":
				v.CommitTime = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if stampedVersion != "" {
		v.Version = stampedVersion
	}
	return v
}

func runVersion(ctx context.Context, e env, args []string) error {
	var o outputOptions
	fs := newFlags(e, "version", "", "Print imgbuild's version, the commit it was built from (with its time, and\nwhether the tree had uncommitted changes), and the Go version.")
	o.addFlags(fs)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return usagef("unexpected arguments %q", rest)
	}
	v := buildVersion()
	if o.json {
		return setResult(e, v)
	}
	fmt.Fprintf(e.stdout, "imgbuild %s\n", v.Version)
	if v.Commit != "" {
		mod := ""
		if v.Modified {
			mod = " (modified)"
		}
		fmt.Fprintf(e.stdout, "commit   %s%s\n", v.Commit, mod)
	} else {
		fmt.Fprintf(e.stdout, "commit   unknown (built without VCS information, e.g. -buildvcs=false)\n")
	}
	if v.CommitTime != "" {
		fmt.Fprintf(e.stdout, "time     %s\n", v.CommitTime)
	}
	fmt.Fprintf(e.stdout, "go       %s %s\n", v.GoVersion, v.Platform)
	return nil
}
