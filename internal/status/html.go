package status

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

var htmlEscaper = strings.NewReplacer(`&`, "&amp;", `<`, "&lt;", `>`, "&gt;", `"`, "&#34;", `'`, "&#39;")

func esc(s string) string { return htmlEscaper.Replace(s) }

// pageCSS is the same for every brand and state: the brand's colours come
// in as custom properties (see palette), the Tor state as the banner's id.
const pageCSS = `*{box-sizing:border-box}
body{margin:0;border-top:6px solid var(--ac);font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--fg)}
main{max-width:50em;margin:0 auto;padding:.75em 1em 1.5em}
header{display:flex;align-items:center;gap:.8em;padding-bottom:.75em;border-bottom:1px solid var(--line)}
header img{width:48px;height:48px;flex:none}
h1{font-size:1.35em;line-height:1.2;margin:0}
.tag{margin:0;color:var(--muted);font-size:.95em}
.state{border-radius:.75em;padding:1em 1.1em;margin:1em 0;color:#fff}
#tor-up{background:var(--good)}#tor-starting{background:var(--warn)}#tor-down{background:var(--bad)}
.state strong{display:block;font-size:1.75em;line-height:1.25}
.state strong:before{display:inline-block;width:1.2em;height:1.2em;margin-right:.4em;border-radius:50%;background:rgba(255,255,255,.25);text-align:center;font-size:.8em;line-height:1.2em;vertical-align:.12em}
#tor-up strong:before{content:"\2713"}#tor-starting strong:before{content:"\2026"}#tor-down strong:before{content:"\2715"}
.bar{height:.5em;background:rgba(255,255,255,.3);border-radius:.25em;margin-top:.6em;overflow:hidden}
.bar span{display:block;height:100%;background:#fff}
.glance{display:grid;grid-template-columns:repeat(auto-fit,minmax(9.5em,1fr));gap:.75em;margin:1em 0}
.tile{background:var(--panel);border:1px solid var(--line);border-radius:.75em;padding:.6em .9em .75em}
.k{display:block;font-size:.78em;text-transform:uppercase;letter-spacing:.05em;color:var(--muted)}
.v{display:block;font-size:1.3em;font-weight:600;overflow-wrap:break-word}
.good{color:var(--goodt)}.warn{color:var(--warnt)}.bad{color:var(--badt)}
.pill{display:inline-block;margin-top:.2em;padding:0 .6em;border-radius:1em;font-size:.85em;font-weight:600;color:var(--fg);background:var(--line)}
.pill.good,.pill.warn,.pill.bad{color:#fff}.pill.good{background:var(--good)}.pill.warn{background:var(--warn)}.pill.bad{background:var(--bad)}
section{border:1px solid var(--line);border-radius:.75em;padding:.4em 1em .6em;margin:1em 0}
h2{font-size:1em;margin:.35em 0;color:var(--ac)}
.nets{list-style:none;margin:0;padding:0}
.nets li{padding:.4em .7em;margin:.35em 0;border-left:4px solid var(--line);border-radius:.3em}
.nets .here{border-left-color:var(--ac);background:var(--panel)}
.here em{font-style:normal;font-size:.8em;font-weight:600;margin-right:.4em;padding:0 .5em;border-radius:1em;background:var(--ac);color:var(--acfg);white-space:nowrap}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(19em,1fr));gap:0 1em}
.cols section{margin:.5em 0}.cols section:last-child:nth-child(odd){grid-column:1/-1}
dl{display:grid;grid-template-columns:auto 1fr;gap:.15em .9em;margin:.2em 0}
dt{color:var(--muted);white-space:nowrap}dd{margin:0;overflow-wrap:break-word;min-width:0}
footer{margin-top:1.5em;padding-top:.75em;border-top:1px solid var(--line);font-size:.85em;color:var(--muted)}
a{color:var(--ac)}
`

// HTML renders the page for s as seen from visitor (nil: unknown).
func (p *Page) HTML(s Snapshot, visitor *Visitor) []byte {
	b := p.brand
	var w strings.Builder
	w.Grow(8<<10 + len(b.LogoDataURI))
	headline, stateText := p.torHeadline(s.Tor, visitor)
	fmt.Fprintf(&w, `<!doctype html>
<html lang="%s"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="refresh" content="30">
<meta name="color-scheme" content="%s">
<link rel="icon" href="data:,">
<title>%s: %s</title>
<style>
:root{%s}
%s</style></head><body><main>
`, esc(b.Language), p.pal.scheme, esc(b.ProductName), esc(stateText), p.pal.vars, pageCSS)
	fmt.Fprintf(&w, "<header><img src=\"%s\" alt=\"\" width=\"48\" height=\"48\"><div><h1>%s</h1><p class=\"tag\">%s</p></div></header>\n",
		esc(b.LogoDataURI), esc(b.ProductName), esc(b.Texts.Tagline))

	// The state banner: colour, symbol and words all differ, so it reads
	// without colour vision too.
	fmt.Fprintf(&w, "<div class=\"state\" id=\"tor-%s\"><strong>%s</strong>%s", esc(s.Tor.State), esc(stateText), esc(headline))
	if s.Tor.State == TorStarting {
		fmt.Fprintf(&w, "<div class=\"bar\" role=\"progressbar\" aria-valuenow=\"%d\" aria-valuemin=\"0\" aria-valuemax=\"100\"><span style=\"width:%d%%\"></span></div>", s.Tor.Progress, clampPct(s.Tor.Progress))
	}
	w.WriteString("</div>\n")

	// At a glance: is Tor current, and what does my network do.
	w.WriteString("<div class=\"glance\">")
	verText, verClass := versionVerdict(s.Tor.Recommendation)
	tile(&w, "Tor version", orDash(s.Tor.Version), verText, verClass)
	if visitor != nil {
		netText, netClass := networkVerdict(visitor.Network, s.Tor.State)
		tile(&w, "Your network", visitor.Network, netText, netClass)
	}
	w.WriteString("</div>\n")

	p.networksSection(&w, visitor)

	w.WriteString("<div class=\"cols\">\n<section><h2>Tor</h2><dl>")
	row(&w, "Status", fmt.Sprintf("%s (%d%%)", s.Tor.State, clampPct(s.Tor.Progress)), "")
	if s.Tor.Summary != "" {
		row(&w, "Bootstrap", s.Tor.Summary, "")
	}
	if s.Tor.Warning != "" {
		row(&w, "Warning", s.Tor.Warning, "warn")
	}
	row(&w, "Version", orDash(s.Tor.Version), "")
	if s.Tor.Recommendation != "" {
		_, cls := versionVerdict(s.Tor.Recommendation)
		row(&w, "Up to date", recommendationText(s.Tor.Recommendation), cls)
	}
	if s.Tor.Error != "" {
		row(&w, "Problem", s.Tor.Error, "bad")
	}
	w.WriteString("</dl></section>\n")

	w.WriteString("<section><h2>Firmware</h2><dl>")
	row(&w, "Product", orDash(s.Firmware.Product), "")
	row(&w, "Version", orDash(s.Firmware.Version), "")
	if s.Firmware.Build > 0 {
		row(&w, "Build", strconv.FormatUint(s.Firmware.Build, 10), "")
	}
	row(&w, "Board", orDash(s.Firmware.Board), "")
	w.WriteString("</dl></section>\n")

	w.WriteString("<section><h2>Updates</h2><dl>")
	row(&w, "Last check", timeText(s.Update.LastCheck, "never"), "")
	if s.Update.LastResult != "" {
		cls := "good"
		if s.Update.LastResult == "refused" || s.Update.LastResult == "failed" {
			cls = "bad"
		}
		row(&w, "Result", s.Update.LastResult, cls)
	}
	if s.Update.LastError != "" {
		row(&w, "Reason", s.Update.LastError, "")
	}
	if s.Update.Pending != "" {
		row(&w, "Waiting to install", s.Update.Pending+" after "+timeText(s.Update.DeferredUntil, "?"), "")
	}
	row(&w, "Next check", timeText(s.Update.NextCheck, "not scheduled"), "")
	w.WriteString("</dl></section>\n</div>\n")

	w.WriteString("<footer><p>")
	w.WriteString(esc(b.Texts.Footer))
	fmt.Fprintf(&w, " Machine-readable: <a href=\"/torbox.json\">/torbox.json</a>. Page time %s.", esc(timeText(s.Time, "unknown")))
	if b.SupportURL != "" {
		fmt.Fprintf(&w, " Help: <a href=\"%s\" rel=\"noreferrer noopener\">%s</a>.", esc(b.SupportURL), esc(b.SupportURL))
	}
	fmt.Fprintf(&w, " %s by %s.</p></footer>\n</main></body></html>\n", esc(b.ProductName), esc(b.Vendor))
	return []byte(w.String())
}

// networksSection lists the router's networks and what each does, and
// marks the visitor's.
func (p *Page) networksSection(w *strings.Builder, visitor *Visitor) {
	w.WriteString("<section><h2>Your network</h2>")
	here := ""
	if visitor != nil {
		here = visitor.Network
		if visitor.Network == "unknown" {
			fmt.Fprintf(w, "<p>%s</p>", esc(visitor.Explanation))
		}
	}
	listed := false
	for _, n := range p.networks {
		if !listed {
			w.WriteString("<ul class=\"nets\">")
			listed = true
		}
		if n.Name == here {
			fmt.Fprintf(w, "<li class=\"here\"><em>you are here</em>%s</li>", esc(p.explain(n.Name)))
		} else {
			fmt.Fprintf(w, "<li>%s</li>", esc(p.explain(n.Name)))
		}
	}
	if listed {
		w.WriteString("</ul>")
	} else if visitor != nil && visitor.Network != "unknown" {
		fmt.Fprintf(w, "<p><b>%s</b><br>%s</p>", esc(visitor.Network), esc(visitor.Explanation))
	}
	w.WriteString("</section>\n")
}

func (p *Page) torHeadline(t Tor, visitor *Visitor) (detail, state string) {
	tx := p.brand.Texts
	off := visitor != nil && visitor.Network == "tor_off"
	switch t.State {
	case TorUp:
		if off {
			return "Connected to the Tor network, but this network (tor_off) does not use it.", tx.TorUp
		}
		return "Connected to the Tor network.", tx.TorUp
	case TorStarting:
		return fmt.Sprintf("Connecting to the Tor network: %d%%.", clampPct(t.Progress)), tx.TorStarting
	}
	return "Traffic that must go through Tor is blocked until Tor is back.", tx.TorDown
}

func tile(w *strings.Builder, label, value, verdict, class string) {
	fmt.Fprintf(w, "<div class=\"tile\"><span class=\"k\">%s</span><span class=\"v\">%s</span><span class=\"%s\">%s</span></div>",
		esc(label), esc(value), strings.TrimSpace("pill "+class), esc(verdict))
}

func versionVerdict(r string) (string, string) {
	switch r {
	case "recommended", "new", "new in series":
		return "up to date", "good"
	case "old", "obsolete", "unrecommended":
		return "outdated: updating", "bad"
	}
	return "not known yet", ""
}

// networkVerdict says in two or three words what the visitor's network
// does right now: a Tor network without Tor carries nothing.
func networkVerdict(name, torState string) (string, string) {
	waiting := "bad"
	if torState == TorStarting {
		waiting = "warn"
	}
	switch {
	case name == "tor_off":
		return "NOT through Tor", "bad"
	case name == "tor_medium" && torState == TorUp:
		return "all through Tor", "good"
	case name == "tor_max" && torState == TorUp:
		return "Tor SOCKS only", "good"
	case name == "tor_medium" || name == "tor_max":
		return "waiting for Tor", waiting
	}
	return "not this router's", ""
}

func row(w *strings.Builder, k, v, class string) {
	if class != "" {
		fmt.Fprintf(w, "<dt>%s</dt><dd class=\"%s\">%s</dd>", esc(k), class, esc(v))
		return
	}
	fmt.Fprintf(w, "<dt>%s</dt><dd>%s</dd>", esc(k), esc(v))
}

func recommendationText(r string) string {
	switch r {
	case "recommended":
		return "yes (recommended version)"
	case "new", "new in series":
		return "yes (newer than recommended)"
	case "old", "obsolete":
		return "NO: obsolete; an update is being looked for"
	case "unrecommended":
		return "NO: not recommended; an update is being looked for"
	}
	return "unknown (no consensus yet)"
}

func clampPct(n int) int { return max(0, min(100, n)) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func timeText(t time.Time, zero string) string {
	if t.IsZero() {
		return zero
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// palette is the brand's colours as CSS custom properties, with the
// shades derived from them once in NewPage.
type palette struct {
	vars   string
	scheme string // light or dark
}

func newPalette(c Colors) palette {
	bg, fg, ac := rgbOf(c.Background), rgbOf(c.Text), rgbOf(c.Accent)
	dark := bg.lum() < 0.18
	pal := palette{scheme: "light"}
	// Good, warn and bad as text need to be readable on the background:
	// on a dark one, lighter shades of the same hues.
	goodT, warnT, badT := c.Good, c.Warn, c.Bad
	if dark {
		pal.scheme = "dark"
		goodT, warnT, badT = mix(rgbOf(c.Good), rgb{1, 1, 1}, .45).hex(), mix(rgbOf(c.Warn), rgb{1, 1, 1}, .45).hex(), mix(rgbOf(c.Bad), rgb{1, 1, 1}, .45).hex()
	}
	acfg := "#ffffff"
	if contrast(ac, rgb{1, 1, 1}) < contrast(ac, rgb{0.07, 0.07, 0.07}) {
		acfg = "#111111"
	}
	pal.vars = fmt.Sprintf("--bg:%s;--fg:%s;--ac:%s;--acfg:%s;--muted:%s;--line:%s;--panel:%s;--good:%s;--warn:%s;--bad:%s;--goodt:%s;--warnt:%s;--badt:%s",
		c.Background, c.Text, c.Accent, acfg, mix(fg, bg, .72).hex(), mix(fg, bg, .18).hex(), mix(fg, bg, .05).hex(),
		c.Good, c.Warn, c.Bad, goodT, warnT, badT)
	return pal
}

type rgb [3]float64

// rgbOf reads a checked #rgb or #rrggbb colour.
func rgbOf(s string) rgb {
	h := s[1:]
	if len(h) == 3 {
		h = string([]byte{h[0], h[0], h[1], h[1], h[2], h[2]})
	}
	var c rgb
	for i := range c {
		v, _ := strconv.ParseUint(h[2*i:2*i+2], 16, 8)
		c[i] = float64(v) / 255
	}
	return c
}

// mix is a*t + b*(1-t) per channel.
func mix(a, b rgb, t float64) rgb {
	return rgb{a[0]*t + b[0]*(1-t), a[1]*t + b[1]*(1-t), a[2]*t + b[2]*(1-t)}
}

func (c rgb) hex() string {
	return fmt.Sprintf("#%02x%02x%02x", int(math.Round(c[0]*255)), int(math.Round(c[1]*255)), int(math.Round(c[2]*255)))
}

// lum is the WCAG relative luminance.
func (c rgb) lum() float64 {
	var l [3]float64
	for i, v := range c {
		if v <= 0.04045 {
			l[i] = v / 12.92
		} else {
			l[i] = math.Pow((v+0.055)/1.055, 2.4)
		}
	}
	return 0.2126*l[0] + 0.7152*l[1] + 0.0722*l[2]
}

func contrast(a, b rgb) float64 {
	x, y := a.lum(), b.lum()
	if x < y {
		x, y = y, x
	}
	return (x + 0.05) / (y + 0.05)
}
