package main

import (
	"strings"
	"testing"
)

// inspect lists chunks without checking keys, and refuses files whose
// chunk chain is broken.
func TestInspectBadInputs(t *testing.T) {
	f := fndMakeFixtures(t)
	tests := []struct {
		name string
		img  string
		code int
		text string // in stdout on success, stderr on failure
	}{
		{"good", "good", exitOK, "signed by key " + f.fp},
		{"unknown key is still listed", "unknown-key", exitOK, "has signature    true"},
		{"fake certificate", "fake-cert", exitOK, "FAKE CERTIFICATE (unsigned)"},
		{"truncated in trailer", "trunc-trailer", exitOK, "has signature    false"},
		{"truncated in chunk", "trunc-chunk", exitOK, "has signature    false"},
		{"chunk size larger than file", "size-too-large", exitFailure, "larger than the"},
		{"crc mismatch", "crc", exitFailure, "crc mismatch"},
		{"unknown chunk type", "unknown-type", exitFailure, "unknown chunk type 4"},
		{"metadata over 30 KiB", "big-metadata", exitFailure, "limit 30720"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := fndRun(t, "inspect", f.img[tc.img])
			if tc.code != exitOK {
				fndExpect(t, r, tc.code, tc.text)
				if !strings.Contains(r.stderr, f.img[tc.img]) {
					t.Errorf("error does not name the file: %s", r.stderr)
				}
				return
			}
			if r.code != 0 || !strings.Contains(r.stdout, tc.text) {
				t.Errorf("exit %d, stdout lacks %q:\n%s\nstderr: %s", r.code, tc.text, r.stdout, r.stderr)
			}
		})
	}
	fndExpect(t, fndRun(t, "inspect"), exitUsage, "want one IMAGE")
	fndExpect(t, fndRun(t, "inspect", f.dir+"/missing.bin"), exitFailure, "no such file")
}

func TestInspectJSON(t *testing.T) {
	f := fndMakeFixtures(t)
	r := fndMust(t, "inspect", "--json", f.img["fake-cert"])
	rep := jsonDoc[inspectReport](t, r, "inspect").Result
	if rep.HasSignature || len(rep.Chunks) != 2 || rep.Chunks[0].Type != "metadata" || rep.Chunks[1].Signature == nil || !rep.Chunks[1].Signature.FakeCertificate {
		t.Errorf("report %+v", rep)
	}
	if rep.MetadataJSON != fndGLAR150 {
		t.Errorf("metadata_json %q", rep.MetadataJSON)
	}
}
