// Package status renders the router's status page (/torbox) and its JSON
// twin (/torbox.json), and serves them with a deliberately small HTTP/1.1
// server.
//
// The page is for someone on the router's Wi-Fi, often on a phone: it says
// in one glance whether Tor is up, which of the router's networks they are
// on and what that network does, and whether the firmware is current. It
// loads nothing from anywhere (inline CSS, logo as a data URI), needs no
// JavaScript, and stays under 30 KB.
package status

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Network is one of the router's networks, by the client subnets on it.
type Network struct {
	// Name is tor_off, tor_medium or tor_max.
	Name     string         `json:"name"`
	Prefixes []netip.Prefix `json:"prefixes"`
}

// Tor states.
const (
	TorUp       = "up"       // bootstrapped to 100%
	TorStarting = "starting" // control port answers, bootstrap below 100%
	TorDown     = "down"     // control port does not answer
)

// Snapshot is what the page shows. The daemon refreshes it in the
// background; rendering never waits for Tor.
type Snapshot struct {
	Time     time.Time `json:"time"`
	Tor      Tor       `json:"tor"`
	Firmware Firmware  `json:"firmware"`
	Update   Update    `json:"update"`
}

// Tor is what the control port said.
type Tor struct {
	State    string `json:"state"`
	Progress int    `json:"progress"`
	Tag      string `json:"tag,omitempty"`
	Summary  string `json:"summary,omitempty"`
	Warning  string `json:"warning,omitempty"`
	Version  string `json:"version,omitempty"`
	// Recommendation is status/version/current: recommended, obsolete, ...
	Recommendation string    `json:"recommendation,omitempty"`
	ValidAfter     time.Time `json:"consensus_valid_after,omitzero"`
	Error          string    `json:"error,omitempty"`
}

// Firmware describes the running image.
type Firmware struct {
	Product string `json:"product"`
	Version string `json:"version"`
	Build   uint64 `json:"build"`
	Board   string `json:"board"`
}

// Update is the state of the updater.
type Update struct {
	LastCheck     time.Time `json:"last_check,omitzero"`
	LastResult    string    `json:"last_result,omitempty"`
	LastError     string    `json:"last_error,omitempty"`
	NextCheck     time.Time `json:"next_check,omitzero"`
	Pending       string    `json:"pending,omitempty"`
	DeferredUntil time.Time `json:"deferred_until,omitzero"`
}

// Visitor is the client looking at the page.
type Visitor struct {
	Address     string `json:"address,omitempty"`
	Network     string `json:"network"`
	Explanation string `json:"explanation"`
}

// Document is the JSON the page's twin serves and `verify status` prints.
type Document struct {
	Snapshot
	Visitor *Visitor `json:"visitor,omitempty"`
}

// Page renders snapshots with one brand and network layout.
type Page struct {
	brand    Brand
	networks []Network
}

// NewPage prepares a page. The brand is normalized once here.
func NewPage(b Brand, networks []Network) *Page {
	return &Page{brand: b.normalized(), networks: networks}
}

// Brand returns the normalized brand.
func (p *Page) Brand() Brand { return p.brand }

// Visitor says which network addr is on.
func (p *Page) Visitor(addr netip.Addr) *Visitor {
	v := &Visitor{Network: "unknown", Explanation: p.brand.Texts.NetUnknown}
	if !addr.IsValid() {
		return v
	}
	addr = addr.Unmap()
	v.Address = addr.String()
	for _, n := range p.networks {
		for _, pfx := range n.Prefixes {
			if pfx.Contains(addr) {
				v.Network = n.Name
				v.Explanation = p.explain(n.Name)
				return v
			}
		}
	}
	return v
}

func (p *Page) explain(name string) string {
	switch name {
	case "tor_off":
		return p.brand.Texts.NetOff
	case "tor_medium":
		return p.brand.Texts.NetMedium
	case "tor_max":
		return p.brand.Texts.NetMax
	}
	return p.brand.Texts.NetUnknown
}

// JSON returns the document for s as seen from visitor (nil: no visitor).
func (p *Page) JSON(s Snapshot, visitor *Visitor) []byte {
	b, err := json.MarshalIndent(Document{Snapshot: s, Visitor: visitor}, "", "  ")
	if err != nil {
		// Only plain strings, numbers and times: cannot fail.
		panic(err)
	}
	return append(b, '\n')
}

var htmlEscaper = strings.NewReplacer(`&`, "&amp;", `<`, "&lt;", `>`, "&gt;", `"`, "&#34;", `'`, "&#39;")

func esc(s string) string { return htmlEscaper.Replace(s) }

// HTML renders the page for s as seen from visitor.
func (p *Page) HTML(s Snapshot, visitor *Visitor) []byte {
	b := p.brand
	c := b.Colors
	var w strings.Builder
	w.Grow(8 << 10)
	headline, stateColor, stateText := p.torHeadline(s.Tor)
	fmt.Fprintf(&w, `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="refresh" content="30">
<title>%s: %s</title>
<style>
body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:%s;color:%s}
main{max-width:36em;margin:0 auto;padding:1em}
header{display:flex;align-items:center;gap:.75em;border-bottom:3px solid %s;padding-bottom:.5em}
header img{width:48px;height:48px}
h1{font-size:1.3em;margin:0}
.tag{margin:0;font-size:.9em;opacity:.8}
.state{border-radius:.5em;padding:1em;margin:1em 0;color:#fff;background:%s}
.state strong{font-size:1.6em;display:block}
.bar{height:.6em;background:rgba(255,255,255,.35);border-radius:.3em;margin-top:.5em}
.bar span{display:block;height:100%%;background:#fff;border-radius:.3em}
section{border:1px solid rgba(0,0,0,.15);border-radius:.5em;padding:.5em 1em;margin:1em 0}
h2{font-size:1.05em;margin:.3em 0}
dl{display:grid;grid-template-columns:auto 1fr;gap:.2em 1em;margin:.3em 0}
dt{opacity:.75}dd{margin:0;overflow-wrap:anywhere}
.net{font-weight:600}
.warn{color:%s}.bad{color:%s}.good{color:%s}
footer{font-size:.8em;opacity:.7;margin-top:2em}
a{color:%s}
</style></head><body><main>
`, esc(b.ProductName), esc(stateText), c.Background, c.Text, c.Accent, stateColor, c.Warn, c.Bad, c.Good, c.Accent)
	fmt.Fprintf(&w, "<header><img src=\"%s\" alt=\"\"><div><h1>%s</h1><p class=\"tag\">%s</p></div></header>\n",
		esc(b.LogoDataURI), esc(b.ProductName), esc(b.Texts.Tagline))

	// The state banner: colour and words differ, so it reads without
	// colour vision too.
	fmt.Fprintf(&w, "<div class=\"state\" id=\"tor-%s\"><strong>%s</strong>%s", esc(s.Tor.State), esc(stateText), esc(headline))
	if s.Tor.State == TorStarting {
		fmt.Fprintf(&w, "<div class=\"bar\" role=\"progressbar\" aria-valuenow=\"%d\" aria-valuemin=\"0\" aria-valuemax=\"100\"><span style=\"width:%d%%\"></span></div>", s.Tor.Progress, clampPct(s.Tor.Progress))
	}
	w.WriteString("</div>\n")

	if visitor != nil {
		fmt.Fprintf(&w, "<section><h2>Your network</h2><p><span class=\"net\">%s</span><br>%s</p></section>\n",
			esc(visitor.Network), esc(visitor.Explanation))
	}

	w.WriteString("<section><h2>Tor</h2><dl>")
	row(&w, "Status", fmt.Sprintf("%s (%d%%)", s.Tor.State, s.Tor.Progress), "")
	if s.Tor.Summary != "" {
		row(&w, "Bootstrap", s.Tor.Summary, "")
	}
	if s.Tor.Warning != "" {
		row(&w, "Warning", s.Tor.Warning, "warn")
	}
	row(&w, "Version", orDash(s.Tor.Version), "")
	if s.Tor.Recommendation != "" {
		cls := "good"
		switch s.Tor.Recommendation {
		case "obsolete", "unrecommended", "old":
			cls = "bad"
		case "unknown":
			cls = ""
		}
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
	w.WriteString("</dl></section>\n")

	w.WriteString("<footer><p>")
	w.WriteString(esc(b.Texts.Footer))
	fmt.Fprintf(&w, " Machine-readable: <a href=\"/torbox.json\">/torbox.json</a>. Page time %s.", esc(timeText(s.Time, "unknown")))
	if b.SupportURL != "" {
		fmt.Fprintf(&w, " Help: <a href=\"%s\" rel=\"noreferrer noopener\">%s</a>.", esc(b.SupportURL), esc(b.SupportURL))
	}
	fmt.Fprintf(&w, " %s by %s.</p></footer>\n</main></body></html>\n", esc(b.ProductName), esc(b.Vendor))
	return []byte(w.String())
}

func (p *Page) torHeadline(t Tor) (detail, color, state string) {
	c, tx := p.brand.Colors, p.brand.Texts
	switch t.State {
	case TorUp:
		return "", c.Good, tx.TorUp
	case TorStarting:
		return fmt.Sprintf("Connecting to the Tor network: %d%%.", clampPct(t.Progress)), c.Warn, tx.TorStarting
	}
	return "Traffic that must go through Tor is blocked until Tor is back.", c.Bad, tx.TorDown
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
