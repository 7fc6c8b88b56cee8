package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/dmsnet/dms/internal/atomicfile"
	"github.com/dmsnet/dms/internal/match"
)

// FileName is the name of the config file in a dms home.
const FileName = "config.yaml"

// Duration is a time.Duration written as "30s", "10m" in YAML and JSON.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes "30s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads a Go duration ("30s", "1h30m").
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := match.ParseDuration(string(b))
	if errors.Is(err, match.ErrDurationRange) {
		return err
	}
	if err != nil {
		return fmt.Errorf("%q is not a duration (examples: 500ms, 30s, 10m, 1h)", b)
	}
	*d = Duration(v)
	return nil
}

// Source says where to load configuration from.
type Source struct {
	Home  string            // the dms home; its config.yaml is read when present
	Env   []string          // KEY=VALUE pairs, usually os.Environ(); only DMS_* keys matter
	Flags map[string]string // key path → value, from command-line flags
}

// Load builds the effective configuration: defaults, then the file, then the
// environment, then flags. It does not validate; call Validate.
func Load(src Source) (Config, error) {
	cfg := Default()
	if src.Home != "" {
		if err := readFile(filepath.Join(src.Home, FileName), &cfg); err != nil {
			return cfg, err
		}
	}
	if err := applyEnv(&cfg, src.Env); err != nil {
		return cfg, err
	}
	keys := make([]string, 0, len(src.Flags))
	for k := range src.Flags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := Set(&cfg, k, src.Flags[k]); err != nil {
			return cfg, fmt.Errorf("flag: %w", err)
		}
	}
	return cfg, nil
}

// ReadFile returns the configuration in the file alone, over defaults, with
// neither environment nor flags. It is what `dms config set` edits.
func ReadFile(home string) (Config, error) {
	cfg := Default()
	return cfg, readFile(filepath.Join(home, FileName), &cfg)
}

func readFile(path string, cfg *Config) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	if err := Decode(data, cfg); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// Decode reads YAML over cfg. Unknown keys are errors.
func Decode(data []byte, cfg *Config) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		return cleanYAMLError(err)
	}
	return nil
}

// cleanYAMLError turns yaml.v3's multi-line errors into one line.
func cleanYAMLError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return errors.New(strings.Join(te.Errors, "; "))
	}
	return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
}

// Save writes cfg as <home>/config.yaml atomically (mode 0600).
func Save(home string, cfg Config) error {
	data, err := Encode(cfg)
	if err != nil {
		return err
	}
	header := []byte("# dms node configuration. Every key, its meaning and default: docs/config.md,\n# or `dms config show`. Environment variables DMS_<KEY> and flags override it.\n")
	return atomicfile.WriteFile(filepath.Join(home, FileName), append(header, data...), 0o600)
}

// Encode writes cfg as YAML.
func Encode(cfg Config) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(cfg); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// EnvName returns the environment variable that overrides key.
func EnvName(key string) string {
	return "DMS_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// applyEnv applies DMS_* variables that name a configuration key. Other DMS_
// variables (DMS_HOME, DMS_PASSPHRASE, ...) are not configuration and are
// left alone.
func applyEnv(cfg *Config, env []string) error {
	byEnv := map[string]string{}
	for _, k := range Keys() {
		byEnv[EnvName(k)] = k
	}
	var errs []error
	for _, kv := range env {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, "DMS_") {
			continue
		}
		key, ok := byEnv[name]
		if !ok {
			continue
		}
		if err := Set(cfg, key, val); err != nil {
			errs = append(errs, fmt.Errorf("environment %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// Field describes one configuration key.
type Field struct {
	Key     string // dotted path: p2p.listen
	Doc     string
	Type    string // a short type name for docs
	Default string
}

// Fields lists every leaf key with its documentation and default, in tree order.
func Fields() []Field {
	var out []Field
	def := reflect.ValueOf(Default())
	walk(def, "", func(key string, v reflect.Value, sf reflect.StructField) {
		out = append(out, Field{Key: key, Doc: sf.Tag.Get("doc"), Type: typeName(v), Default: format(v)})
	})
	return out
}

// Keys lists every leaf key.
func Keys() []string {
	var out []string
	for _, f := range Fields() {
		out = append(out, f.Key)
	}
	return out
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// isLeaf reports whether a value is set as a whole (not walked into).
func isLeaf(v reflect.Value) bool {
	return v.Kind() != reflect.Struct || reflect.PointerTo(v.Type()).Implements(textUnmarshaler)
}

func walk(v reflect.Value, prefix string, fn func(key string, v reflect.Value, sf reflect.StructField)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		name := strings.Split(sf.Tag.Get("yaml"), ",")[0]
		if name == "" || name == "-" {
			continue
		}
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		fv := v.Field(i)
		if isLeaf(fv) {
			fn(key, fv, sf)
		} else {
			walk(fv, key, fn)
		}
	}
}

// lookup finds the field of key in cfg.
func lookup(cfg *Config, key string) (reflect.Value, error) {
	v := reflect.ValueOf(cfg).Elem()
	parts := strings.Split(key, ".")
	for i, p := range parts {
		if isLeaf(v) {
			return reflect.Value{}, unknownKey(key)
		}
		t := v.Type()
		found := false
		for j := 0; j < t.NumField(); j++ {
			if strings.Split(t.Field(j).Tag.Get("yaml"), ",")[0] == p {
				v = v.Field(j)
				found = true
				break
			}
		}
		if !found {
			return reflect.Value{}, unknownKey(key)
		}
		if i == len(parts)-1 && !isLeaf(v) {
			return reflect.Value{}, fmt.Errorf("%s is a section, not a key; its keys: %s", key, strings.Join(keysUnder(key), ", "))
		}
	}
	return v, nil
}

func keysUnder(prefix string) []string {
	var out []string
	for _, k := range Keys() {
		if strings.HasPrefix(k, prefix+".") {
			out = append(out, k)
		}
	}
	return out
}

func unknownKey(key string) error {
	best, bestD := "", 4
	for _, k := range Keys() {
		if d := editDistance(k, key); d < bestD {
			best, bestD = k, d
		}
	}
	if best != "" {
		return fmt.Errorf("unknown config key %q (did you mean %s?)", key, best)
	}
	return fmt.Errorf("unknown config key %q (see `dms config show`)", key)
}

// Get returns the value of key as text.
func Get(cfg Config, key string) (string, error) {
	v, err := lookup(&cfg, key)
	if err != nil {
		return "", err
	}
	return format(v), nil
}

// Set parses value into key. Lists are comma-separated ("" is the empty list).
func Set(cfg *Config, key, value string) error {
	v, err := lookup(cfg, key)
	if err != nil {
		return err
	}
	if err := parseInto(v, value); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

func parseInto(v reflect.Value, s string) error {
	if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return u.UnmarshalText([]byte(s))
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", s)
		}
		v.SetInt(n)
	case reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		v.SetFloat(f)
	case reflect.Slice:
		var items []string
		for _, it := range strings.Split(s, ",") {
			if it = strings.TrimSpace(it); it != "" {
				items = append(items, it)
			}
		}
		v.Set(reflect.ValueOf(items))
	default:
		return fmt.Errorf("cannot set a %s", v.Type())
	}
	return nil
}

func format(v reflect.Value) string {
	if m, ok := v.Interface().(encoding.TextMarshaler); ok {
		b, _ := m.MarshalText()
		return string(b)
	}
	if v.Kind() == reflect.Slice {
		var items []string
		for i := 0; i < v.Len(); i++ {
			items = append(items, fmt.Sprint(v.Index(i).Interface()))
		}
		return strings.Join(items, ",")
	}
	return fmt.Sprint(v.Interface())
}

func typeName(v reflect.Value) string {
	switch v.Interface().(type) {
	case Duration:
		return "duration"
	}
	switch v.Type().Name() {
	case "Bytes":
		return "size"
	case "MilliCPU":
		return "cores"
	}
	if v.Kind() == reflect.Slice {
		return "list"
	}
	return v.Kind().String()
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Tree returns cfg as nested maps keyed like the YAML file, for JSON output.
func Tree(cfg Config) (map[string]any, error) {
	data, err := Encode(cfg)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	return m, nil
}
