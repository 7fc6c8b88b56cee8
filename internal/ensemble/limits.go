package ensemble

import (
	"fmt"
	"maps"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// The limits of an ensemble. They are one set, checked by Parse and
// Validate, so `dms validate`, the CLI before it ships an ensemble and the
// node that receives it agree: what validates is what a node accepts.
//
// The node receives the ensemble as deployed: aliases expanded, defaults
// filled in, local files replaced by their sha256 references (Marshal of
// the Spec). A small file can expand past the limits (an alias used ten
// thousand times), so Parse also checks that form against MaxSize and
// MaxValues, and names the limit and the count when it is over.
const (
	// MaxSize is the largest ensemble Parse accepts, in bytes, as written
	// and as deployed.
	MaxSize = 4 << 20
	// MaxValues bounds the YAML values (keys, scalars, lists, mappings)
	// of an ensemble, as written with aliases expanded and as deployed.
	MaxValues = 200_000
	// MaxAllocations bounds the allocations of one ensemble.
	MaxAllocations = 1000
	// MaxNodes bounds the nodes of one ensemble.
	MaxNodes = 1000
	// MaxEdges bounds the edges of one ensemble.
	MaxEdges = 10_000
)

// digestLen is the length of a sha256 reference, what a local file
// reference becomes when the CLI ships the file.
const digestLen = len(DigestPrefix) + 64

// counts reports the allocations, nodes and edges over their limits.
func (v *validator) counts(s *Spec) {
	for _, c := range []struct {
		path, what string
		n, max     int
		limit      string
	}{
		{"allocations", "allocations", len(s.Allocations), MaxAllocations, "MaxAllocations"},
		{"nodes", "nodes", len(s.Nodes), MaxNodes, "MaxNodes"},
		{"edges", "edges", len(s.Edges), MaxEdges, "MaxEdges"},
	} {
		if c.path == "nodes" && v.pos != nil && !v.has("nodes") {
			continue // one node per allocation, by default: reported on allocations
		}
		if c.n > c.max {
			v.addf(c.path, "%d %s, at most %d (ensemble.%s)", c.n, c.what, c.max, c.limit)
		}
	}
}

// deployable checks the ensemble as the CLI ships it and a node reads it
// (Marshal, with local files as sha256 references) against MaxSize and
// MaxValues. s must be valid otherwise.
func deployable(s *Spec) Problems {
	shipped := *s
	shipped.Allocations = maps.Clone(s.Allocations)
	placeholder := DigestPrefix + strings.Repeat("0", 64)
	// The placeholder has the length of every sha256 reference, so the
	// size is the shipped one exactly.
	_ = shipped.ReplaceFiles(func(FileRef) (string, error) { return placeholder, nil })
	_, probs := marshalLimited(&shipped)
	return probs
}

// marshalLimited writes s as Marshal does, checking the document against
// MaxValues before it writes it and against MaxSize after.
func marshalLimited(s *Spec) ([]byte, Problems) {
	root, e := encodeWith(reflect.ValueOf(s).Elem())
	defer release(e) // the document's bytes are written: its nodes are done with
	var probs Problems
	if n := countValues(root); n > MaxValues {
		probs = append(probs, Problem{Msg: fmt.Sprintf(
			"document too complex as deployed (aliases expanded, defaults filled in): %d values, at most %d (ensemble.MaxValues)", n, MaxValues)})
		return nil, probs // do not encode a document that large
	}
	out, err := marshalNode(root)
	switch {
	case err != nil:
		probs = append(probs, Problem{Msg: err.Error()})
	case len(out) > MaxSize:
		probs = append(probs, Problem{Msg: fmt.Sprintf(
			"too large as deployed (aliases expanded, defaults filled in): %d bytes, at most %d (ensemble.MaxSize)", len(out), MaxSize)})
	}
	if len(probs) > 0 {
		return nil, probs
	}
	return out, nil
}

// ValidateMarshal checks s as Validate does and returns its YAML as
// Marshal writes it. A spec without local files is what the CLI ships, so
// the size check of Validate and the YAML returned are one write of the
// document, not two.
func (s *Spec) ValidateMarshal() ([]byte, error) {
	if probs := validate(s, nil); len(probs) > 0 {
		return nil, probs.err()
	}
	if len(s.LocalFiles()) > 0 {
		if probs := deployable(s); len(probs) > 0 {
			return nil, probs.err()
		}
		return Marshal(s)
	}
	out, probs := marshalLimited(s)
	if len(probs) > 0 {
		return nil, probs.err()
	}
	return out, nil
}

// countValues counts the values of a document the way Parse does: every
// node, mapping keys included.
func countValues(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	c := 1
	for _, k := range n.Content {
		c += countValues(k)
	}
	return c
}
