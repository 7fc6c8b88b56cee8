package ensemble

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

var labelRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// IsName reports whether s is a valid name of an allocation, node or volume:
// a DNS label (RFC 1123): 1 to 63 lower-case letters, digits and '-',
// starting and ending with a letter or digit, so that they can become DNS
// names (<name>.internal) once deployments get a subnet; nothing resolves
// them yet (docs/ensemble.md, "Networking today").
func IsName(s string) bool { return labelRE.MatchString(s) }

// nameProblem explains why s is not a name.
func nameProblem(s string) string {
	if s == "" {
		return "empty name"
	}
	if len(s) > 63 {
		return fmt.Sprintf("%q is not a valid name (at most 63 characters, has %d)", s, len(s))
	}
	if lower := strings.ToLower(s); lower != s && IsName(lower) {
		return fmt.Sprintf("%q is not a valid name (use lower case: %q)", s, lower)
	}
	return fmt.Sprintf("%q is not a valid name (lower-case letters, digits and '-', starting and ending with a letter or digit)", s)
}

// keyPath appends a mapping key to a path: "a.b", or a["x.y"] when the key
// is not a plain word.
func keyPath(parent, key string) string {
	plain := key != ""
	for _, c := range key {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			plain = false
			break
		}
	}
	switch {
	case !plain:
		return fmt.Sprintf("%s[%q]", parent, key)
	case parent == "":
		return key
	}
	return parent + "." + key
}

// indexPath appends a list index to a path: a[3].
func indexPath(parent string, i int) string { return fmt.Sprintf("%s[%d]", parent, i) }

// maxSuggestCandidates bounds the work of one suggestion.
const maxSuggestCandidates = 256

// suggest returns the candidate closest to s when it is close enough to be a
// likely typo, else "".
func suggest(s string, candidates []string) string {
	if len(candidates) > maxSuggestCandidates {
		return "" // too costly to be worth it
	}
	best, bestD := "", 1<<30
	sorted := append([]string(nil), candidates...)
	sort.Strings(sorted)
	ls := strings.ToLower(s)
	for _, c := range sorted {
		d := distance(ls, strings.ToLower(c))
		if d < bestD {
			best, bestD = c, d
		}
	}
	limit := 0 // short names: only a difference of case
	switch {
	case len(s) > 4:
		limit = 2
	case len(s) > 2:
		limit = 1
	}
	if best == "" || bestD > limit || best == s {
		return ""
	}
	return best
}

// didYouMean formats suggest's answer as " (did you mean "x"?)", or "".
func didYouMean(s string, candidates []string) string {
	if m := suggest(s, candidates); m != "" {
		return fmt.Sprintf(" (did you mean %q?)", m)
	}
	return ""
}

// distance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and transpositions of neighbours each
// count one.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		if a == b {
			return 0
		}
		return 1 << 20
	}
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// oneOf formats a list of choices: "a, b or c".
func oneOf(choices []string) string {
	switch len(choices) {
	case 0:
		return ""
	case 1:
		return choices[0]
	}
	return strings.Join(choices[:len(choices)-1], ", ") + " or " + choices[len(choices)-1]
}
