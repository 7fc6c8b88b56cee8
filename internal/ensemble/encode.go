package ensemble

import (
	"bytes"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
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
	return marshalNode(encode(reflect.ValueOf(s).Elem()))
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
	if s == "" || s == "<<" || strings.IndexByte(s, '\n') >= 0 || !utf8.ValidString(s) {
		return nil
	}
	switch c := s[0]; {
	case c == '+' || c == '-' || c == '.' || '0' <= c && c <= '9':
		return nil
	}
	n := plain("!!str", s)
	if quotedWords[s] {
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}

// keepZero are the structs whose zero numbers and durations are written:
// their defaults are not zero, yet zero is a value of its own (attempts: 0
// turns redeploys off, delay: 0s redeploys at once), which an omitted key
// would turn back into the default.
var keepZero = map[reflect.Type]bool{
	reflect.TypeFor[Reschedule](): true,
}

// encode returns the YAML node of v.
func encode(v reflect.Value) *yaml.Node {
	switch v.Type() {
	case durationType:
		return plain("!!str", formatDuration(time.Duration(v.Int())))
	case bytesType:
		return formatBytes(match.Bytes(v.Uint()))
	case cpuType:
		return formatCPU(match.MilliCPU(v.Int()))
	case moneyType:
		return plain("!!str", match.Money(v.Int()).String())
	case bandwidthType:
		return plain("!!str", Bandwidth(v.Uint()).String())
	}
	switch v.Kind() {
	case reflect.Pointer:
		return encode(v.Elem())
	case reflect.Struct:
		m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for _, f := range fieldsOf(v.Type()) {
			fv := v.Field(f.index)
			keep := keepZero[v.Type()] && (fv.Kind() == reflect.Int || fv.Kind() == reflect.Int64)
			if fv.IsZero() && !keep || (fv.Kind() == reflect.Slice || fv.Kind() == reflect.Map) && fv.Len() == 0 {
				continue
			}
			m.Content = append(m.Content, plain("!!str", f.name), encode(fv))
		}
		return m
	case reflect.Map:
		m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		keys := v.MapKeys()
		names := make([]string, len(keys))
		for i, k := range keys {
			names[i] = k.String()
		}
		sort.Strings(names)
		for _, k := range names {
			m.Content = append(m.Content, scalarNode(k), encode(v.MapIndex(reflect.ValueOf(k).Convert(v.Type().Key()))))
		}
		return m
	case reflect.Slice:
		l := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		if v.Type().Elem().Kind() == reflect.String {
			l.Style = yaml.FlowStyle
		}
		for i := range v.Len() {
			l.Content = append(l.Content, encode(v.Index(i)))
		}
		return l
	case reflect.String:
		return scalarNode(v.String())
	case reflect.Int:
		return scalarNode(v.Int())
	case reflect.Bool:
		return scalarNode(v.Bool())
	}
	return scalarNode(fmt.Sprint(v.Interface()))
}

// formatBytes writes a size exactly: with the largest binary or decimal
// unit that divides it, else as a number of bytes.
func formatBytes(b match.Bytes) *yaml.Node {
	units := []struct {
		name string
		size uint64
	}{
		{"PiB", 1 << 50}, {"PB", 1e15}, {"TiB", 1 << 40}, {"TB", 1e12}, {"GiB", 1 << 30}, {"GB", 1e9},
		{"MiB", 1 << 20}, {"MB", 1e6}, {"KiB", 1 << 10}, {"kB", 1e3},
	}
	for _, u := range units {
		if b != 0 && uint64(b)%u.size == 0 {
			return plain("!!str", strconv.FormatUint(uint64(b)/u.size, 10)+u.name)
		}
	}
	return plain("!!int", strconv.FormatUint(uint64(b), 10))
}

// formatCPU writes a CPU amount exactly in cores: 2, 1.5, 0.25.
func formatCPU(c match.MilliCPU) *yaml.Node {
	if c%1000 == 0 {
		return plain("!!int", strconv.FormatInt(int64(c/1000), 10))
	}
	s := fmt.Sprintf("%d.%03d", c/1000, c%1000)
	return plain("!!float", strings.TrimRight(s, "0"))
}
