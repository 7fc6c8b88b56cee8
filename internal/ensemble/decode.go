package ensemble

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/dmsnet/dms/internal/match"
)

// Limits on what Parse reads, so that no input can make it use unbounded
// memory or time. The limits on what an ensemble may describe are in
// limits.go.
const (
	// MaxProblems is the most problems Parse reports; one more says how
	// many were left out.
	MaxProblems = 200
	// maxDepth bounds the nesting of values (and of merges).
	maxDepth = 64
)

var (
	durationType  = reflect.TypeFor[time.Duration]()
	bytesType     = reflect.TypeFor[match.Bytes]()
	cpuType       = reflect.TypeFor[match.MilliCPU]()
	moneyType     = reflect.TypeFor[match.Money]()
	bandwidthType = reflect.TypeFor[Bandwidth]()
	envType       = reflect.TypeFor[Env]()
)

// Parse reads an ensemble from YAML, fills in the defaults (SetDefaults) and
// validates it (Validate). On failure the error is Problems: every problem
// found, each with its YAML path and line, and the Spec is nil.
//
// Unknown keys are errors. Anchors, aliases and merge keys (<<) work as in
// YAML.
func Parse(data []byte) (*Spec, error) {
	s, probs := parse(data)
	if len(probs) > 0 {
		return nil, probs
	}
	return s, nil
}

func parse(data []byte) (*Spec, Problems) {
	if len(data) > MaxSize {
		return nil, Problems{{Msg: fmt.Sprintf("file too large (%d bytes, at most %d: ensemble.MaxSize)", len(data), MaxSize)}}
	}
	root, p := parseYAML(data)
	if p != nil {
		return nil, Problems{*p}
	}
	d := &decoder{pos: map[string]int{}, bad: map[string]bool{}, active: map[*yaml.Node]bool{}}
	var s Spec
	d.value(root, reflect.ValueOf(&s).Elem(), "", root.Line)
	has := func(path string) bool { _, ok := d.pos[path]; return ok }
	setDefaults(&s, has)
	probs := d.probs
	for _, p := range validate(&s, d.pos) {
		if !d.covered(p.Path) {
			probs = append(probs, p)
		}
	}
	if len(probs) == 0 {
		probs = deployable(&s)
	}
	probs = probs.sort()
	if len(probs) > MaxProblems {
		more := len(probs) - MaxProblems
		probs = append(probs[:MaxProblems:MaxProblems], Problem{Msg: fmt.Sprintf("and %d more problems", more)})
	}
	return &s, probs
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// parseYAML parses one YAML document into its root node.
func parseYAML(data []byte) (root *yaml.Node, p *Problem) {
	defer func() {
		// yaml.v3 has panicked on malformed input before; a bad file must
		// never crash the caller.
		if r := recover(); r != nil {
			root, p = nil, &Problem{Msg: fmt.Sprintf("malformed YAML (%v)", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Problem{Msg: "empty document"}
		}
		p := yamlProblem(err)
		p.Line = syntaxLine(data)
		return nil, p
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return nil, &Problem{Msg: "empty document"}
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		line := next.Line
		if err != nil {
			if q := yamlProblem(err); q.Line > 0 {
				line = q.Line
			}
		}
		return nil, &Problem{Line: line, Msg: "only one YAML document is allowed (found a second one)"}
	}
	return doc.Content[0], nil
}

// syntaxLine finds the line of a syntax error. yaml.v3 reports the line
// where the enclosing block starts, or none; the line whose addition first
// makes a prefix of the document fail to parse is more useful. Found by
// bisection (a prefix of 0 lines parses, the whole document does not).
func syntaxLine(data []byte) int {
	var ends []int // ends[i] is the end of line i+1, newline included
	for i, c := range data {
		if c == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(data) {
		ends = append(ends, len(data))
	}
	fails := func(lines int) bool {
		var n yaml.Node
		dec := yaml.NewDecoder(bytes.NewReader(data[:ends[lines-1]]))
		err := dec.Decode(&n)
		return err != nil && !errors.Is(err, io.EOF)
	}
	lo, hi := 0, len(ends) // prefix(lo) parses, prefix(hi) fails
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// yamlProblem turns a yaml.v3 syntax error into a Problem with its line.
func yamlProblem(err error) *Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Problem{Line: line, Msg: "YAML syntax: " + m[2]}
	}
	return &Problem{Msg: "YAML syntax: " + msg}
}

// decoder walks a YAML node tree into a Spec, collecting problems.
type decoder struct {
	probs   Problems
	pos     map[string]int  // path -> line, for every non-null value decoded
	bad     map[string]bool // paths that had a problem
	visits  int
	tooDeep bool
	depth   int
	active  map[*yaml.Node]bool // nodes being decoded: an alias to one is a cycle
}

func (d *decoder) addf(path string, line int, format string, args ...any) {
	d.probs = append(d.probs, Problem{Path: path, Line: line, Msg: fmt.Sprintf(format, args...)})
	d.bad[path] = true
}

// covered reports whether path, or a path that contains it, already had a
// decoding problem (so that a value left zero by a bad input is not
// reported twice).
func (d *decoder) covered(path string) bool {
	for p := path; ; p = parentPath(p) {
		if d.bad[p] {
			return true
		}
		if p == "" {
			return false
		}
	}
}

// parentPath strips the last segment of a path: a.b[2] -> a.b -> a -> "".
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		// a[3] or a["x.y"]: find the '[' that opens the last segment.
		if i := strings.LastIndex(p, `["`); i >= 0 && strings.HasSuffix(p, `"]`) {
			if _, err := strconv.Unquote(p[i+1 : len(p)-1]); err == nil {
				return p[:i]
			}
		}
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.ShortTag() {
	case "!!int", "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	}
	return "a string"
}

// resolve follows aliases and counts the visit.
func (d *decoder) resolve(n *yaml.Node, path string) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	if n == nil || n.Kind == yaml.AliasNode {
		d.addf(path, 0, "unresolvable alias")
		return nil
	}
	d.visits++
	if d.visits > MaxValues {
		if !d.tooDeep {
			d.tooDeep = true
			d.addf(path, n.Line, "document too complex (more than %d values once aliases are expanded; ensemble.MaxValues)", MaxValues)
		}
		return nil
	}
	return n
}

// enter marks n as being decoded; it reports a recursive alias or a too
// deep nesting and returns false, or returns true and the caller must call
// leave.
func (d *decoder) enter(n *yaml.Node, path string, line int) bool {
	if d.active[n] {
		d.addf(path, line, "an alias refers to a value that contains it")
		return false
	}
	if d.depth >= maxDepth {
		d.addf(path, line, "nested too deeply (more than %d levels)", maxDepth)
		return false
	}
	d.active[n] = true
	d.depth++
	return true
}

func (d *decoder) leave(n *yaml.Node) {
	delete(d.active, n)
	d.depth--
}

// value decodes n into v. line is where the value's key (or list item)
// is, which is where problems with it are reported.
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string, line int) {
	n = d.resolve(n, path)
	if n == nil || isNull(n) {
		return
	}
	if v.Kind() == reflect.Pointer {
		p := reflect.New(v.Type().Elem())
		d.value(n, p.Elem(), path, line)
		v.Set(p)
		return
	}
	if !d.enter(n, path, line) {
		return
	}
	defer d.leave(n)
	d.pos[path] = line
	switch v.Type() {
	case durationType:
		if s, ok := d.scalar(n, path, line, "a duration such as 30s"); ok {
			t, err := match.ParseDuration(s)
			if err != nil {
				d.addf(path, line, "%v", err) // "is not a duration" or "is too large (at most ...)"
				return
			}
			v.SetInt(int64(t))
		}
		return
	case bytesType:
		if s, ok := d.scalar(n, path, line, "a size such as 512MiB"); ok {
			b, err := match.ParseBytes(s)
			if err != nil {
				d.addf(path, line, "%q is not a size", s)
				return
			}
			v.SetUint(uint64(b))
		}
		return
	case cpuType:
		if s, ok := d.scalar(n, path, line, "a CPU amount such as 1.5 or 500m"); ok {
			c, err := match.ParseCPU(s)
			if err != nil {
				d.addf(path, line, "%q is not a CPU amount", s)
				return
			}
			v.SetInt(int64(c))
		}
		return
	case moneyType:
		if s, ok := d.scalar(n, path, line, "an amount of money such as 0.25"); ok {
			m, err := match.ParseMoney(s)
			if err != nil {
				d.addf(path, line, "%v", err) // "... is not an amount of money (why; examples ...)"
				return
			}
			v.SetInt(int64(m))
		}
		return
	case bandwidthType:
		if s, ok := d.scalar(n, path, line, "a bandwidth such as 100Mbps"); ok {
			b, err := ParseBandwidth(s)
			if err != nil {
				d.addf(path, line, "%q is not a bandwidth", s)
				return
			}
			v.SetUint(uint64(b))
		}
		return
	case envType:
		d.env(n, v, path, line)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.structure(n, v, path, line)
	case reflect.Map:
		d.mapping(n, v, path, line)
	case reflect.Slice:
		d.list(n, v, path, line)
	case reflect.String:
		if s, ok := d.scalar(n, path, line, "a string"); ok {
			v.SetString(s)
		}
	case reflect.Int:
		d.integer(n, v, path, line)
	case reflect.Bool:
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" {
			var b bool
			if err := n.Decode(&b); err == nil {
				v.SetBool(b)
				return
			}
		}
		d.addf(path, line, "want true or false, got %s", describe(n))
	default:
		d.addf(path, line, "internal error: cannot decode a %s", v.Type())
	}
}

// describe names what a node is, quoting short scalars: "yes", a list.
func describe(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode && len(n.Value) <= 40 {
		return strconv.Quote(n.Value)
	}
	return kindName(n)
}

// scalar returns the text of a scalar node, or reports that want was
// expected.
func (d *decoder) scalar(n *yaml.Node, path string, line int, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.addf(path, line, "want %s, got %s", want, kindName(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) integer(n *yaml.Node, v reflect.Value, path string, line int) {
	if n.Kind == yaml.ScalarNode {
		var i int64
		var err error
		if n.ShortTag() == "!!int" {
			err = n.Decode(&i)
		} else {
			i, err = strconv.ParseInt(n.Value, 10, 64)
		}
		if err == nil && !v.OverflowInt(i) {
			v.SetInt(i)
			return
		}
	}
	d.addf(path, line, "want a whole number, got %s", describe(n))
}

// entry is one key/value pair of a mapping.
type entry struct {
	key, val *yaml.Node
	name     string
}

// entries lists the pairs of a mapping node in order, applying merge keys
// (<<) and reporting duplicate keys. Explicit keys win over merged ones,
// earlier merges over later ones.
func (d *decoder) entries(n *yaml.Node, path string) []entry {
	var out []entry
	seen := map[string]int{} // key -> line
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merges = append(merges, val)
			continue
		}
		k = d.resolve(k, path)
		if k == nil {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.addf(path, k.Line, "want a plain key, got %s", kindName(k))
			continue
		}
		name := k.Value
		if first, dup := seen[name]; dup {
			d.addf(keyPath(path, name), k.Line, "duplicate key (first on line %d)", first)
			continue
		}
		seen[name] = k.Line
		out = append(out, entry{k, val, name})
	}
	for _, m := range merges {
		m = d.resolve(m, path)
		if m == nil {
			continue
		}
		var sources []*yaml.Node
		switch m.Kind {
		case yaml.MappingNode:
			sources = []*yaml.Node{m}
		case yaml.SequenceNode:
			for _, s := range m.Content {
				if s = d.resolve(s, path); s != nil {
					sources = append(sources, s)
				}
			}
		}
		for _, s := range sources {
			if s.Kind != yaml.MappingNode {
				d.addf(path, s.Line, "a merge (<<) needs a mapping, got %s", kindName(s))
				continue
			}
			if !d.enter(s, path, s.Line) {
				continue
			}
			merged := d.entries(s, path)
			d.leave(s)
			for _, e := range merged {
				if _, dup := seen[e.name]; !dup {
					seen[e.name] = e.key.Line
					out = append(out, e)
				}
			}
		}
	}
	return out
}

func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string, line int) {
	if n.Kind != yaml.MappingNode {
		d.addf(path, line, "want a mapping, got %s", kindName(n))
		return
	}
	t := v.Type()
	fields := fieldsOf(t)
	for _, e := range d.entries(n, path) {
		p := keyPath(path, e.name)
		f, ok := fieldByName(fields, e.name)
		if !ok {
			d.addf(p, e.key.Line, "unknown field%s", d.unknownHint(t, e.name))
			continue
		}
		d.value(e.val, v.Field(f.index), p, e.key.Line)
	}
}

func fieldByName(fields []field, name string) (field, bool) {
	for _, f := range fields {
		if f.name == name {
			return f, true
		}
	}
	return field{}, false
}

// unknownHint suggests what an unknown key of struct type t may have meant:
// a near miss of a field name, or a field of a nested struct.
func (d *decoder) unknownHint(t reflect.Type, name string) string {
	if h := didYouMean(name, fieldNames(t)); h != "" {
		return h
	}
	for _, f := range fieldsOf(t) {
		ft := t.Field(f.index).Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() != reflect.Struct || ft == durationType {
			continue
		}
		for _, sub := range fieldNames(ft) {
			if sub == name {
				return fmt.Sprintf(" (it belongs under %s: %s.%s)", f.name, f.name, name)
			}
		}
	}
	return ""
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string, line int) {
	if n.Kind != yaml.MappingNode {
		d.addf(path, line, "want a mapping, got %s", kindName(n))
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	et := v.Type().Elem()
	for _, e := range d.entries(n, path) {
		p := keyPath(path, e.name)
		d.pos[p] = e.key.Line
		ev := reflect.New(et).Elem()
		if et.Kind() == reflect.String {
			// Free-form string maps (metadata) take any scalar.
			val := d.resolve(e.val, p)
			if val == nil {
				continue
			}
			if s, ok := d.scalar(val, p, e.key.Line, "a string"); ok && !isNull(val) {
				ev.SetString(s)
			}
		} else {
			d.value(e.val, ev, p, e.key.Line)
		}
		v.SetMapIndex(reflect.ValueOf(e.name).Convert(v.Type().Key()), ev)
	}
}

func (d *decoder) list(n *yaml.Node, v reflect.Value, path string, line int) {
	if n.Kind != yaml.SequenceNode {
		if v.Type().Elem().Kind() == reflect.String && n.Kind == yaml.ScalarNode {
			d.addf(path, line, "want a list of strings such as [\"sh\", \"-c\", \"echo hi\"], got a string")
			return
		}
		d.addf(path, line, "want a list, got %s", kindName(n))
		return
	}
	out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		d.value(item, out.Index(i), indexPath(path, i), item.Line)
	}
	v.Set(out)
}

// env decodes a mapping, or a list of KEY=VALUE strings.
func (d *decoder) env(n *yaml.Node, v reflect.Value, path string, line int) {
	env := Env{}
	switch n.Kind {
	case yaml.MappingNode:
		for _, e := range d.entries(n, path) {
			p := keyPath(path, e.name)
			d.pos[p] = e.key.Line
			val := d.resolve(e.val, p)
			if val == nil {
				continue
			}
			s := ""
			if !isNull(val) {
				var ok bool
				if s, ok = d.scalar(val, p, e.key.Line, "a string"); !ok {
					continue
				}
			}
			env[e.name] = s
		}
	case yaml.SequenceNode:
		seen := map[string]bool{}
		for i, item := range n.Content {
			p := indexPath(path, i)
			item = d.resolve(item, p)
			if item == nil {
				continue
			}
			d.pos[p] = item.Line
			s, ok := d.scalar(item, p, item.Line, "KEY=VALUE")
			if !ok {
				continue
			}
			k, val, found := strings.Cut(s, "=")
			if !found {
				d.addf(p, item.Line, "want KEY=VALUE, got %q", s)
				continue
			}
			if seen[k] {
				d.addf(p, item.Line, "%s is set twice", k)
				continue
			}
			seen[k] = true
			env[k] = val
		}
	default:
		d.addf(path, line, "want a mapping or a list of KEY=VALUE, got %s", kindName(n))
		return
	}
	v.Set(reflect.ValueOf(env))
}

// LineOf returns the line of a YAML path (as Problem.Path writes it) in an
// ensemble's source, or of its nearest ancestor present there; 0 when the
// source does not parse. Callers that find problems of their own (a missing
// module file) use it to report the line.
func LineOf(data []byte, path string) int {
	if len(data) > MaxSize {
		return 0
	}
	root, p := parseYAML(data)
	if p != nil {
		return 0
	}
	d := &decoder{pos: map[string]int{}, bad: map[string]bool{}, active: map[*yaml.Node]bool{}}
	var s Spec
	d.value(root, reflect.ValueOf(&s).Elem(), "", root.Line)
	return (&validator{pos: d.pos}).line(path)
}
