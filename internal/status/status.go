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
	"net/netip"
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
	pal      palette
	networks []Network
}

// NewPage prepares a page. The brand is normalized once here.
func NewPage(b Brand, networks []Network) *Page {
	nb := b.normalized()
	return &Page{brand: nb, pal: newPalette(nb.Colors), networks: networks}
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
