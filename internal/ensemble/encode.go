package ensemble

import (
	"bytes"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/dmsnet/dms/internal/match"
)

// Marshal writes s as YAML in a canonical form: keys in the order of the
// format reference, map keys sorted, zero values omitted, sizes, CPU,
// durations and bandwidths in exact human units. Parse(Marshal(s)) equals s
// for a spec with its defaults set.
func Marshal(s *Spec) ([]byte, error) {
	root, e := encodeWith(reflect.ValueOf(s).Elem())
	defer release(e)
	return marshalNode(root)
}

// marshalNode writes the YAML of an encoded spec.
func marshalNode(n *yaml.Node) ([]byte, error) {
	if out, ok := emit(n); ok {
		return out, nil
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, fmt.Errorf("encode ensemble: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode ensemble: %w", err)
	}
	return buf.Bytes(), nil
}

func plain(tag, value string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
}

// scalarNode encodes a Go string, int or bool, quoting as YAML needs.
func scalarNode(v any) *yaml.Node {
	switch x := v.(type) {
	case string:
		if n := stringNode(x); n != nil {
			return n
		}
	case int64:
		return plain("!!int", strconv.FormatInt(x, 10))
	case bool:
		return plain("!!bool", strconv.FormatBool(x))
	}
	return encodedNode(v)
}

// encodedNode is scalarNode by yaml.v3 itself: it writes v as a YAML
// document and parses it back, about 40 allocations and two buffers of
// several KiB per scalar.
func encodedNode(v any) *yaml.Node {
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		return plain("!!str", fmt.Sprint(v))
	}
	return &n
}

// quotedWords are the strings that begin like a keyword in yaml.v3's
// resolver (y, Y, n, N, t, T, f, F, o, O, ~) and that it writes double-quoted:
// the null and bool forms it resolves, and the YAML 1.1 bools it quotes for
// older readers (its isOldBool).
var quotedWords = map[string]bool{
	"~": true, "null": true, "Null": true, "NULL": true,
	"true": true, "True": true, "TRUE": true, "false": true, "False": true, "FALSE": true,
	"y": true, "Y": true, "yes": true, "Yes": true, "YES": true, "on": true, "On": true, "ON": true,
	"n": true, "N": true, "no": true, "No": true, "NO": true, "off": true, "Off": true, "OFF": true,
}

// stringNode returns the node encodedNode returns for s, without the
// encoder, for the strings whose form is decided by their first byte and
// the keyword list: non-empty, valid UTF-8, one line, not starting with a
// sign, digit or dot (which may be numbers or timestamps) nor "<<" (the
// merge key). It returns nil for the others. A plain-style node is
// written plain, or quoted by the emitter where plain cannot be read back,
// exactly as the encoder does; TestStringNode and FuzzStringNode compare
// the two on the YAML written in every position.
func stringNode(s string) *yaml.Node {
	style, ok := stringStyle(s)
	if !ok {
		return nil
	}
	n := plain("!!str", s)
	n.Style = style
	return n
}

// stringStyle returns the style of stringNode's node for s, and whether
// stringNode makes one.
func stringStyle(s string) (yaml.Style, bool) {
	if s == "" || s == "<<" || strings.IndexByte(s, '\n') >= 0 || !utf8.ValidString(s) {
		return 0, false
	}
	switch c := s[0]; {
	case c == '+' || c == '-' || c == '.' || '0' <= c && c <= '9':
		return 0, false
	}
	if quotedWords[s] {
		return yaml.DoubleQuotedStyle, true
	}
	return 0, true
}

// keepZero are the structs whose zero numbers and durations are written:
// their defaults are not zero, yet zero is a value of its own (attempts: 0
// turns redeploys off, delay: 0s redeploys at once), which an omitted key
// would turn back into the default.
var keepZero = map[reflect.Type]bool{
	reflect.TypeFor[Reschedule](): true,
}

// encode returns the YAML node of v, made of new nodes.
func encode(v reflect.Value) *yaml.Node {
	var e encoder
	return e.encode(v)
}

// encodeWith is encode with nodes of a kept encoder, e.g. for a document
// written and dropped at once; release(e) when the nodes are no longer used.
func encodeWith(v reflect.Value) (*yaml.Node, *encoder) {
	e := encoders.Get().(*encoder)
	return e.encode(v), e
}

// encoders are the encoders of released documents, their slabs emptied.
var encoders = sync.Pool{New: func() any { return new(encoder) }}

// maxKeptNodes bounds the slabs of an encoder kept for reuse.
const maxKeptNodes = 1024

// release empties e's slabs (the nodes of the document it encoded, no longer
// used) and keeps it for the next document, unless they are large.
func release(e *encoder) {
	if e.reset() {
		encoders.Put(e)
	}
}

// reset empties e's slabs for another document and reports whether they
// are small enough to keep.
func (e *encoder) reset() bool {
	if e.size > maxKeptNodes {
		return false
	}
	for _, s := range e.slabs {
		clear(s)
	}
	clear(e.ptrSlabs)
	e.used, e.cur, e.ptrUsed = 0, 0, 0
	return true
}

// An encoder makes the nodes of a document from slabs: a few allocations
// per document, none for a kept one, instead of one per node and one or
// more per list of a node's children (a usual spec has about a hundred
// nodes). Nothing but the document uses its nodes.
type encoder struct {
	slabs    [][]yaml.Node
	cur      int // the slab in use
	used     int // nodes used of it
	size     int // nodes in all slabs
	ptrSlabs []*yaml.Node
	ptrUsed  int
}

// node returns a new empty node.
func (e *encoder) node() *yaml.Node {
	for e.cur < len(e.slabs) && e.used == len(e.slabs[e.cur]) {
		e.cur, e.used = e.cur+1, 0
	}
	if e.cur == len(e.slabs) {
		n := 32 << min(len(e.slabs), 4)
		e.slabs = append(e.slabs, make([]yaml.Node, n))
		e.size += n
	}
	n := &e.slabs[e.cur][e.used]
	e.used++
	return n
}

// content returns an empty list of children with room for n.
func (e *encoder) content(n int) []*yaml.Node {
	if len(e.ptrSlabs)-e.ptrUsed < n {
		if n > 64 || e.ptrSlabs != nil && len(e.ptrSlabs) >= 2*maxKeptNodes {
			return make([]*yaml.Node, 0, n)
		}
		// A new slab; the old one stays with the nodes that use it.
		e.ptrSlabs, e.ptrUsed = make([]*yaml.Node, 2*len(e.ptrSlabs)+128), 0
	}
	c := e.ptrSlabs[e.ptrUsed : e.ptrUsed : e.ptrUsed+n]
	e.ptrUsed += n
	return c
}

func (e *encoder) plain(tag, value string) *yaml.Node {
	n := e.node()
	n.Kind, n.Tag, n.Value = yaml.ScalarNode, tag, value
	return n
}

// str is scalarNode of a string.
func (e *encoder) str(s string) *yaml.Node {
	style, ok := stringStyle(s)
	if !ok {
		return encodedNode(s)
	}
	n := e.plain("!!str", s)
	n.Style = style
	return n
}

func (e *encoder) encode(v reflect.Value) *yaml.Node {
	switch v.Type() {
	case durationType:
		return e.plain("!!str", formatDuration(time.Duration(v.Int())))
	case bytesType:
		return e.plain(bytesText(match.Bytes(v.Uint())))
	case cpuType:
		return e.plain(cpuText(match.MilliCPU(v.Int())))
	case moneyType:
		return e.plain("!!str", match.Money(v.Int()).String())
	case bandwidthType:
		return e.plain("!!str", Bandwidth(v.Uint()).String())
	}
	switch v.Kind() {
	case reflect.Pointer:
		return e.encode(v.Elem())
	case reflect.Struct:
		m := e.node()
		m.Kind, m.Tag = yaml.MappingNode, "!!map"
		fields := fieldsOf(v.Type())
		m.Content = e.content(2 * len(fields))
		for _, f := range fields {
			fv := v.Field(f.index)
			keep := keepZero[v.Type()] && (fv.Kind() == reflect.Int || fv.Kind() == reflect.Int64)
			if fv.IsZero() && !keep || (fv.Kind() == reflect.Slice || fv.Kind() == reflect.Map) && fv.Len() == 0 {
				continue
			}
			m.Content = append(m.Content, e.plain("!!str", f.name), e.encode(fv))
		}
		return m
	case reflect.Map:
		m := e.node()
		m.Kind, m.Tag = yaml.MappingNode, "!!map"
		keys := v.MapKeys()
		names := make([]string, len(keys))
		for i, k := range keys {
			names[i] = k.String()
		}
		sort.Strings(names)
		m.Content = e.content(2 * len(names))
		for _, k := range names {
			m.Content = append(m.Content, e.str(k), e.encode(v.MapIndex(reflect.ValueOf(k).Convert(v.Type().Key()))))
		}
		return m
	case reflect.Slice:
		l := e.node()
		l.Kind, l.Tag = yaml.SequenceNode, "!!seq"
		if v.Type().Elem().Kind() == reflect.String {
			l.Style = yaml.FlowStyle
		}
		l.Content = e.content(v.Len())
		for i := range v.Len() {
			l.Content = append(l.Content, e.encode(v.Index(i)))
		}
		return l
	case reflect.String:
		return e.str(v.String())
	case reflect.Int:
		return e.plain("!!int", strconv.FormatInt(v.Int(), 10))
	case reflect.Bool:
		return e.plain("!!bool", strconv.FormatBool(v.Bool()))
	}
	return scalarNode(fmt.Sprint(v.Interface()))
}

// formatBytes writes a size exactly: with the largest binary or decimal
// unit that divides it, else as a number of bytes.
func formatBytes(b match.Bytes) *yaml.Node { return plain(bytesText(b)) }

// bytesText is formatBytes's node's tag and value.
func bytesText(b match.Bytes) (tag, value string) {
	units := []struct {
		name string
		size uint64
	}{
		{"PiB", 1 << 50}, {"PB", 1e15}, {"TiB", 1 << 40}, {"TB", 1e12}, {"GiB", 1 << 30}, {"GB", 1e9},
		{"MiB", 1 << 20}, {"MB", 1e6}, {"KiB", 1 << 10}, {"kB", 1e3},
	}
	for _, u := range units {
		if b != 0 && uint64(b)%u.size == 0 {
			return "!!str", strconv.FormatUint(uint64(b)/u.size, 10) + u.name
		}
	}
	return "!!int", strconv.FormatUint(uint64(b), 10)
}

// formatCPU writes a CPU amount exactly in cores: 2, 1.5, 0.25.
func formatCPU(c match.MilliCPU) *yaml.Node { return plain(cpuText(c)) }

// cpuText is formatCPU's node's tag and value.
func cpuText(c match.MilliCPU) (tag, value string) {
	if c%1000 == 0 {
		return "!!int", strconv.FormatInt(int64(c/1000), 10)
	}
	s := fmt.Sprintf("%d.%03d", c/1000, c%1000)
	return "!!float", strings.TrimRight(s, "0")
}
