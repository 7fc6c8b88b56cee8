package ensemble

import (
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// field describes one field of a spec struct, from its yaml, ens and doc
// tags (see spec.go).
type field struct {
	index    int
	name     string // the YAML key
	required bool
	enum     []string
	def      string // default in YAML form; "" when none
	min, max *int64
	doc      string
	// walks: the field's type reaches a struct (by pointers, slices and
	// maps of structs), so validator.walk has something to check under it.
	walks bool
}

// reachesStruct reports whether validator.walk, given a value of type t,
// reaches a struct: through pointers, slices, and maps whose elements are
// structs.
func reachesStruct(t reflect.Type) bool {
	for range 16 { // a type that is a pointer or slice of itself ends here
		switch t.Kind() {
		case reflect.Struct:
			return true
		case reflect.Map:
			return t.Elem().Kind() == reflect.Struct
		case reflect.Pointer, reflect.Slice:
			t = t.Elem()
		default:
			return false
		}
	}
	return true
}

var fieldCache sync.Map // reflect.Type -> []field

// fieldsOf returns the fields of struct type t that have a yaml tag.
func fieldsOf(t reflect.Type) []field {
	if f, ok := fieldCache.Load(t); ok {
		return f.([]field)
	}
	var out []field
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("yaml")
		if tag == "" || tag == "-" || !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		f := field{index: i, name: name, doc: sf.Tag.Get("doc"), walks: reachesStruct(sf.Type)}
		for opt := range strings.SplitSeq(sf.Tag.Get("ens"), ",") {
			k, v, _ := strings.Cut(opt, "=")
			switch k {
			case "required":
				f.required = true
			case "enum":
				f.enum = strings.Split(v, "|")
			case "default":
				f.def = v
			case "min", "max":
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					continue // a typo in a tag; TestTags catches it
				}
				if k == "min" {
					f.min = &n
				} else {
					f.max = &n
				}
			}
		}
		out = append(out, f)
	}
	fieldCache.Store(t, out)
	return out
}

// fieldNames returns the YAML keys of struct type t.
func fieldNames(t reflect.Type) []string {
	var names []string
	for _, f := range fieldsOf(t) {
		names = append(names, f.name)
	}
	return names
}
