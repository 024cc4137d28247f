// Package progress writes a build's progress for people: one line per step
// with its elapsed time, a heartbeat with the last line a long-running
// command printed, and details (container argv, make output) only when
// verbose. On a terminal the current step is one live line rewritten in
// place; elsewhere (CI, pipes) every report is a plain line with no escape
// codes. It writes to one stream, stderr, never stdout.
package progress

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Options configure New.
type Options struct {
	// TTY: rewrite a live line in place (\r, then clear to the end of the
	// line); false: plain lines only.
	TTY bool
	// Verbose shows Debugf lines and every line a followed command prints.
	Verbose bool
	// Interval is the heartbeat period. 0: 5 s for plain lines, 1 s on a
	// terminal; negative: no heartbeat timer (tests drive it).
	Interval time.Duration
	// Width caps a heartbeat and the live line, in characters. 0: 120.
	Width int
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// Printer writes progress lines. A nil *Printer discards everything. It is
// safe for concurrent use; printers made by For share one stream and one
// live line.
type Printer struct {
	s      *shared
	prefix string // "[gl-ar150] " or ""
}

type shared struct {
	mu      sync.Mutex
	w       io.Writer
	o       Options
	partial []byte // Write's incomplete line
	live    string // the live line on screen (TTY), "" none
	step    *Step
	act     *Activity
}

// New returns a Printer writing to w.
func New(w io.Writer, o Options) *Printer {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Width <= 0 {
		o.Width = 120
	}
	if o.Interval == 0 {
		o.Interval = 5 * time.Second
		if o.TTY {
			o.Interval = time.Second
		}
	}
	return &Printer{s: &shared{w: w, o: o}}
}

// For returns a Printer that prefixes its lines with "[id] " and shares p's
// stream.
func (p *Printer) For(id string) *Printer {
	if p == nil {
		return nil
	}
	return &Printer{s: p.s, prefix: "[" + id + "] "}
}

// Verbose reports whether Debugf lines are shown.
func (p *Printer) Verbose() bool { return p != nil && p.s.o.Verbose }

// Printf prints one line (a trailing newline is added when missing).
func (p *Printer) Printf(format string, a ...any) {
	if p == nil {
		return
	}
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	p.s.line(p.prefix + strings.TrimSuffix(fmt.Sprintf(format, a...), "\n"))
}

// Debugf prints one line only when verbose: argv, paths, the details a
// user needs only when something goes wrong.
func (p *Printer) Debugf(format string, a ...any) {
	if p.Verbose() {
		p.Printf(format, a...)
	}
}

// Write prints each complete line written as Printf would, so other code's
// progress (pulls, fetches) does not collide with the live line.
func (p *Printer) Write(b []byte) (int, error) {
	if p == nil {
		return len(b), nil
	}
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	p.s.partial = append(p.s.partial, b...)
	for {
		i := bytes.IndexByte(p.s.partial, '\n')
		if i < 0 {
			break
		}
		p.s.line(p.prefix + string(p.s.partial[:i]))
		p.s.partial = p.s.partial[i+1:]
	}
	return len(b), nil
}

// DebugWriter is a writer whose lines are printed as Write's are, but only
// when verbose (a fetch's line per package, say).
func (p *Printer) DebugWriter() io.Writer {
	if !p.Verbose() {
		return io.Discard
	}
	return p
}

// line writes a permanent line, keeping the live line below it. s.mu held.
func (s *shared) line(text string) {
	if s.o.TTY && s.live != "" {
		io.WriteString(s.w, "\r\x1b[K"+text+"\n"+s.live)
		return
	}
	io.WriteString(s.w, text+"\n")
}

// setLive replaces the live line (TTY only). s.mu held.
func (s *shared) setLive(text string) {
	if !s.o.TTY {
		return
	}
	text = clip(text, s.o.Width-1)
	if text == s.live {
		return
	}
	io.WriteString(s.w, "\r\x1b[K"+text)
	s.live = text
}

// render is the live line for the current step and activity. s.mu held.
func (s *shared) render() string {
	now := s.o.Now()
	if a := s.act; a != nil {
		t := a.label + " " + Duration(now.Sub(a.start))
		if a.last != "" {
			t += ": " + a.last
		}
		return t
	}
	if st := s.step; st != nil {
		return st.label + "… " + Duration(now.Sub(st.start))
	}
	return ""
}

// Step is one timed step of a pipeline.
type Step struct {
	p     *Printer
	label string
	start time.Time
	stop  func()
	done  bool
}

// Step starts a step: a line "[id] name…" (on a terminal, the live line,
// with its elapsed time). End it with Done or Fail.
func (p *Printer) Step(name string) *Step {
	if p == nil {
		return &Step{}
	}
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &Step{p: p, label: p.prefix + name, start: s.o.Now(), stop: func() {}}
	s.step = st
	if s.o.TTY {
		s.setLive(s.render())
		st.stop = s.every(func() {
			if s.act == nil { // else the activity's own heartbeat redraws
				s.setLive(s.render())
			}
		})
	} else {
		s.line(st.label + "…")
	}
	return st
}

// Done ends the step with a line "[id] name 9.8s" and returns its elapsed
// time.
func (st *Step) Done() time.Duration { return st.end("") }

// Fail ends the step with a line "[id] name failed after 3.2s".
func (st *Step) Fail() time.Duration { return st.end("failed after ") }

func (st *Step) end(how string) time.Duration {
	if st.p == nil || st.done {
		return 0
	}
	st.done = true
	st.stop()
	s := st.p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.o.Now().Sub(st.start)
	if s.step == st {
		s.step = nil
	}
	s.setLive("")
	s.live = ""
	s.line(st.label + " " + how + Duration(d))
	return d
}

// Activity follows a long-running command's output (make image, make
// manifest): it keeps the last line printed and, every interval, reports
// the elapsed time and that line; verbose, it also prints every line.
type Activity struct {
	p       *Printer
	label   string
	start   time.Time
	partial []byte
	last    string
	stop    func()
	done    bool
}

// Activity starts following a command named label, e.g. "make image".
// Write the command's output to it and call Stop when the command ends.
func (p *Printer) Activity(label string) *Activity {
	if p == nil {
		return &Activity{}
	}
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	a := &Activity{p: p, label: p.prefix + label, start: s.o.Now(), stop: func() {}}
	s.act = a
	s.setLive(s.render())
	a.stop = s.every(func() { s.beat(a) })
	return a
}

// beat is one heartbeat of a. s.mu held.
func (s *shared) beat(a *Activity) {
	if s.act != a {
		return
	}
	if s.o.TTY {
		s.setLive(s.render())
		return
	}
	s.line(clip(s.render(), s.o.Width))
}

// every runs f under s.mu each interval until the returned stop is called.
// s.mu held by the caller.
func (s *shared) every(f func()) func() {
	if s.o.Interval < 0 {
		return func() {}
	}
	t := time.NewTicker(s.o.Interval)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				s.mu.Lock()
				f()
				s.mu.Unlock()
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			t.Stop()
			close(quit)
			wg.Wait()
		})
	}
}

// Write records the command's output.
func (a *Activity) Write(b []byte) (int, error) {
	if a.p == nil {
		return len(b), nil
	}
	s := a.p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	a.partial = append(a.partial, b...)
	for {
		i := bytes.IndexByte(a.partial, '\n')
		if i < 0 {
			break
		}
		a.add(string(a.partial[:i]))
		a.partial = a.partial[i+1:]
	}
	return len(b), nil
}

// add takes one complete line of output. s.mu held.
func (a *Activity) add(raw string) {
	// A progress bar redraws with \r: its last state is the line.
	if i := strings.LastIndexByte(strings.TrimRight(raw, "\r"), '\r'); i >= 0 {
		raw = raw[i+1:]
	}
	line := Sanitize(raw)
	if strings.TrimSpace(line) == "" {
		return
	}
	s := a.p.s
	if s.o.Verbose {
		s.line(a.p.prefix + "| " + line)
	}
	// The live line shows it at the next heartbeat: redrawn at most once
	// an interval however fast the command prints.
	a.last = clip(strings.TrimSpace(line), s.o.Width)
}

// Stop ends following the command.
func (a *Activity) Stop() {
	if a.p == nil || a.done {
		return
	}
	a.done = true
	a.stop()
	s := a.p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(a.partial) > 0 {
		a.add(string(a.partial))
		a.partial = nil
	}
	if s.act == a {
		s.act = nil
		s.setLive(s.render())
	}
}

// Duration formats d for people: 850ms, 9.8s, 2m05s.
func Duration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	default:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
}

// Sanitize drops escape sequences and control characters from a line a
// command printed, so it cannot move the cursor or recolour the terminal.
func Sanitize(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == 0x1b:
			i += n
			// CSI: ESC [ parameters final-byte (0x40–0x7e).
			if i < len(s) && s[i] == '[' {
				i++
				for i < len(s) && (s[i] < 0x40 || s[i] > 0x7e) {
					i++
				}
			}
			i++
			continue
		case r == '\t':
			b.WriteByte(' ')
		case r == utf8.RuneError && n == 1, unicode.IsControl(r):
		default:
			b.WriteRune(r)
		}
		i += n
	}
	return b.String()
}

// clip shortens s to at most n characters, ending in "…" when cut.
func clip(s string, n int) string {
	if n < 1 || utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// IsTerminal reports whether w is a character device (a terminal), as
// opposed to a file or pipe.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// TerminalWidth is w's terminal width in columns, or 0 when unknown.
func TerminalWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok {
		return 0
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0
	}
	return int(ws.Col)
}

type ctxKey struct{}

// NewContext returns ctx carrying p, for code deep in a pipeline (the
// ImageBuilder driver) to report on.
func NewContext(ctx context.Context, p *Printer) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the Printer ctx carries, or nil.
func FromContext(ctx context.Context) *Printer {
	p, _ := ctx.Value(ctxKey{}).(*Printer)
	return p
}
