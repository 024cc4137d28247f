package build

import (
	"encoding/json"
)

// provenanceStub writes a SLSA v1 provenance statement (in-toto v1) for the
// image, unsigned; the release pipeline signs it as a DSSE envelope. It
// holds no timestamps and no host paths, so two builds of the same inputs
// write the same bytes.
func provenanceStub(o Options, r *Report, lockSHA256 string) ([]byte, error) {
	type digest map[string]string
	type subject struct {
		Name   string `json:"name"`
		Digest digest `json:"digest"`
	}
	type dep struct {
		URI    string `json:"uri"`
		Digest digest `json:"digest,omitempty"`
		Name   string `json:"name,omitempty"`
	}
	ibDigest := ""
	if i := len(o.Lock.Image.Ref) - 64; i > 0 {
		ibDigest = o.Lock.Image.Ref[i:]
	}
	deps := []dep{
		{URI: "oci://" + o.Lock.Image.Ref, Digest: digest{"sha256": ibDigest}, Name: "imagebuilder"},
		{URI: "file:profiles/" + o.Profile.ID + "/lock.json", Digest: digest{"sha256": lockSHA256}, Name: "lock"},
		{URI: "file:profiles/" + o.Profile.ID + "/profile.yaml", Digest: digest{"sha256": o.Profile.SHA256}, Name: "profile"},
		{URI: "pkg:golang/toolchain@" + r.Daemon.GoVersion, Name: "go"},
		{URI: "file:/usr/sbin/torwrt-verify", Digest: digest{"sha256": r.Daemon.SHA256}, Name: "daemon"},
	}
	stmt := map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []subject{{Name: r.Image, Digest: digest{"sha256": r.ImageSHA256}}},
		"predicateType": "https://slsa.dev/provenance/v1",
		"predicate": map[string]any{
			"buildDefinition": map[string]any{
				"buildType": "https://torwrt.org/buildtypes/imgbuild/v1",
				"externalParameters": map[string]any{
					"profile":   o.Profile.ID,
					"brand":     o.Brand.ID,
					"version":   o.Version,
					"simulated": o.Simulated,
				},
				"internalParameters": map[string]any{
					"source_date_epoch": o.Profile.OpenWrt.SourceDateEpoch,
					"daemon_build":      map[string]any{"argv": r.Daemon.Argv, "env": r.Daemon.Env},
				},
				"resolvedDependencies": deps,
			},
			"runDetails": map[string]any{
				"builder": map[string]any{"id": "https://torwrt.org/imgbuild"},
			},
		},
	}
	b, err := json.MarshalIndent(stmt, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
