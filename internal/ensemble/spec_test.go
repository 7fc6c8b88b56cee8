package ensemble

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/match"
)

// full uses every field of the format.
const full = `version: v1
metadata:
  owner: alice
  "app.example/tier": "1"
timeouts: {queue: 10m, execution: 1h30m, total: 2h}
contracts: ["did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"]
allocations:
  db:
    type: service
    executor: docker
    resources:
      cpu: 1.5
      ram: 1GiB
      disk: 10GB
      gpus: [{vendor: nvidia, model: A100, vram: 40GiB, count: 2}]
    execution:
      image: postgres:16
      entrypoint: [docker-entrypoint.sh]
      cmd: [postgres, -c, "max_connections=200"]
      env: {POSTGRES_PASSWORD: secret, EMPTY: "", "TRUE": "true"}
      workdir: /var/lib/postgresql
    ports:
      - {port: 5432}
      - {port: 5353, protocol: udp, public: 5353}
    volumes:
      data: {path: /var/lib/postgresql/data}
      seed: {path: /seed, read_only: true}
    healthcheck:
      tcp: {port: 5432}
      interval: 5s
      timeout: 1s
      retries: 5
      start_period: 30s
    restart: {policy: on-failure, max_restarts: 3, backoff: 2s}
  web:
    type: service
    executor: docker
    execution: {image: "ghcr.io/example/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
    ports: [{port: 8080, public: 80}]
    healthcheck: {http: {port: 8080, path: /healthz}}
    depends_on: [db, migrate]
  migrate:
    executor: wasm
    resources: {cpu: 250m, ram: 64MiB}
    execution:
      module: migrate.wasm
      args: [--to, latest]
      env: [MODE=up]
    depends_on: [db]
    volumes: {out: {path: /out}}
  guest:
    executor: vm
    execution:
      kernel: vmlinuz
      initrd: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
      rootfs: rootfs.ext4
      kernel_args: quiet
      cmd: [/bin/app]
      env: {A: b}
nodes:
  data:
    allocations: [db, migrate]
    location: {accept: [europe, US-CA], reject: [DE]}
    peer: 12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo
    redundancy: 2
  front:
    allocations: [web, guest]
edges:
  - {between: [data, front], rtt: 20ms, bandwidth: 100Mbps}
`

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct{ name, src string }{
		{"full", full},
		{"minimal", "version: v1\nallocations: {a: {executor: wasm, execution: {module: a.wasm}}}\n"},
		{"odd values", `version: v1
metadata: {"null": "null", "yes": "yes", "1.0": "1.0", "": x}
allocations:
  a:
    executor: docker
    resources: {cpu: 0.001, ram: 1025, disk: 1.5GiB}
    execution: {image: alpine, cmd: ["", "true", "null", "a: b", "- x", "#"], env: {X: "1e3"}}
edges: []
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := parse([]byte(tc.src))
			if s == nil {
				t.Fatal("parse returned no spec")
			}
			out, err := Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			again, probs := parse(out)
			if again == nil {
				t.Fatalf("parse(Marshal) returned no spec: %v\n%s", probs, out)
			}
			if !reflect.DeepEqual(normal(s), normal(again)) {
				t.Errorf("Parse(Marshal(s)) != s\nfirst:  %+v\nsecond: %+v\nyaml:\n%s", s, again, out)
			}
			out2, _ := Marshal(again)
			if string(out) != string(out2) {
				t.Errorf("Marshal is not stable:\n%s\n---\n%s", out, out2)
			}
		})
	}
	if _, err := Parse([]byte(full)); err != nil {
		t.Errorf("the full example does not validate: %v", err)
	}
}

// normal clears the difference between nil and empty collections, which
// YAML does not keep.
func normal(s *Spec) *Spec {
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Struct:
			for i := range v.NumField() {
				if v.Type().Field(i).IsExported() {
					walk(v.Field(i))
				}
			}
		case reflect.Map:
			if v.Len() == 0 {
				v.Set(reflect.Zero(v.Type()))
				return
			}
			for _, k := range v.MapKeys() {
				e := reflect.New(v.Type().Elem()).Elem()
				e.Set(v.MapIndex(k))
				walk(e)
				v.SetMapIndex(k, e)
			}
		case reflect.Slice:
			if v.Len() == 0 {
				v.Set(reflect.Zero(v.Type()))
				return
			}
			for i := range v.Len() {
				walk(v.Index(i))
			}
		}
	}
	walk(reflect.ValueOf(s).Elem())
	return s
}

func TestValidateBuiltInGo(t *testing.T) {
	s := &Spec{
		Version: Version,
		Allocations: map[string]Allocation{
			"web": {Type: Service, Executor: Docker, Execution: Execution{Image: "nginx"}, Ports: []Port{{Port: 80}}},
		},
	}
	err := s.Validate()
	var probs Problems
	if !errors.As(err, &probs) {
		t.Fatalf("Validate without defaults = %v, want Problems", err)
	}
	// Zero fields with a default count as unset; only resources must be
	// positive whatever the source.
	want := []string{
		"allocations.web.resources.cpu: must be positive",
		"allocations.web.resources.ram: must be positive",
	}
	var got []string
	for _, p := range probs {
		got = append(got, p.String())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Validate problems = %q, want %q", got, want)
	}
	s.SetDefaults()
	if err := s.Validate(); err != nil {
		t.Errorf("Validate after SetDefaults = %v", err)
	}
	if got := s.Nodes["web"].Allocations; !reflect.DeepEqual(got, []string{"web"}) {
		t.Errorf("default node web holds %v", got)
	}
}

func TestLevels(t *testing.T) {
	for _, tc := range []struct {
		name string
		deps map[string][]string
		want [][]string
		err  string
	}{
		{"empty", map[string][]string{}, nil, ""},
		{"independent", map[string][]string{"b": nil, "a": nil}, [][]string{{"a", "b"}}, ""},
		{"chain", map[string][]string{"web": {"api"}, "api": {"db"}, "db": nil}, [][]string{{"db"}, {"api"}, {"web"}}, ""},
		{"diamond", map[string][]string{"web": {"api", "cache"}, "api": {"db"}, "cache": {"db"}, "db": nil, "cron": nil},
			[][]string{{"cron", "db"}, {"api", "cache"}, {"web"}}, ""},
		{"longest path wins", map[string][]string{"c": {"a", "b"}, "b": {"a"}, "a": nil}, [][]string{{"a"}, {"b"}, {"c"}}, ""},
		{"cycle", map[string][]string{"a": {"b"}, "b": {"c"}, "c": {"b"}, "d": nil}, nil, "dependency cycle: b -> c -> b"},
		{"self", map[string][]string{"a": {"a"}}, nil, "dependency cycle: a -> a"},
		{"unknown", map[string][]string{"a": {"x"}}, nil, `a depends on unknown "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Levels(tc.deps)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("Levels error = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Levels = %v, want %v", got, tc.want)
			}
		})
	}
	var ce *CycleError
	if _, err := Levels(map[string][]string{"x": {"y"}, "y": {"x"}}); !errors.As(err, &ce) || !reflect.DeepEqual(ce.Cycle, []string{"x", "y", "x"}) {
		t.Errorf("Levels cycle error = %#v", err)
	}
	s, err := Parse([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Levels()
	if want := [][]string{{"db", "guest"}, {"migrate"}, {"web"}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Spec.Levels = %v, %v; want %v", got, err, want)
	}
}

func TestLocalFiles(t *testing.T) {
	s, err := Parse([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	want := []FileRef{
		{Path: "allocations.guest.execution.kernel", File: "vmlinuz"},
		{Path: "allocations.guest.execution.rootfs", File: "rootfs.ext4"},
		{Path: "allocations.migrate.execution.module", File: "migrate.wasm"},
	}
	if got := s.LocalFiles(); !reflect.DeepEqual(got, want) {
		t.Errorf("LocalFiles = %v, want %v", got, want)
	}
	err = s.ReplaceFiles(func(f FileRef) (string, error) {
		return DigestPrefix + strings.Repeat("a", 64), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.LocalFiles(); len(got) != 0 {
		t.Errorf("LocalFiles after ReplaceFiles = %v", got)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("Validate after ReplaceFiles: %v", err)
	}
	boom := errors.New("boom")
	s, _ = Parse([]byte(full))
	if err := s.ReplaceFiles(func(FileRef) (string, error) { return "", boom }); !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "allocations.guest.execution.kernel: ") {
		t.Errorf("ReplaceFiles error = %v", err)
	}
}

func TestLocation(t *testing.T) {
	berlin := match.Location{Continent: "EU", Country: "DE", Subdivision: "DE-BE"}
	sf := match.Location{Continent: "NA", Country: "US", Subdivision: "US-CA"}
	ny := match.Location{Continent: "NA", Country: "US", Subdivision: "US-NY"}
	us := match.Location{Continent: "NA", Country: "US"} // no subdivision stated
	for _, tc := range []struct {
		name string
		loc  Location
		p    match.Location
		want bool
	}{
		{"anywhere", Location{}, berlin, true},
		{"continent", Location{Accept: []string{"europe"}}, berlin, true},
		{"other continent", Location{Accept: []string{"europe"}}, sf, false},
		{"country", Location{Accept: []string{"US"}}, sf, true},
		{"subdivision", Location{Accept: []string{"US-CA"}}, sf, true},
		{"unknown region", Location{Accept: []string{"US-CA"}}, us, false},
		{"other subdivision", Location{Accept: []string{"US-CA"}}, ny, false},
		{"reject wins", Location{Accept: []string{"europe"}, Reject: []string{"DE"}}, berlin, false},
		{"reject only", Location{Reject: []string{"DE"}}, sf, true},
		// Rejecting a subdivision rejects it, not its whole country (it
		// used to be mapped to its country and rejected every US provider).
		{"reject a subdivision", Location{Reject: []string{"US-CA"}}, sf, false},
		{"reject a subdivision: other subdivision", Location{Reject: []string{"US-CA"}}, ny, true},
		{"reject a subdivision: none stated", Location{Reject: []string{"US-CA"}}, us, true},
		{"reject a country keeps its subdivisions out", Location{Reject: []string{"US"}}, sf, false},
		{"accept a country takes its subdivisions", Location{Accept: []string{"US"}}, ny, true},
		{"accept a subdivision, reject the country", Location{Accept: []string{"US-CA"}, Reject: []string{"US"}}, sf, false},
	} {
		if got := tc.loc.Rule().Allows(tc.p); got != tc.want {
			t.Errorf("%s: %+v.Rule().Allows(%+v) = %v, want %v", tc.name, tc.loc, tc.p, got, tc.want)
		}
	}
	if n := len(countries); n != 250 {
		t.Errorf("%d country codes, want 249 ISO 3166-1 codes plus XK", n)
	}
}

func TestBandwidth(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Bandwidth
		out  string
		err  bool
	}{
		{"100Mbps", 100e6, "100Mbps", false},
		{"1.5Gbps", 1.5e9, "1500Mbps", false},
		{"800kbps", 800e3, "800kbps", false},
		{"800Kbps", 800e3, "800kbps", false},
		{"1Tbps", 1e12, "1Tbps", false},
		{"12bps", 12, "12bps", false},
		{"0.5bps", 1, "1bps", false},
		{"10MB", 0, "", true},
		{"10 Mbps", 0, "", true},
		{"Mbps", 0, "", true},
		{"-1Mbps", 0, "", true},
		{"1e3Mbps", 0, "", true},
		{"99999999999Tbps", 0, "", true},
	} {
		got, err := ParseBandwidth(tc.in)
		if tc.err {
			if err == nil || !errors.Is(err, ErrBandwidth) {
				t.Errorf("ParseBandwidth(%q) = %v, %v; want ErrBandwidth", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want || got.String() != tc.out {
			t.Errorf("ParseBandwidth(%q) = %v (%s), %v; want %v (%s)", tc.in, uint64(got), got, err, uint64(tc.want), tc.out)
		}
	}
}

func TestDurationsAndSizesFormat(t *testing.T) {
	for d, want := range map[time.Duration]string{
		10 * time.Minute:                   "10m",
		time.Hour:                          "1h",
		90 * time.Minute:                   "1h30m",
		1500 * time.Millisecond:            "1.5s",
		time.Hour + time.Second:            "1h0m1s",
		2*time.Hour + 3*time.Minute:        "2h3m",
		0:                                  "0s",
		-5 * time.Millisecond:              "-5ms",
		time.Duration(1<<63 - 1):           "2562047h47m16.854775807s",
		time.Minute + 500*time.Millisecond: "1m0.5s",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
		if back, err := time.ParseDuration(formatDuration(d)); err != nil || back != d {
			t.Errorf("ParseDuration(formatDuration(%v)) = %v, %v", d, back, err)
		}
	}
	for b, want := range map[match.Bytes]string{512 << 20: "512MiB", 2e9: "2GB", 1025: "1025", 1536 << 20: "1536MiB", 3 << 40: "3TiB", 1000: "1kB"} {
		if got := formatBytes(b).Value; got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", uint64(b), got, want)
		}
	}
	for c, want := range map[match.MilliCPU]string{1000: "1", 1500: "1.5", 250: "0.25", 1: "0.001", 12345: "12.345"} {
		if got := formatCPU(c).Value; got != want {
			t.Errorf("formatCPU(%d) = %q, want %q", int64(c), got, want)
		}
	}
}

func TestSuggest(t *testing.T) {
	for _, tc := range []struct {
		s    string
		cand []string
		want string
	}{
		{"imgae", []string{"image", "cmd"}, "image"},
		{"comand", []string{"command", "cmd"}, "command"},
		{"cmd", []string{"cpu", "env"}, ""},
		{"c", []string{"a", "b"}, ""},
		{"Web", []string{"web"}, "web"},
		{"depends-on", []string{"depends_on"}, "depends_on"},
		{"xyzzy", []string{"image"}, ""},
	} {
		if got := suggest(tc.s, tc.cand); got != tc.want {
			t.Errorf("suggest(%q, %v) = %q, want %q", tc.s, tc.cand, got, tc.want)
		}
	}
}

// TestTags checks the struct tags every other part relies on: defaults
// parse as their field's type and satisfy its enum and bounds.
func TestTags(t *testing.T) {
	seen := map[reflect.Type]bool{}
	var check func(rt reflect.Type, where string)
	check = func(rt reflect.Type, where string) {
		for rt.Kind() == reflect.Pointer || rt.Kind() == reflect.Slice || rt.Kind() == reflect.Map {
			rt = rt.Elem()
		}
		if rt.Kind() != reflect.Struct || seen[rt] {
			return
		}
		seen[rt] = true
		for _, f := range fieldsOf(rt) {
			sf := rt.Field(f.index)
			p := where + "." + f.name
			if f.doc == "" {
				t.Errorf("%s has no doc tag", p)
			}
			if f.def != "" {
				v := reflect.New(sf.Type).Elem()
				setScalar(v, f.def)
				if v.IsZero() {
					t.Errorf("%s: default %q does not parse", p, f.def)
				}
				if len(f.enum) > 0 && !contains(f.enum, f.def) {
					t.Errorf("%s: default %q is not in its enum %v", p, f.def, f.enum)
				}
			}
			if strings.Contains(sf.Tag.Get("ens"), "min=") && f.min == nil {
				t.Errorf("%s: min does not parse", p)
			}
			check(sf.Type, p)
		}
		if n := rt.NumField(); n != len(fieldsOf(rt)) {
			t.Errorf("%s: %d fields but %d with a yaml tag", rt, n, len(fieldsOf(rt)))
		}
	}
	check(reflect.TypeFor[Spec](), "spec")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(full))
	f.Add([]byte("version: v1\nallocations: {a: {executor: wasm, execution: {module: a.wasm}}}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("version: v1\nallocations:\n  a:\n    <<: [*b, {c: d}]\n"))
	f.Add([]byte("version: v1\nedges: [{between: [a, b]}]\nnodes: {a: {allocations: []}}\n"))
	f.Add([]byte("version: v1\nallocations: {a: {executor: wasm, execution: {module: a.wasm}}}\nreschedule: {attempts: 0, delay: 0s, max_delay: 1h, delay_function: constant}\n"))
	f.Add([]byte("version: v1\nallocations: {a: {executor: wasm, execution: {module: a.wasm}}}\nsupervision: {strategy: rest_for_one, standbys: [12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			var probs Problems
			if !errors.As(err, &probs) || len(probs) == 0 {
				t.Fatalf("Parse error %T %v is not Problems", err, err)
			}
			for _, p := range probs {
				if p.Msg == "" {
					t.Fatalf("problem without a message: %+v", p)
				}
			}
			return
		}
		// A valid spec survives a round trip and has an order.
		out, err := Marshal(s)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal(s)) = %v\n%s", err, out)
		}
		if !reflect.DeepEqual(normal(s), normal(again)) {
			t.Fatalf("round trip changed the spec:\n%s", out)
		}
		if _, err := s.Levels(); err != nil {
			t.Fatalf("Levels of a valid spec: %v", err)
		}
	})
}

// TestUnsupported: what the format allows but this release does not do is
// listed, path by path; a spec without it has nothing listed.
func TestUnsupported(t *testing.T) {
	s, err := Parse([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	got := s.Unsupported()
	want := []string{
		"nodes.data.redundancy: 2 copies: standby copies are not supported by this release of dms (use 1)",
		"edges[0].bandwidth: bandwidth between providers is not measured by this release of dms (remove it; rtt is enforced)",
	}
	if len(got) != len(want) {
		t.Fatalf("Unsupported() = %v, want %d problems", got, len(want))
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("problem %d = %q, want %q", i, got[i].String(), want[i])
		}
	}
	s.Nodes["data"] = Node{Allocations: s.Nodes["data"].Allocations, Redundancy: 1}
	s.Edges[0].Bandwidth = 0
	if got := s.Unsupported(); len(got) != 0 {
		t.Errorf("Unsupported() = %v, want none", got)
	}
}
