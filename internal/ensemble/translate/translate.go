// Package translate turns job descriptions of other systems into ensembles:
// docker-compose files (through compose-spec/compose-go), Kubernetes Pods,
// Jobs and Deployments (through the k8s.io/api types), and Nomad jobs in
// HCL (through hashicorp/hcl/v2) or in their API JSON form. Detect tells
// which of them a file holds.
//
// Each translator returns the ensemble (with its defaults set and
// validated) and a Warning for each thing it could not carry over. A
// warning has a Kind: a field lost, a whole part dropped (a service without
// an image, a task of another driver, the schedule of a periodic job), or
// a file the source mounts that does not travel with the ensemble. The
// caller decides what a dropped part means (dms translate refuses the
// translation unless --allow-partial). The mapping rules, and what is lost,
// are in docs/ensemble.md.
//
// The package reads no file and no environment: FromComposeEnv takes the
// variables used for ${VAR} interpolation as a map, and compose features
// that read files (include, extends from another file, env_file,
// label_file) are refused with a warning. It is kept apart from package
// ensemble because of the weight of its dependencies: the orchestrator needs
// the spec, not the parsers of other formats.
package translate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/mapkeys"
)

// Kind says how much a warning loses.
type Kind string

// The kinds of warnings.
const (
	// Lost is a field, or a setting, that is not carried over: the rest of
	// its service or container is.
	Lost Kind = "lost"
	// Dropped is a whole part of the source that is not carried over: a
	// service or container (no image, another driver), or what makes a job
	// more than one run (the schedule of a periodic job or CronJob, the
	// dispatches of a parameterized job). The ensemble is partial.
	Dropped Kind = "dropped"
	// NotShipped is a file or directory the source mounts from the host (a
	// bind mount, a ConfigMap, a Nomad template) that does not travel with
	// the ensemble: the allocation starts without it.
	NotShipped Kind = "not-shipped"
)

// Warning is something of the source that the ensemble does not carry.
type Warning struct {
	Path string `json:"path"` // where in the source: services.web.build
	Msg  string `json:"message"`
	Kind Kind   `json:"kind"`
	Line int    `json:"line,omitempty"` // the line in the source, when known
}

// OfKind returns the warnings of kind k, in order.
func OfKind(ws []Warning, k Kind) []Warning {
	var out []Warning
	for _, w := range ws {
		if w.Kind == k {
			out = append(out, w)
		}
	}
	return out
}

func (w Warning) String() string {
	switch {
	case w.Path == "":
		return w.Msg
	case w.Line > 0:
		return fmt.Sprintf("%s (line %d): %s", w.Path, w.Line, w.Msg)
	}
	return w.Path + ": " + w.Msg
}

// warnings collects warnings.
type warnings []Warning

// add warns about a field that is lost.
func (ws *warnings) add(path, format string, args ...any) {
	*ws = append(*ws, Warning{Path: path, Msg: fmt.Sprintf(format, args...), Kind: Lost})
}

// drop warns about a whole part that is dropped.
func (ws *warnings) drop(path, format string, args ...any) {
	*ws = append(*ws, Warning{Path: path, Msg: fmt.Sprintf(format, args...), Kind: Dropped})
}

// file warns about a file that is not shipped.
func (ws *warnings) file(path, format string, args ...any) {
	*ws = append(*ws, Warning{Path: path, Msg: fmt.Sprintf(format, args...), Kind: NotShipped})
}

// dedup removes the warnings already given, keeping the first of each.
func dedup(ws warnings) warnings {
	seen := map[Warning]bool{}
	out := ws[:0]
	for _, w := range ws {
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

// lost warns about every non-empty key of m that is not in handled: the
// generic "not carried over" for fields a translator does not map.
func (ws *warnings) lost(path string, m map[string]any, handled ...string) {
	for _, k := range mapkeys.Sorted(m) {
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

// jsonError adds the line and column to a JSON syntax or type error.
func jsonError(data []byte, err error) error {
	var off int64
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		off = syn.Offset
	case errors.As(err, &typ):
		off = typ.Offset
	default:
		return err
	}
	off = min(max(off, 0), int64(len(data)))
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	col := off - int64(bytes.LastIndexByte(data[:off], '\n'))
	return fmt.Errorf("line %d, column %d: %w", line, col, err)
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
	ws = dedup(ws)
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
