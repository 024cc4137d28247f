// Package nftmods finds the OpenWrt kernel-module packages an nftables
// ruleset needs, so a build can refuse an image whose kernel could not
// load its own firewall.
//
// On OpenWrt nf_tables is split into kmod packages (include/netfilter.mk
// and package/kernel/linux/modules/netfilter.mk in openwrt/openwrt): fib
// lives in kmod-nft-fib, NAT in kmod-nft-nat, and only firewall4 pulls
// them in. A profile that drops firewall4 and forgets one of them gets an
// image whose `nft -f` fails at boot. The check is plain Go over the
// ruleset text: no nft binary, no kernel.
package nftmods

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Need is one feature a ruleset uses and the package that provides it.
type Need struct {
	Feature string `json:"feature"` // "fib", "dnat", "nat chain", "table family bridge"
	Package string `json:"package"` // "kmod-nft-fib"
	Line    int    `json:"line"`    // first line that uses it (1-based)
}

// Packages of OpenWrt 24.10's netfilter.mk. kmod-nft-core holds
// nf_tables, nf_tables_set and the expressions in NFT_CORE: counter, ct,
// hash, limit, log, meta, numgen, objref, quota, redir, reject and
// reject_inet. Every other group is its own package that depends on it.
const (
	Core     = "kmod-nft-core"
	NAT      = "kmod-nft-nat"      // NFT_NAT: nft_nat, nft_chain_nat, nft_masq, nft_redir_ipv4
	FIB      = "kmod-nft-fib"      // NFT_FIB: nft_fib, nft_fib_inet, nft_fib_ipv4, nft_fib_ipv6
	Offload  = "kmod-nft-offload"  // nf_flow_table_inet, nft_flow_offload
	Queue    = "kmod-nft-queue"    // NFT_QUEUE: nft_queue
	Socket   = "kmod-nft-socket"   // NFT_SOCKET: nft_socket
	TProxy   = "kmod-nft-tproxy"   // NFT_TPROXY: nft_tproxy
	Bridge   = "kmod-nft-bridge"   // NFT_BRIDGE: nft_meta_bridge, nft_reject_bridge
	ARP      = "kmod-nft-arp"      // NFT_ARP: the arp family
	Netdev   = "kmod-nft-netdev"   // nf_dup_netdev, nft_dup_netdev, nft_fwd_netdev, ingress/egress hooks
	DupInet  = "kmod-nft-dup-inet" // nft_dup_ipv4, nft_dup_ipv6
	XFRM     = "kmod-nft-xfrm"     // NFT_XFRM: nft_xfrm (ipsec)
	ConnLim  = "kmod-nft-connlimit"
	Compat   = "kmod-nft-compat"
	coreFeat = "nf_tables"
)

// keywords maps an expression or statement keyword to its package.
// Keywords of kmod-nft-core are listed too, so Needs reports them.
var keywords = map[string]string{
	// NFT_CORE
	"ct": Core, "meta": Core, "counter": Core, "limit": Core, "log": Core, "quota": Core,
	"reject": Core, "jhash": Core, "symhash": Core, "numgen": Core, "mark": Core,
	"iif": Core, "oif": Core, "iifname": Core, "oifname": Core,
	// NFT_NAT (masquerade and redirect are only valid in a nat chain,
	// whose type is nft_chain_nat, in the same package)
	"dnat": NAT, "snat": NAT, "masquerade": NAT, "redirect": NAT,
	"fib":       FIB,
	"queue":     Queue,
	"socket":    Socket,
	"tproxy":    TProxy,
	"flowtable": Offload,
	"dup":       DupInet,
	"fwd":       Netdev,
	"ipsec":     XFRM,
	"xt":        Compat,
}

var families = map[string]string{
	"ip": Core, "ip6": Core, "inet": Core, "arp": ARP, "bridge": Bridge, "netdev": Netdev,
}

// Needs lists what the ruleset uses, one entry per feature (its first
// line), sorted by package, then feature. Every ruleset needs
// kmod-nft-core.
func Needs(ruleset []byte) ([]Need, error) {
	toks, err := tokenize(string(ruleset))
	if err != nil {
		return nil, err
	}
	seen := map[string]Need{}
	add := func(feature, pkg string, line int) {
		if _, ok := seen[feature]; !ok {
			seen[feature] = Need{Feature: feature, Package: pkg, Line: line}
		}
	}
	if len(toks) > 0 {
		add(coreFeat, Core, toks[0].line)
	}
	for i := 0; i < len(toks); i++ {
		tk := toks[i]
		next := func() string {
			if i+1 < len(toks) {
				return toks[i+1].text
			}
			return ""
		}
		switch tk.text {
		case "include":
			return nil, fmt.Errorf("line %d: include: the check sees only this file; render one self-contained ruleset", tk.line)
		case "table":
			if f, ok := families[next()]; ok {
				add("table family "+next(), f, tk.line)
				i++
			}
			i++ // the table's name
			continue
		case "chain", "jump", "goto", "comment":
			i++ // a name or a comment, never an expression
			continue
		case "type":
			if next() == "nat" {
				add("nat chain", NAT, tk.line)
				i++
				continue
			}
		case "ct":
			if next() == "count" {
				add("ct count", ConnLim, tk.line)
				i++
				continue
			}
		case "flow":
			if n := next(); n == "add" || n == "offload" {
				add("flow "+n, Offload, tk.line)
				i++
				continue
			}
		}
		if p, ok := keywords[tk.text]; ok {
			add(tk.text, p, tk.line)
		}
	}
	out := make([]Need, 0, len(seen))
	for _, n := range seen {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b Need) int {
		if c := strings.Compare(a.Package, b.Package); c != 0 {
			return c
		}
		return strings.Compare(a.Feature, b.Feature)
	})
	return out, nil
}

// MissingError lists the features whose package the image lacks.
type MissingError struct {
	File    string
	Missing []Need
}

func (e *MissingError) Error() string {
	var parts []string
	var pkgs []string
	for _, n := range e.Missing {
		parts = append(parts, fmt.Sprintf("%s:%d: %s needs %s", e.File, n.Line, n.Feature, n.Package))
		if !slices.Contains(pkgs, n.Package) {
			pkgs = append(pkgs, n.Package)
		}
	}
	return fmt.Sprintf("%s, which the image does not install: nft -f would fail on the router and it would boot into the panic table (offline); add %s to the profile's packages.add",
		strings.Join(parts, "; "), strings.Join(pkgs, ", "))
}

// ErrMissing is what a *MissingError matches with errors.Is.
var ErrMissing = errors.New("nftables ruleset needs kernel modules the image does not install")

// Is makes errors.Is(err, ErrMissing) true.
func (e *MissingError) Is(target error) bool { return target == ErrMissing }

// Check returns a *MissingError naming every feature of ruleset (read
// from file, which only labels messages) whose package is not in
// installed.
func Check(file string, ruleset []byte, installed []string) error {
	needs, err := Needs(ruleset)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	have := map[string]bool{}
	for _, p := range installed {
		have[p] = true
	}
	var missing []Need
	for _, n := range needs {
		if !have[n.Package] {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	slices.SortFunc(missing, func(a, b Need) int { return a.Line - b.Line })
	return &MissingError{File: file, Missing: missing}
}

type token struct {
	text string
	line int
}

// tokenize splits nft's syntax into words: comments and quoted strings
// are dropped, braces, semicolons and commas separate words.
func tokenize(s string) ([]token, error) {
	var toks []token
	line := 1
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			toks = append(toks, token{cur.String(), line})
			cur.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\n':
			flush()
			line++
		case c == '#':
			flush()
			for i < len(s) && s[i] != '\n' {
				i++
			}
			i--
		case c == '"':
			flush()
			start := line
			i++
			for i < len(s) && s[i] != '"' {
				if s[i] == '\n' {
					return nil, fmt.Errorf("line %d: unterminated string", start)
				}
				i++
			}
			if i >= len(s) {
				return nil, fmt.Errorf("line %d: unterminated string", start)
			}
			toks = append(toks, token{`""`, start})
		case c == ' ' || c == '\t' || c == '\r' || c == ';' || c == ',' || c == '{' || c == '}' || c == '(' || c == ')':
			flush()
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return toks, nil
}
