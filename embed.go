// Package torwrt is the module root. It holds only the files imgbuild
// carries inside itself, so that a `go install`ed imgbuild works anywhere,
// not just in a checkout (the overlay templates are embedded by package
// overlay next to them):
//
//   - Profiles: the project's device profiles, profiles/<id>/profile.yaml
//     and lock.json;
//   - Brands: the default brand, brands/torwrt/;
//   - Source: the source of the router daemon (cmd/verify) and of the
//     simulated ImageBuilder's tool (internal/ibsim/cmd/ibsim-tool), with
//     every package of this module they import and go.mod and go.sum, so
//     that imgbuild compiles them without a checkout, from the same source
//     it was itself built from.
//
// A vendor's own profiles/ and brands/ directories add to the embedded ones
// and win over them (docs/cli.md, "Where profiles and brands come from").
// TestSourceHoldsEveryPackage (source_test.go) fails when the daemon or the
// tool starts to import a package that is missing from Source's list below,
// or when the list names one they no longer import.
package torwrt

import "embed"

// Profiles holds profiles/<id>/profile.yaml and lock.json; paths start with
// "profiles/".
//
//go:embed profiles/*/profile.yaml profiles/*/lock.json
var Profiles embed.FS

// Brands holds the default brand; paths start with "brands/".
//
//go:embed brands/torwrt
var Brands embed.FS

// DefaultBrand is the id of the brand in Brands.
const DefaultBrand = "torwrt"

// Source is a buildable copy of this module's source, reduced to the
// packages the router daemon and ibsim-tool need (their *_test.go files
// come along and are ignored by go build). Paths are module-relative:
// "go.mod", "cmd/verify/main.go".
//
//go:embed go.mod go.sum
//go:embed cmd/verify/*.go
//go:embed internal/apk/*.go
//go:embed internal/cliout/*.go
//go:embed internal/fwimage/*.go
//go:embed internal/imagesig/*.go
//go:embed internal/manifest/*.go
//go:embed internal/routerconf/*.go
//go:embed internal/setup/*.go
//go:embed internal/status/*.go
//go:embed internal/torctl/*.go
//go:embed internal/ucert/*.go
//go:embed internal/updater/*.go
//go:embed internal/usign/*.go
//go:embed internal/ibsim/cmd/ibsim-tool/*.go
//go:embed internal/ibsim/internal/siminfo/*.go
var Source embed.FS
