// Package progress writes a build's progress for people: one line per step
// with its elapsed time, a heartbeat with the last line a long-running
// command printed, and details (container argv, make output) only when
// verbose. On a terminal the current step is one live line rewritten in
// place; elsewhere (CI, pipes) every report is a plain line with no escape
// codes. It writes to one stream, stderr, never stdout.
//
// Every line is a log/slog record: Printf and Debugf are Info and Debug
// records, a step's end is a "step" record with its name and seconds, and
// Logger gives the same stream as an *slog.Logger for structured events.
// Options.JSON writes the records as slog's JSON lines instead (for CI
// logs a machine reads), with the profile as an attribute.
package progress

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
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
	// JSON writes each record as a JSON line (slog.JSONHandler): no live
	// line, no escape codes, attributes as fields.
	JSON bool
}

// Printer writes progress lines. A nil *Printer discards everything. It is
// safe for concurrent use; printers made by For share one stream and one
// live line.
type Printer struct {
	s      *shared
	id     string // "gl-ar150" or ""
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
	jsonLog *slog.Logger // Options.JSON; nil: text lines
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
	s := &shared{w: w, o: o}
	if o.JSON {
		s.o.TTY = false
		level := slog.LevelInfo
		if o.Verbose {
			level = slog.LevelDebug
		}
		s.jsonLog = slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
	}
	return &Printer{s: s}
}

// For returns a Printer that prefixes its lines with "[id] " and shares p's
// stream.
func (p *Printer) For(id string) *Printer {
	if p == nil {
		return nil
	}
	return &Printer{s: p.s, id: id, prefix: "[" + id + "] "}
}

// Logger is p's stream as an *slog.Logger: its records are lines like
// Printf's (attributes appended as key=value), or JSON lines. Debug
// records show only when verbose.
func (p *Printer) Logger() *slog.Logger {
	if p == nil {
		return slog.New(discard{})
	}
	return slog.New(&handler{p: p})
}

// handler is the slog.Handler behind Logger. Groups are flattened: the
// printer's records are flat.
type handler struct {
	p     *Printer
	attrs []slog.Attr
}

func (h *handler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || h.p.Verbose()
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(h.attrs...)
	s := h.p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.jsonLog != nil {
		if h.p.id != "" {
			r.AddAttrs(slog.String("profile", h.p.id))
		}
		return s.jsonLog.Handler().Handle(ctx, r)
	}
	var attrs []slog.Attr
	r.Attrs(func(a slog.Attr) bool { attrs = append(attrs, a); return true })
	s.line(h.p.text(r.Message, attrs))
	return nil
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &handler{p: h.p, attrs: append(append([]slog.Attr{}, h.attrs...), as...)}
}

func (h *handler) WithGroup(string) slog.Handler { return h }

type discard struct{}

func (discard) Enabled(context.Context, slog.Level) bool  { return false }
func (discard) Handle(context.Context, slog.Record) error { return nil }
func (d discard) WithAttrs([]slog.Attr) slog.Handler      { return d }
func (d discard) WithGroup(string) slog.Handler           { return d }

// log writes one record of p's: through slog's JSON logger, with the
// profile as an attribute, or as the text line "[id] msg k=v ...". s.mu
// held.
func (p *Printer) log(level slog.Level, msg string, attrs ...slog.Attr) {
	s := p.s
	if s.jsonLog != nil {
		args := make([]any, 0, len(attrs)+1)
		for _, a := range attrs {
			args = append(args, a)
		}
		if p.id != "" {
			args = append(args, slog.String("profile", p.id))
		}
		if level < slog.LevelInfo {
			s.jsonLog.Debug(msg, args...)
		} else {
			s.jsonLog.Info(msg, args...)
		}
		return
	}
	s.line(p.text(msg, attrs))
}

func (p *Printer) text(msg string, attrs []slog.Attr) string {
	var b strings.Builder
	b.WriteString(p.prefix)
	b.WriteString(msg)
	for _, a := range attrs {
		fmt.Fprintf(&b, " %s=%s", a.Key, a.Value.Resolve().String())
	}
	return b.String()
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
	p.log(slog.LevelInfo, strings.TrimSuffix(fmt.Sprintf(format, a...), "\n"))
}

// Debugf prints one line only when verbose: argv, paths, the details a
// user needs only when something goes wrong.
func (p *Printer) Debugf(format string, a ...any) {
	if !p.Verbose() {
		return
	}
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	p.log(slog.LevelDebug, strings.TrimSuffix(fmt.Sprintf(format, a...), "\n"))
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
		p.log(slog.LevelInfo, string(p.s.partial[:i]))
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
	name  string
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
	st := &Step{p: p, name: name, label: p.prefix + name, start: s.o.Now(), stop: func() {}}
	s.step = st
	if s.o.TTY {
		s.setLive(s.render())
		st.stop = s.every(func() {
			if s.act == nil { // else the activity's own heartbeat redraws
				s.setLive(s.render())
			}
		})
	} else if s.jsonLog != nil {
		p.log(slog.LevelDebug, "step", slog.String("step", name), slog.String("state", "started"))
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
	if s.jsonLog != nil {
		state := "done"
		if how != "" {
			state = "failed"
		}
		st.p.log(slog.LevelInfo, "step", slog.String("step", st.name), slog.String("state", state), slog.Float64("seconds", d.Seconds()))
		return d
	}
	s.line(st.label + " " + how + Duration(d))
	return d
}

// Activity follows a long-running command's output (make image, make
// manifest): it keeps the last line printed and, every interval, reports
// the elapsed time and that line; verbose, it also prints every line.
type Activity struct {
	p       *Printer
	name    string
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
	a := &Activity{p: p, name: label, label: p.prefix + label, start: s.o.Now(), stop: func() {}}
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
	if s.jsonLog != nil {
		a.p.log(slog.LevelInfo, a.name, slog.Float64("seconds", s.o.Now().Sub(a.start).Seconds()), slog.String("last", a.last))
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
		if s.jsonLog != nil {
			a.p.log(slog.LevelDebug, line, slog.String("from", a.name))
		} else {
			s.line(a.p.prefix + "| " + line)
		}
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
