package ensemble

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// The JSON Schema in docs/ is generated from the Go types by this test:
//
//	go test ./internal/ensemble -run TestSchema -rewrite
//
// Without -rewrite the test fails when the file differs from what the types
// say, so the schema cannot drift from the code.

var rewrite = flag.Bool("rewrite", false, "rewrite generated files (docs/ensemble.schema.json, golden files)")

var schemaFile = filepath.Join("..", "..", "docs", "ensemble.schema.json")

// obj is a JSON object that keeps its keys in insertion order.
type obj struct {
	keys []string
	vals map[string]any
}

func newObj(kv ...any) *obj {
	o := &obj{vals: map[string]any{}}
	for i := 0; i+1 < len(kv); i += 2 {
		o.set(kv[i].(string), kv[i+1])
	}
	return o
}

func (o *obj) set(k string, v any) *obj {
	if _, ok := o.vals[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.vals[k] = v
	return o
}

func (o *obj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		vb, err := json.Marshal(o.vals[k])
		if err != nil {
			return nil, err
		}
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

const namePattern = `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`

// schemaGen builds the schema of the Spec type.
type schemaGen struct {
	defs     *obj
	defNames []string
}

func (g *schemaGen) ref(name string, build func() *obj) *obj {
	if _, ok := g.defs.vals[name]; !ok {
		g.defs.set(name, nil) // reserve: recursive types
		g.defs.set(name, build())
	}
	return newObj("$ref", "#/$defs/"+name)
}

// nameMaps are the maps whose keys are names (DNS labels).
var nameMaps = map[string]bool{"allocations": true, "nodes": true, "volumes": true}

func (g *schemaGen) typ(t reflect.Type, fieldName string) *obj {
	switch t {
	case durationType:
		return g.ref("Duration", func() *obj {
			return newObj("type", "string", "pattern", `^-?([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`,
				"description", "A duration: 30s, 10m, 1h30m, 250ms.")
		})
	case bytesType:
		return g.ref("Size", func() *obj {
			return newObj("type", []string{"string", "integer"}, "minimum", 0,
				"pattern", `^[0-9]+(\.[0-9]+)?([KMGTP]i?B?|[kKMGTP]B|[Bb])?$`,
				"description", "A size: a number of bytes, or a number with a unit: 512MiB, 2GB, 1.5GiB, 512Mi (binary units are powers of 1024, decimal ones of 1000; no space).")
		})
	case cpuType:
		return g.ref("CPU", func() *obj {
			return newObj("type", []string{"number", "string"}, "minimum", 0,
				"pattern", `^[0-9]+(\.[0-9]+)?m?$`,
				"description", "CPU: cores (1, 1.5) or millicores (500m).")
		})
	case moneyType:
		return g.ref("Money", func() *obj {
			return newObj("type", []string{"number", "string"}, "minimum", 0,
				"pattern", `^[0-9]+(\.[0-9]{1,6})?$`,
				"description", "An amount of money, in units with up to 6 decimals: 0.25, 3.")
		})
	case bandwidthType:
		return g.ref("Bandwidth", func() *obj {
			return newObj("type", "string", "pattern", `^[0-9]+(\.[0-9]+)?[kKmMgGtT]?bps$`,
				"description", "A bandwidth in bits per second: 100Mbps, 1Gbps, 800kbps.")
		})
	case envType:
		return g.ref("Env", func() *obj {
			return newObj("description", "Environment variables: a mapping, or a list of KEY=VALUE.",
				"oneOf", []any{
					newObj("type", "object", "additionalProperties", newObj("type", []string{"string", "number", "boolean", "null"})),
					newObj("type", "array", "items", newObj("type", "string", "pattern", "^[^=]+=")),
				})
		})
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.typ(t.Elem(), fieldName)
	case reflect.Struct:
		return g.ref(t.Name(), func() *obj { return g.object(t) })
	case reflect.Map:
		o := newObj("type", "object")
		if nameMaps[fieldName] {
			o.set("propertyNames", newObj("pattern", namePattern))
		}
		if t.Elem().Kind() == reflect.String {
			o.set("additionalProperties", newObj("type", []string{"string", "number", "boolean"}))
		} else {
			o.set("additionalProperties", g.typ(t.Elem(), ""))
		}
		return o
	case reflect.Slice:
		return newObj("type", "array", "items", g.typ(t.Elem(), ""))
	case reflect.String:
		return newObj("type", "string")
	case reflect.Int:
		return newObj("type", "integer")
	case reflect.Bool:
		return newObj("type", "boolean")
	}
	panic("schema: no mapping for " + t.String())
}

func (g *schemaGen) object(t reflect.Type) *obj {
	props := newObj()
	var required []string
	for _, f := range fieldsOf(t) {
		p := g.typ(t.Field(f.index).Type, f.name)
		// Copy a $ref so that annotations do not land on the shared def.
		if _, isRef := p.vals["$ref"]; isRef {
			p = newObj("$ref", p.vals["$ref"])
		}
		if f.doc != "" {
			p.set("description", f.doc)
		}
		if len(f.enum) > 0 {
			p.set("enum", f.enum)
		}
		if f.min != nil {
			p.set("minimum", *f.min)
		}
		if f.max != nil {
			p.set("maximum", *f.max)
		}
		if f.def != "" {
			var def any = f.def
			if n, err := strconv.Atoi(f.def); err == nil {
				def = n
			}
			p.set("default", def)
		}
		if f.required {
			required = append(required, f.name)
		}
		props.set(f.name, p)
	}
	o := newObj("type", "object", "properties", props, "additionalProperties", false)
	if len(required) > 0 {
		o.set("required", required)
	}
	return o
}

// Schema returns the JSON Schema (draft 2020-12) of the ensemble format.
func generateSchema() []byte {
	g := &schemaGen{defs: newObj()}
	root := g.object(reflect.TypeFor[Spec]())
	s := newObj(
		"$schema", "https://json-schema.org/draft/2020-12/schema",
		"$id", "https://github.com/dmsnet/dms/docs/ensemble.schema.json",
		"title", "dms ensemble",
		"description", "A dms job: allocations, the nodes that host them and their constraints. Reference: docs/ensemble.md. Generated from internal/ensemble by `go test ./internal/ensemble -run TestSchema -rewrite`.",
	)
	for _, k := range root.keys {
		s.set(k, root.vals[k])
	}
	s.set("$defs", g.defs)
	out, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		panic(err)
	}
	return append(out, '\n')
}

func TestSchema(t *testing.T) {
	got := generateSchema()
	if *rewrite {
		if err := os.WriteFile(schemaFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatalf("%v (generate it with -rewrite)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is out of date with the Go types; run go test ./internal/ensemble -run TestSchema -rewrite", schemaFile)
	}
}

// TestSchemaFields checks, independently of the generator, that every field
// of the Go types is in the schema file and every schema property is a Go
// field.
func TestSchemaFields(t *testing.T) {
	data, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties map[string]any            `json:"properties"`
		Defs       map[string]map[string]any `json:"$defs"`
	}
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatal(err)
	}
	check := func(name string, t2 reflect.Type, props map[string]any) {
		goFields := map[string]bool{}
		for _, f := range fieldsOf(t2) {
			goFields[f.name] = true
			if _, ok := props[f.name]; !ok {
				t.Errorf("schema %s lacks the field %s", name, f.name)
			}
		}
		for p := range props {
			if !goFields[p] {
				t.Errorf("schema %s has %s, which no Go field has", name, p)
			}
		}
	}
	check("root", reflect.TypeFor[Spec](), schema.Properties)
	for _, typ := range []reflect.Type{
		reflect.TypeFor[Allocation](), reflect.TypeFor[Resources](), reflect.TypeFor[GPU](),
		reflect.TypeFor[Execution](), reflect.TypeFor[Port](), reflect.TypeFor[Volume](),
		reflect.TypeFor[Healthcheck](), reflect.TypeFor[HTTPProbe](), reflect.TypeFor[TCPProbe](),
		reflect.TypeFor[Restart](), reflect.TypeFor[Node](), reflect.TypeFor[Location](),
		reflect.TypeFor[Edge](), reflect.TypeFor[Timeouts](),
	} {
		def, ok := schema.Defs[typ.Name()]
		if !ok {
			t.Errorf("schema has no $defs.%s", typ.Name())
			continue
		}
		props, _ := def["properties"].(map[string]any)
		check(typ.Name(), typ, props)
	}
}

// TestSchemaAcceptsExamples validates the examples (and the round-trip
// sample) against docs/ensemble.schema.json with a draft 2020-12 validator,
// so the schema is known to fit what the parser accepts.
func TestSchemaAcceptsExamples(t *testing.T) {
	data, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("ensemble.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	schema, err := c.Compile("ensemble.schema.json")
	if err != nil {
		t.Fatalf("the schema does not compile: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join("..", "..", "examples", "*.yaml"))
	sources := map[string][]byte{"full": []byte(full)}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sources[filepath.Base(f)] = b
	}
	for name, src := range sources {
		var v any
		if err := yaml.Unmarshal(src, &v); err != nil {
			t.Fatal(err)
		}
		js, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
		if err != nil {
			t.Fatal(err)
		}
		if err := schema.Validate(inst); err != nil {
			t.Errorf("%s does not validate against the schema: %v", name, err)
		}
	}
	// And the schema refuses what the parser refuses, for a few shapes.
	for _, bad := range []string{
		`{"version": "v1", "allocations": {"a": {"executor": "docker", "execution": {"imgae": "x"}}}}`,
		`{"version": "v1", "allocations": {"Web": {"executor": "docker", "execution": {}}}}`,
		`{"version": "v1", "allocations": {"a": {"executor": "docker", "execution": {}, "resources": {"ram": "4 GB"}}}}`,
		`{"version": "v2", "allocations": {}}`,
	} {
		inst, _ := jsonschema.UnmarshalJSON(strings.NewReader(bad))
		if err := schema.Validate(inst); err == nil {
			t.Errorf("the schema accepts %s", bad)
		}
	}
}
