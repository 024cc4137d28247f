package torctl

import (
	"bufio"
	"bytes"
	"reflect"
	"testing"
)

// FuzzReply: the parser never panics, respects its limits, and what it
// accepts survives encode → parse unchanged.
func FuzzReply(f *testing.F) {
	for _, s := range []string{
		"250 OK\r\n",
		"250-version=0.4.8.13\r\n250 OK\r\n",
		"250+config-text=\r\nSocksPort 0\r\n..x\r\n.\r\n250 OK\r\n",
		"250-status/bootstrap-phase=NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY=\"Done\"\r\n250 OK\r\n",
		"551 Internal error\r\n",
		"552 Unrecognized key \"x\"\r\n",
		"650 STATUS_GENERAL NOTICE X\r\n",
		"250-PROTOCOLINFO 1\r\n250-AUTH METHODS=COOKIE,SAFECOOKIE COOKIEFILE=\"/run/tor/control.authcookie\"\r\n250-VERSION Tor=\"0.4.8.13\"\r\n250 OK\r\n",
		"250 AUTHCHALLENGE SERVERHASH=00 SERVERNONCE=11\r\n",
		"250-a\n250 b\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := ReadReply(bufio.NewReaderSize(bytes.NewReader(b), MaxLineLen+2))
		if err != nil {
			return
		}
		if len(rep.Lines) == 0 || len(rep.Lines) > MaxLines {
			t.Fatalf("%d lines", len(rep.Lines))
		}
		enc := rep.encode()
		rep2, err := ReadReply(bufio.NewReaderSize(bytes.NewReader(enc), MaxLineLen+2))
		if err != nil {
			t.Fatalf("re-parse of %q: %v", enc, err)
		}
		if !reflect.DeepEqual(rep, rep2) {
			t.Fatalf("not stable:\n%#v\n%#v", rep, rep2)
		}
		// The interpreters of reply content must not panic either.
		if kv, err := parseGetInfo(rep); err == nil {
			for _, v := range kv {
				ParseBootstrap(v)
				ParseVersionStatus(v)
				ParseConsensusTime(v)
				parseKV(v)
			}
		}
		rep.Err()
	})
}
