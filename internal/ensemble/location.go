package ensemble

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/dmsnet/dms/internal/match"
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

// Rule converts l to the capability algebra's location rule, which
// providers and orchestrators evaluate (match.LocationRule.Allows): one
// implementation of where a node may be.
func (l Location) Rule() match.LocationRule {
	conv := func(codes []string) []match.Location {
		out := make([]match.Location, 0, len(codes))
		for _, c := range codes {
			out = append(out, LocationOf(c))
		}
		return out
	}
	var r match.LocationRule
	if len(l.Accept) > 0 {
		r.Accept = conv(l.Accept)
	}
	if len(l.Reject) > 0 {
		r.Reject = conv(l.Reject)
	}
	return r
}

// LocationOf is the pattern a location code names: a continent (europe →
// EU), a country (DE), or a subdivision (US-CA: country US, subdivision
// US-CA). A subdivision pattern matches only providers that state that
// subdivision: accept: [US-CA] leaves out a US provider that does not say
// where in the US it is, and reject: [US-CA] keeps it.
func LocationOf(code string) match.Location {
	if c, ok := Continents[code]; ok {
		return match.Location{Continent: c}
	}
	if m := subdivisionRE.FindStringSubmatch(code); m != nil {
		return match.Location{Country: m[1], Subdivision: code}
	}
	return match.Location{Country: code}
}
