package ensemble

import (
	"fmt"
	"regexp"
	"strings"
)

// Continents maps the continent names used in location codes to the
// two-letter continent codes of GeoIP databases.
var Continents = map[string]string{
	"africa":        "AF",
	"antarctica":    "AN",
	"asia":          "AS",
	"europe":        "EU",
	"north-america": "NA",
	"oceania":       "OC",
	"south-america": "SA",
}

// countries holds the ISO 3166-1 alpha-2 codes, plus XK (Kosovo), which
// GeoIP databases use.
var countries = func() map[string]bool {
	const codes = `AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ
BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ
DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY
HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP
KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY
MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ
NA NC NE NF NG NI NL NO NP NR NU NZ OM
PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ
TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ
UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS XK YE YT ZA ZM ZW`
	m := map[string]bool{}
	for _, c := range strings.Fields(codes) {
		m[c] = true
	}
	return m
}()

var subdivisionRE = regexp.MustCompile(`^([A-Z]{2})-[A-Z0-9]{1,3}$`)

// CheckLocationCode reports why code is not a location code, or nil.
func CheckLocationCode(code string) error {
	if _, ok := Continents[code]; ok {
		return nil
	}
	if countries[code] {
		return nil
	}
	if m := subdivisionRE.FindStringSubmatch(code); m != nil {
		if countries[m[1]] {
			return nil
		}
		return fmt.Errorf("%q is not a location code (no country %s)", code, m[1])
	}
	candidates := make([]string, 0, len(Continents))
	for c := range Continents {
		candidates = append(candidates, c)
	}
	var hint string
	lower, upper := strings.ToLower(code), strings.ToUpper(code)
	switch _, continent := Continents[lower]; {
	case continent:
		hint = fmt.Sprintf(" (did you mean %q?)", lower)
	case countries[upper] || subdivisionRE.MatchString(upper):
		hint = fmt.Sprintf(" (did you mean %q?)", upper)
	default:
		hint = didYouMean(code, candidates)
		if hint == "" {
			hint = " (want a continent such as europe, a country such as DE, or a subdivision such as US-CA)"
		}
	}
	return fmt.Errorf("%q is not a location code%s", code, hint)
}

// Place is where a provider is, as its bid reports it.
type Place struct {
	Continent string // GeoIP continent code: EU
	Country   string // ISO 3166-1 alpha-2: DE
	Region    string // ISO 3166-2: DE-BE; empty when unknown
}

// Allows reports whether a provider at p satisfies l: in one of Accept
// (when Accept is not empty) and in none of Reject.
func (l Location) Allows(p Place) bool {
	for _, c := range l.Reject {
		if p.in(c) {
			return false
		}
	}
	if len(l.Accept) == 0 {
		return true
	}
	for _, c := range l.Accept {
		if p.in(c) {
			return true
		}
	}
	return false
}

// in reports whether p lies in the place a location code names.
func (p Place) in(code string) bool {
	if cc, ok := Continents[code]; ok {
		return p.Continent == cc
	}
	if strings.Contains(code, "-") {
		return p.Region != "" && p.Region == code
	}
	return p.Country == code
}
