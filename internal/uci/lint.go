package uci

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// sectionTypes lists the section types each configuration file may hold on
// OpenWrt 24.10. A type outside the list is ignored by the daemon that reads
// the file, so a typo there silently drops configuration: lint rejects it.
var sectionTypes = map[string][]string{
	"network": {
		"alias", "atm-bridge", "bridge-vlan", "device", "globals", "interface",
		"neighbor", "neighbor6", "route", "route6", "rule", "rule6",
		"switch", "switch_port", "switch_vlan",
	},
	"wireless": {"wifi-device", "wifi-iface", "wifi-station", "wifi-vlan"},
	"dhcp": {
		"boot", "cname", "dhcp", "dnsmasq", "domain", "host", "hostrecord",
		"ipset", "mac", "match", "mxhost", "odhcpd", "relay", "srvhost",
		"tag", "userclass", "vendorclass",
	},
	"system":   {"led", "system", "timeserver"},
	"dropbear": {"dropbear"},
	"uhttpd":   {"cert", "uhttpd"},
	"firewall": {"defaults", "forwarding", "include", "ipset", "nat", "redirect", "rule", "zone"},
}

// SectionTypes returns the section types Lint accepts in a package (the
// file's base name, e.g. "network"), sorted, and whether it knows the
// package at all.
func SectionTypes(pkg string) ([]string, bool) {
	t, ok := sectionTypes[pkg]
	if !ok {
		return nil, false
	}
	return slices.Sorted(slices.Values(t)), true
}

// Lint checks a parsed file against the rules of package pkg. It returns
// nil or every problem found, joined; each one is an *Error.
func Lint(pkg string, f *File) error {
	types, ok := sectionTypes[pkg]
	if !ok {
		return fmt.Errorf("%w %q (known: %s)", ErrNoSchema, pkg, strings.Join(knownPackages(), ", "))
	}
	var errs []error
	bad := func(line int, format string, args ...any) {
		errs = append(errs, &Error{File: f.Name, Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	if f.Package != "" && f.Package != pkg {
		bad(0, "package statement says %q, file is %q", f.Package, pkg)
	}
	named := map[string]int{}
	for _, s := range f.Sections {
		if !slices.Contains(types, s.Type) {
			bad(s.Line, "unknown section type %q in %s (known: %s)", s.Type, pkg, strings.Join(slices.Sorted(slices.Values(types)), ", "))
		}
		if s.Name == "" {
			continue
		}
		// libuci merges two sections of the same name; the second one's
		// options silently win, which is never what a template meant.
		if first, dup := named[s.Name]; dup {
			bad(s.Line, "section %q already defined at line %d", s.Name, first)
			continue
		}
		named[s.Name] = s.Line
	}
	return errors.Join(errs...)
}

// ParseAndLint parses data as package pkg and lints it.
func ParseAndLint(name, pkg string, data []byte) (*File, error) {
	f, err := ParseBytes(name, data)
	if err != nil {
		return nil, err
	}
	if err := Lint(pkg, f); err != nil {
		return f, err
	}
	return f, nil
}

func knownPackages() []string {
	var out []string
	for k := range sectionTypes {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
