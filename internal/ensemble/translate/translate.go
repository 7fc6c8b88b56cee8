// Package translate turns job descriptions of other systems into ensembles:
// docker-compose files (through compose-spec/compose-go), Kubernetes Pods,
// Jobs and Deployments (through the k8s.io/api types), and Nomad jobs in
// their JSON form.
//
// Each translator returns the ensemble (with its defaults set and
// validated) and a Warning for each thing it could not carry over. The
// mapping rules, and what is lost, are in docs/ensemble.md.
//
// The package reads no file and no environment: FromComposeEnv takes the
// variables used for ${VAR} interpolation as a map, and compose features
// that read files (include, extends from another file, env_file,
// label_file) are refused with a warning. It is kept apart from package
// ensemble because of the weight of its dependencies: the orchestrator needs
// the spec, not the parsers of other formats.
package translate

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/dmsnet/dms/internal/ensemble"
)

// Warning is something of the source that the ensemble does not carry.
type Warning struct {
	Path string `json:"path"` // where in the source: services.web.build
	Msg  string `json:"message"`
}

func (w Warning) String() string {
	if w.Path == "" {
		return w.Msg
	}
	return w.Path + ": " + w.Msg
}

// warnings collects warnings.
type warnings []Warning

func (ws *warnings) add(path, format string, args ...any) {
	*ws = append(*ws, Warning{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// lost warns about every non-empty key of m that is not in handled: the
// generic "not carried over" for fields a translator does not map.
func (ws *warnings) lost(path string, m map[string]any, handled ...string) {
	for _, k := range sortedKeys(m) {
		if contains(handled, k) || empty(m[k]) {
			continue
		}
		ws.add(join(path, k), "not carried over")
	}
}

// empty reports whether a decoded JSON value carries nothing: null, false,
// 0, "", or an empty (or all-empty) list or object.
func empty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case bool:
		return !v
	case float64:
		return v == 0
	case string:
		return v == ""
	case []any:
		for _, x := range v {
			if !empty(x) {
				return false
			}
		}
		return true
	case map[string]any:
		for _, x := range v {
			if !empty(x) {
				return false
			}
		}
		return true
	}
	return reflect.ValueOf(v).IsZero()
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// namer turns source names into unique ensemble names (DNS labels).
type namer struct {
	used map[string]string // ensemble name -> source name
}

func newNamer() *namer { return &namer{used: map[string]string{}} }

// name returns a unique DNS label for src, warning at path when it differs.
func (n *namer) name(ws *warnings, path, src string) string {
	base := label(src)
	name := base
	for i := 2; ; i++ {
		if _, taken := n.used[name]; !taken {
			break
		}
		suffix := fmt.Sprintf("-%d", i)
		name = strings.TrimRight(base[:min(len(base), 63-len(suffix))], "-") + suffix
	}
	n.used[name] = src
	if name != src {
		ws.add(path, "renamed %q to %q (names are DNS labels)", src, name)
	}
	return name
}

// label makes a DNS label of s: lower case, other characters replaced by
// '-', at most 63 characters.
func label(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	out := b.String()
	for strings.Contains(out, "--") {
		out = strings.ReplaceAll(out, "--", "-")
	}
	out = strings.Trim(out, "-")
	if len(out) > 63 {
		out = strings.TrimRight(out[:63], "-")
	}
	if out == "" {
		out = "x"
	}
	return out
}

// finish sets the defaults and checks the result: a translator's output is
// a valid ensemble or an error.
func finish(s *ensemble.Spec, ws warnings) (*ensemble.Spec, []Warning, error) {
	if len(s.Allocations) == 0 {
		return nil, ws, fmt.Errorf("nothing to translate: no workload could be carried over")
	}
	s.Version = ensemble.Version
	s.SetDefaults()
	if err := s.Validate(); err != nil {
		return nil, ws, fmt.Errorf("translated ensemble is invalid (please report it): %w", err)
	}
	return s, ws, nil
}
