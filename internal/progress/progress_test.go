package progress

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is advanced by the test; nothing sleeps.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// script drives a printer the way a build does: a step, make output with
// a heartbeat in between, debug lines, and the end of the step.
func script(p *Printer, clk *fakeClock) {
	pp := p.For("gl-ar150")
	st := pp.Step("fetch")
	clk.add(1200 * time.Millisecond)
	st.Done()
	st = pp.Step("run")
	pp.Printf("container: podman run torwrt-image-1: image sha256:0123456789ab, network off, 4 mounts (3 read-only)")
	pp.Debugf("container: podman run --rm /bin/sh -c %s", strings.Repeat("x", 600))
	act := pp.Activity("make image")
	act.Write([]byte("Building images for ath79 - GL.iNet GL-AR150\n\x1b[1mInstalling packages...\x1b[0m\nPackage list miss"))
	clk.add(5 * time.Second)
	p.s.mu.Lock()
	p.s.beat(act)
	p.s.mu.Unlock()
	act.Write([]byte("ing\n" + strings.Repeat("y", 300) + "\n"))
	clk.add(4 * time.Second)
	p.s.mu.Lock()
	p.s.beat(act)
	p.s.mu.Unlock()
	act.Stop()
	clk.add(600 * time.Millisecond)
	st.Done()
	st = pp.Step("post")
	clk.add(300 * time.Millisecond)
	st.Fail()
}

func TestPrinter(t *testing.T) {
	long := strings.Repeat("x", 600)
	for _, tc := range []struct {
		name          string
		tty, verbose  bool
		want, notWant []string
	}{
		{
			name: "plain",
			want: []string{
				"[gl-ar150] fetch…\n",
				"[gl-ar150] fetch 1.2s\n",
				"[gl-ar150] run…\n",
				"[gl-ar150] container: podman run torwrt-image-1: image sha256:0123456789ab, network off, 4 mounts (3 read-only)\n",
				// The heartbeat: elapsed time and the last complete line,
				// escape codes gone.
				"[gl-ar150] make image 5.0s: Installing packages...\n",
				// The next one: the last line, cut to the width.
				"[gl-ar150] make image 9.0s: yyyy",
				"[gl-ar150] run 9.6s\n",
				"[gl-ar150] post failed after 300ms\n",
			},
			notWant: []string{long, "\r", "\x1b", "Package list missing", "| "},
		},
		{
			name:    "plain verbose",
			verbose: true,
			want: []string{
				"[gl-ar150] run…\n",
				"[gl-ar150] container: podman run --rm /bin/sh -c " + long + "\n",
				"[gl-ar150] | Building images for ath79 - GL.iNet GL-AR150\n",
				"[gl-ar150] | Installing packages...\n",
				"[gl-ar150] | Package list missing\n",
				"[gl-ar150] make image 5.0s: Installing packages...\n",
				"[gl-ar150] run 9.6s\n",
			},
			notWant: []string{"\r", "\x1b"},
		},
		{
			name: "tty",
			tty:  true,
			want: []string{
				// The step is a live line, replaced in place.
				"\r\x1b[K[gl-ar150] fetch… 0ms",
				"\r\x1b[K[gl-ar150] fetch… 0ms\r\x1b[K[gl-ar150] fetch 1.2s\n",
				// A permanent line goes above the live line, which is
				// drawn again.
				"\r\x1b[K[gl-ar150] container: podman run torwrt-image-1: image sha256:0123456789ab, network off, 4 mounts (3 read-only)\n[gl-ar150] run… 0ms",
				"\r\x1b[K[gl-ar150] make image 5.0s: Installing packages...",
				"\r\x1b[K[gl-ar150] make image 9.0s: yyy",
				"[gl-ar150] run 9.6s\n",
			},
			notWant: []string{long, "\x1b[1m", "[gl-ar150] make image 5.0s: Installing packages...\n"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			clk := &fakeClock{t: time.Unix(1700000000, 0)}
			p := New(&buf, Options{TTY: tc.tty, Verbose: tc.verbose, Interval: -1, Width: 80, Now: clk.now})
			script(p, clk)
			out := buf.String()
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%q", w, out)
				}
			}
			for _, nw := range tc.notWant {
				if strings.Contains(out, nw) {
					t.Errorf("output has %q:\n%q", nw, out)
				}
			}
			// Heartbeats and the live line fit the width; other lines are
			// printed whole.
			for _, line := range strings.Split(strings.ReplaceAll(out, "\r\x1b[K", "\n"), "\n") {
				if strings.Contains(line, "make image") && len([]rune(line)) > 80 {
					t.Errorf("line of %d characters over the width 80: %q", len(line), line)
				}
			}
		})
	}
}

// TestHeartbeatTimer: with a real (short) interval the heartbeat comes by
// itself while a command runs, and stops with it.
func TestHeartbeatTimer(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	w := writerFunc(func(b []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return buf.Write(b) })
	p := New(w, Options{Interval: 5 * time.Millisecond})
	act := p.For("gl-mt300a").Activity("make manifest")
	act.Write([]byte("Resolving dependencies\n"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := strings.Count(buf.String(), "[gl-mt300a] make manifest ")
		mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no heartbeat within 10s:\n%s", buf.String())
		}
		time.Sleep(time.Millisecond)
	}
	act.Stop()
	mu.Lock()
	got := buf.String()
	mu.Unlock()
	if !strings.Contains(got, ": Resolving dependencies\n") {
		t.Errorf("heartbeat lacks the last line:\n%s", got)
	}
	time.Sleep(20 * time.Millisecond)
	mu.Lock()
	after := buf.String()
	mu.Unlock()
	if after != got {
		t.Errorf("heartbeat after Stop:\n%s", strings.TrimPrefix(after, got))
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func TestWriteIsLineBuffered(t *testing.T) {
	var buf bytes.Buffer
	clk := &fakeClock{t: time.Unix(0, 0)}
	p := New(&buf, Options{TTY: true, Interval: -1, Now: clk.now})
	st := p.Step("fetch")
	p.Write([]byte("container: pulling "))
	p.Write([]byte("sha256:abc\npackage 1/2 tor\n"))
	st.Done()
	want := "\r\x1b[Kfetch… 0ms" +
		"\r\x1b[Kcontainer: pulling sha256:abc\nfetch… 0ms" +
		"\r\x1b[Kpackage 1/2 tor\nfetch… 0ms" +
		"\r\x1b[Kfetch 0ms\n"
	if got := buf.String(); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestNilPrinterAndContext(t *testing.T) {
	var p *Printer
	p.Printf("x")
	p.Debugf("x")
	p.For("a").Step("s").Done()
	a := p.Activity("make")
	a.Write([]byte("x\n"))
	a.Stop()
	if FromContext(context.Background()) != nil {
		t.Fatal("empty context has a printer")
	}
	q := New(&bytes.Buffer{}, Options{})
	if FromContext(NewContext(context.Background(), q)) != q {
		t.Fatal("context lost the printer")
	}
}

func TestDurationAndSanitize(t *testing.T) {
	for d, want := range map[time.Duration]string{
		850 * time.Millisecond: "850ms", 9800 * time.Millisecond: "9.8s", 125 * time.Second: "2m05s",
	} {
		if got := Duration(d); got != want {
			t.Errorf("Duration(%v) = %q, want %q", d, got, want)
		}
	}
	if got := Sanitize("\x1b[31mred\x1b[0m\tok\x07\xff"); got != "red ok" {
		t.Errorf("Sanitize = %q", got)
	}
	if IsTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is a terminal")
	}
}

func TestDebugWriter(t *testing.T) {
	for _, verbose := range []bool{false, true} {
		var buf bytes.Buffer
		p := New(&buf, Options{Verbose: verbose, Interval: -1}).For("gl-ar150")
		io.WriteString(p.DebugWriter(), "package 1/52 tor\n")
		want := ""
		if verbose {
			want = "[gl-ar150] package 1/52 tor\n"
		}
		if buf.String() != want {
			t.Errorf("verbose %v: got %q, want %q", verbose, buf.String(), want)
		}
	}
}

// With JSON, every record is one slog JSON line: steps with their name,
// state and seconds, Printf and Logger records with the profile, debug
// records only when verbose, no escape codes.
func TestJSONRecords(t *testing.T) {
	for _, verbose := range []bool{false, true} {
		var out bytes.Buffer
		clk := &fakeClock{t: time.Unix(1700000000, 0)}
		p := New(&out, Options{JSON: true, TTY: true, Verbose: verbose, Interval: -1, Now: clk.now})
		pp := p.For("gl-ar150")
		st := pp.Step("run")
		pp.Printf("make image PROFILE=%s", "gl-ar150")
		pp.Debugf("argv %s", "x")
		pp.Logger().Info("step cache", "step", "run", "key", "abc")
		clk.add(1500 * time.Millisecond)
		st.Done()
		if strings.Contains(out.String(), "\x1b") || strings.Contains(out.String(), "\r") {
			t.Fatalf("escape codes in JSON output: %q", out.String())
		}
		var recs []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("not a JSON line: %q: %v", line, err)
			}
			if m["profile"] != "gl-ar150" {
				t.Errorf("record without the profile: %v", m)
			}
			recs = append(recs, m)
		}
		msgs := []string{}
		for _, m := range recs {
			msgs = append(msgs, m["msg"].(string))
		}
		want := []string{"make image PROFILE=gl-ar150", "step cache", "step"}
		if verbose {
			want = []string{"step", "make image PROFILE=gl-ar150", "argv x", "step cache", "step"}
		}
		if strings.Join(msgs, "|") != strings.Join(want, "|") {
			t.Fatalf("verbose=%v: messages %q, want %q", verbose, msgs, want)
		}
		last := recs[len(recs)-1]
		if last["step"] != "run" || last["state"] != "done" || last["seconds"] != 1.5 || last["level"] != "INFO" {
			t.Errorf("step record %v", last)
		}
		if c := recs[len(recs)-2]; c["key"] != "abc" || c["step"] != "run" {
			t.Errorf("Logger record %v", c)
		}
	}
}

// In text mode a Logger record is a line like Printf's with its
// attributes as key=value; debug records only when verbose.
func TestLoggerTextLines(t *testing.T) {
	var out bytes.Buffer
	p := New(&out, Options{Interval: -1})
	l := p.For("gl-mt300a").Logger().With("step", "run")
	l.Info("installed package tree replayed", "key", "e134")
	l.Debug("not shown")
	if got, want := out.String(), "[gl-mt300a] installed package tree replayed key=e134 step=run\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	var nilP *Printer
	nilP.Logger().Info("discarded")
}
