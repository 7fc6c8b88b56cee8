package ensemble

import (
	"bytes"
	"strings"

	"gopkg.in/yaml.v3"
)

// emitWidth is the longest line emit writes: yaml.v3 breaks a flow list
// between items past column 80 (its best width), and emit leaves such lines
// to it.
const emitWidth = 72

// emit writes the YAML of an encoded spec as marshalNode does, byte for
// byte, for the trees encode makes of ordinary specs: block mappings,
// block lists of mappings or scalars, flow lists of scalars, and scalars
// whose plain (or, for the YAML 1.1 keywords, double-quoted) form does not
// depend on yaml.v3's analysis (safeScalar). It returns false for anything
// else, and marshalNode asks yaml.v3. yaml.v3's emitter keeps every event
// of the document in a queue it never empties: about 90 KB allocated and
// 0.1 ms for a 400-byte spec, at every Submit. TestEmitMatchesYAML and
// FuzzEmit compare the two.
func emit(n *yaml.Node) ([]byte, bool) {
	if n.Kind != yaml.MappingNode || !plainNode(n) {
		return nil, false
	}
	buf := bytes.NewBuffer(make([]byte, 0, 512))
	if !emitMapping(buf, n, 0, false) {
		return nil, false
	}
	return buf.Bytes(), true
}

// plainNode reports whether n has nothing emit does not write: no anchor,
// alias, comment or explicit style but flow (for lists) and double quotes
// (for scalars, checked by scalarText).
func plainNode(n *yaml.Node) bool {
	return n.Anchor == "" && n.Alias == nil && n.HeadComment == "" && n.LineComment == "" && n.FootComment == ""
}

// emitMapping writes a non-empty block mapping at indent; inItem says its
// first key follows a list item's "- " on the same line.
func emitMapping(buf *bytes.Buffer, n *yaml.Node, indent int, inItem bool) bool {
	if n.Kind != yaml.MappingNode || n.Style != 0 || len(n.Content) == 0 || len(n.Content)%2 != 0 || !plainNode(n) {
		return false
	}
	for i := 0; i < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if i > 0 || !inItem {
			writeIndent(buf, indent)
		}
		key, ok := scalarText(k, false)
		if !ok || indent+len(key)+1 > emitWidth {
			return false
		}
		buf.WriteString(key)
		buf.WriteByte(':')
		switch v.Kind {
		case yaml.ScalarNode:
			text, ok := scalarText(v, false)
			if !ok || indent+len(key)+2+len(text) > emitWidth {
				return false
			}
			buf.WriteByte(' ')
			buf.WriteString(text)
			buf.WriteByte('\n')
		case yaml.MappingNode:
			buf.WriteByte('\n')
			if !emitMapping(buf, v, indent+2, false) {
				return false
			}
		case yaml.SequenceNode:
			if !emitSequence(buf, v, indent, len(key)+1) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// emitSequence writes a non-empty list, the value of a key at indent that
// took keyLen columns: in flow style if it has that style (scalars only, on
// the key's line), else as a block of items two columns in.
func emitSequence(buf *bytes.Buffer, n *yaml.Node, indent, keyLen int) bool {
	if len(n.Content) == 0 || !plainNode(n) {
		return false
	}
	switch n.Style {
	case yaml.FlowStyle:
		col := indent + keyLen + 2
		buf.WriteString(" [")
		for i, item := range n.Content {
			if item.Kind != yaml.ScalarNode {
				return false
			}
			text, ok := scalarText(item, true)
			if !ok {
				return false
			}
			if i > 0 {
				buf.WriteString(", ")
				col += 2
			}
			buf.WriteString(text)
			col += len(text)
			if col > emitWidth {
				return false
			}
		}
		buf.WriteString("]\n")
		return true
	case 0:
		buf.WriteByte('\n')
		for _, item := range n.Content {
			writeIndent(buf, indent+2)
			buf.WriteString("- ")
			switch item.Kind {
			case yaml.ScalarNode:
				text, ok := scalarText(item, false)
				if !ok || indent+4+len(text) > emitWidth {
					return false
				}
				buf.WriteString(text)
				buf.WriteByte('\n')
			case yaml.MappingNode:
				if !emitMapping(buf, item, indent+4, true) {
					return false
				}
			default:
				return false
			}
		}
		return true
	}
	return false
}

func writeIndent(buf *bytes.Buffer, n int) {
	for range n {
		buf.WriteByte(' ')
	}
}

// scalarText is how yaml.v3 writes the scalar n (in a flow list if
// inFlow), if safeScalar vouches for it.
func scalarText(n *yaml.Node, inFlow bool) (string, bool) {
	if n.Kind != yaml.ScalarNode || !plainNode(n) {
		return "", false
	}
	switch n.Style {
	case 0:
		if !safeScalar(n.Tag, n.Value, inFlow) {
			return "", false
		}
		return n.Value, true
	case yaml.DoubleQuotedStyle:
		// The keywords stringNode double-quotes: letters and "~" only,
		// written as they are between the quotes.
		if n.Tag != "!!str" || !quotedWords[n.Value] {
			return "", false
		}
		return `"` + n.Value + `"`, true
	}
	return "", false
}

// safeScalar reports whether yaml.v3 writes the plain-style scalar v,
// tagged tag, as v itself: v reads back as that tag without one, and has
// no character the emitter would quote it for. It answers only for
// values it can decide by their characters, and false for the rest:
//   - !!int: up to 18 digits, no leading zero, an optional leading minus;
//   - !!float: digits, a dot, digits (formatCPU's cores);
//   - !!bool: true or false;
//   - !!str: letters, digits and _ . / = @ + - (and : outside flow lists,
//     not last), starting with a letter, "_" or "/", or with "-" and then a
//     letter or "-" (command flags), or digits then letters only (1h, 64MiB)
//     where the first letter is none of x, b, o, e (0x1, 0b1, 0o1, 1e3 are
//     numbers) — and not one of the keywords (quotedWords: null, true, yes,
//     on...), which resolve to another tag or which yaml.v3 quotes for YAML 1.1
//     readers.
func safeScalar(tag, v string, inFlow bool) bool {
	if v == "" {
		return false
	}
	switch tag {
	case "!!int":
		d := v
		if d[0] == '-' {
			d = d[1:]
		}
		// No leading zero (08 is no int to yaml.v3: base 0 reads it as
		// octal) and at most 18 digits (no overflow into a float).
		return d != "" && len(d) <= 18 && digits(d) == len(d) && (d[0] != '0' || d == "0")
	case "!!float":
		i := digits(v)
		if i == 0 || i == len(v) || v[i] != '.' {
			return false
		}
		frac := v[i+1:]
		return frac != "" && digits(frac) == len(frac)
	case "!!bool":
		return v == "true" || v == "false"
	case "!!str":
	default:
		return false
	}
	if quotedWords[v] {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case isLetter(c) || '0' <= c && c <= '9':
		case c == '_' || c == '.' || c == '/' || c == '=' || c == '@' || c == '+' || c == '-':
		case c == ':' && !inFlow && i > 0 && i < len(v)-1:
		default:
			return false
		}
	}
	switch c := v[0]; {
	case isLetter(c) || c == '_' || c == '/':
		return true
	case c == '-':
		// "---" starts a document: yaml.v3 quotes anything it begins.
		return len(v) > 1 && (isLetter(v[1]) || v[1] == '-') && !strings.HasPrefix(v, "---")
	case '0' <= c && c <= '9':
		i := digits(v)
		if i == len(v) {
			return false
		}
		switch v[i] {
		case 'x', 'X', 'b', 'B', 'o', 'O', 'e', 'E':
			return false
		}
		for j := i; j < len(v); j++ {
			if !isLetter(v[j]) {
				return false
			}
		}
		return true
	}
	return false
}

// digits is the length of v's leading run of ASCII digits.
func digits(v string) int {
	i := 0
	for i < len(v) && '0' <= v[i] && v[i] <= '9' {
		i++
	}
	return i
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
