package brand

import (
	_ "embed"
	"fmt"
	"slices"
	"strings"
)

// iso3166 is the list of officially assigned ISO 3166-1 alpha-2 codes,
// one "CODE<TAB>name" a line (see the file's header for its source).
//
//go:embed iso3166-1.txt
var iso3166 string

// countries maps each officially assigned code to its short name.
var countries = parseCountries(iso3166)

func parseCountries(s string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		code, name, ok := strings.Cut(line, "\t")
		if !ok || len(code) != 2 || code[0] < 'A' || code[0] > 'Z' || code[1] < 'A' || code[1] > 'Z' || name == "" {
			panic(fmt.Sprintf("brand: iso3166-1.txt: bad line %q", line))
		}
		m[code] = name
	}
	return m
}

// IsCountry reports whether code is an officially assigned ISO 3166-1
// alpha-2 code, in upper case: what the router's Wi-Fi regulatory domain
// (uci wireless.<radio>.country) takes.
func IsCountry(code string) bool {
	_, ok := countries[code]
	return ok
}

// CountryName is the ISO 3166 short name of an assigned code, or "".
func CountryName(code string) string { return countries[code] }

// Countries returns every assigned code, sorted.
func Countries() []string {
	out := make([]string, 0, len(countries))
	for c := range countries {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// notCountries are codes people write that are not assigned country codes,
// with what they probably meant.
var notCountries = map[string]string{
	"UK": `the United Kingdom is "GB"`,
	"EU": `the European Union is not a country: set the country the routers are used in, e.g. "DE"`,
	"EL": `Greece is "GR"`,
	"XK": `"XK" (Kosovo) is user-assigned, not an ISO 3166-1 code; wireless regulatory databases have no entry for it`,
	"00": `"00" is the driver's world regulatory domain, not a country: set the country the routers are used in`,
}

// CheckCountry says what is wrong with a Wi-Fi country code, or nil.
func CheckCountry(code string) error {
	if IsCountry(code) {
		return nil
	}
	if hint, ok := notCountries[strings.ToUpper(code)]; ok {
		return fmt.Errorf("%q is not an ISO 3166-1 alpha-2 country code: %s", code, hint)
	}
	if up := strings.ToUpper(code); up != code && IsCountry(up) {
		return fmt.Errorf("%q: write the country code in capitals: %q (%s)", code, up, CountryName(up))
	}
	return fmt.Errorf("%q is not an officially assigned ISO 3166-1 alpha-2 country code (two capital letters, e.g. DE, US, BR)", code)
}
