//go:build unix

package httpfuzz

import (
	"strings"
	"testing"
)

func TestFuzzPad(t *testing.T) {
	req := []byte("GET /torbox HTTP/1.1\r\nHost: x\r\n\r\n")
	for _, tc := range []struct {
		lines, long uint8
		want        string
	}{
		{0, 0, string(req)},
		{1, 0, "GET /torbox HTTP/1.1\r\nX-Pad: " + strings.Repeat("p", 55) + "\r\nHost: x\r\n\r\n"},
		{0, 1, "GET /torbox HTTP/1.1aaaaaaaaaaaaaaaa\r\nHost: x\r\n\r\n"},
		{0, 0x81, "GET /torbox HTTP/1.1\r\nX-Long: aaaaaaaaaaaaaaaa\r\nHost: x\r\n\r\n"},
	} {
		if got := string(Pad(req, tc.lines, tc.long)); got != tc.want {
			t.Errorf("Pad(%d, %#x) = %q, want %q", tc.lines, tc.long, got, tc.want)
		}
	}
	if got := Pad([]byte("GET /"), 3, 3); string(got) != "GET /" {
		t.Errorf("padded a request without a line end: %q", got)
	}
}
