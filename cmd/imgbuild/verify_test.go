package main

import (
	"strings"
	"testing"
)

// imgbuild verify on the bad-input table: every refusal exits 3 with
// REJECTED and the reason; key files that cannot be read exit 1.
func TestVerifyBadInputs(t *testing.T) {
	f := fndMakeFixtures(t)
	tests := []struct {
		name string
		args []string
		code int
		text string
	}{
		{"good", []string{f.img["good"]}, exitOK, ""},
		{"good for board", []string{"--board", "glinet,gl-ar150", f.img["good"]}, exitOK, ""},
		{"flags after image", []string{f.img["good"], "--board", "gl-ar150"}, exitOK, ""},
		{"truncated in trailer", []string{f.img["trunc-trailer"]}, exitRejected, "image is not signed: no signature chunk"},
		{"truncated in chunk", []string{f.img["trunc-chunk"]}, exitRejected, "image is not signed: no signature chunk"},
		{"chunk size larger than file", []string{f.img["size-too-large"]}, exitRejected, "larger than the"},
		{"crc mismatch", []string{f.img["crc"]}, exitRejected, "crc mismatch"},
		{"unknown chunk type", []string{f.img["unknown-type"]}, exitRejected, "unknown chunk type 4"},
		{"unknown key", []string{f.img["unknown-key"]}, exitRejected, "signature made by an untrusted key"},
		{"all-zero signature", []string{f.img["zero-sig"]}, exitRejected, "all-zero signature"},
		{"signature of another image", []string{f.img["other-image"]}, exitRejected, "signature does not verify"},
		{"fake certificate", []string{f.img["fake-cert"]}, exitRejected, "image is not signed: signature chunk is the \"# fake certificate\" placeholder"},
		{"metadata over 30 KiB", []string{f.img["big-metadata"]}, exitRejected, "limit 30720"},
		{"wrong board", []string{"--board", "glinet,gl-mt300n-v2", f.img["good"]}, exitRejected, "image is not for this board"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := fndRun(t, append([]string{"verify", "--keys", f.keys}, tc.args...)...)
			if tc.code == exitOK {
				if r.code != 0 || !strings.HasPrefix(r.stdout, "OK ") || !strings.Contains(r.stdout, f.fp) {
					t.Errorf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
				}
				return
			}
			fndExpect(t, r, tc.code, tc.text)
			if !strings.Contains(r.stderr, "REJECTED") || r.stdout != "" {
				t.Errorf("stdout %q, stderr %q", r.stdout, r.stderr)
			}
		})
	}
}

func TestVerifyBadKeyFiles(t *testing.T) {
	f := fndMakeFixtures(t)
	for name, text := range map[string]string{
		"bad-base64": "bad base64",
		"short-key":  "payload is 41 bytes, want 42",
		"long-key":   "payload is 43 bytes, want 42",
	} {
		t.Run(name, func(t *testing.T) {
			r := fndRun(t, "verify", "--keys", f.badKeys[name], f.img["good"])
			fndExpect(t, r, exitFailure, text)
			if !strings.Contains(r.stderr, f.fp) {
				t.Errorf("error does not name the key file: %s", r.stderr)
			}
		})
	}
}

func TestVerifyUsage(t *testing.T) {
	f := fndMakeFixtures(t)
	fndExpect(t, fndRun(t, "verify", f.img["good"]), exitUsage, "want --keys DIR and one IMAGE")
	fndExpect(t, fndRun(t, "verify", "--keys", f.keys), exitUsage, "want --keys DIR and one IMAGE")
	fndExpect(t, fndRun(t, "verify", "--nope", "--keys", f.keys, f.img["good"]), exitUsage, "flag provided but not defined")
	fndExpect(t, fndRun(t, "verify", "--keys", f.keys, f.img["good"]+".missing"), exitFailure, "no such file")
	r := fndMust(t, "verify", "--keys", f.keys, "--json", f.img["good"])
	if res := jsonDoc[verifyResult](t, r, "verify").Result; res.SHA256Unsigned == "" || res.Signature == nil || res.Signature.Key.Fingerprint != f.fp {
		t.Errorf("verify --json: %s", r.stdout)
	}
}
