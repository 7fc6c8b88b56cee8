package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/apiserver"
)

// fakeDeploys is the deployment side of a node, in memory, with prefix
// resolution (exact name, else the only one a prefix begins).
type fakeDeploys struct {
	ds []api.Deployment
}

func prefixMatch(what, prefix string, names []string) (string, error) {
	var m []string
	for _, n := range names {
		if n == prefix {
			return n, nil
		}
		if strings.HasPrefix(n, prefix) {
			m = append(m, n)
		}
	}
	switch len(m) {
	case 0:
		return "", &apiserver.NotFound{Err: fmt.Errorf("%s %s: not found", what, prefix)}
	case 1:
		return m[0], nil
	}
	return "", &apiserver.Ambiguous{Err: fmt.Errorf("%s prefix %q is ambiguous: it matches %s", what, prefix, strings.Join(m, ", ")), Candidates: m}
}

func (f *fakeDeploys) find(id string) (*api.Deployment, error) {
	for i := range f.ds {
		if f.ds[i].ID == id {
			return &f.ds[i], nil
		}
	}
	return nil, &apiserver.NotFound{Err: fmt.Errorf("deployment %s: not found", id)}
}

func (f *fakeDeploys) Resolve(_ context.Context, prefix string) (string, error) {
	var ids []string
	for _, d := range f.ds {
		ids = append(ids, d.ID)
	}
	return prefixMatch("deployment", prefix, ids)
}

func (f *fakeDeploys) ResolveAllocation(_ context.Context, id, prefix string) (string, error) {
	d, err := f.find(id)
	if err != nil {
		return "", err
	}
	var names []string
	for _, al := range d.Allocations {
		names = append(names, al.Name)
	}
	return prefixMatch("allocation", prefix, names)
}

func (f *fakeDeploys) Submit(context.Context, api.DeployRequest) (*api.Deployment, error) {
	return nil, errors.New("not here")
}
func (f *fakeDeploys) List(context.Context) []api.Deployment { return f.ds }
func (f *fakeDeploys) Get(_ context.Context, id string, _ uint64, _ time.Duration) (*api.Deployment, error) {
	return f.find(id)
}
func (f *fakeDeploys) Shutdown(_ context.Context, id string) (*api.Deployment, error) {
	d, err := f.find(id)
	if err != nil {
		return nil, err
	}
	d.State = "stopped"
	return d, nil
}
func (f *fakeDeploys) Logs(_ context.Context, id, alloc string, _ bool, _ api.LogFilter, emit func(api.LogLine)) error {
	d, err := f.find(id)
	if err != nil {
		return err
	}
	for _, al := range d.Allocations {
		if alloc == "" || alloc == al.Name {
			emit(api.LogLine{Allocation: al.Name, Stream: "stdout", Data: "hello from " + al.Name + "\n"})
		}
	}
	return nil
}

// serveDeploys runs a real API server with f behind it and returns a home
// that points at it.
func serveDeploys(t *testing.T, f *fakeDeploys) string {
	t.Helper()
	const token = "0123456789abcdef0123456789abcdef"
	s, err := apiserver.New(apiserver.Config{Addr: "127.0.0.1:0", Token: token, Deployments: f})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	home := t.TempDir()
	os.WriteFile(filepath.Join(home, apiTokenFile), []byte(token+"\n"), 0o600)
	os.WriteFile(filepath.Join(home, apiAddrFile), []byte(addr.String()+"\n"), 0o600)
	return home
}

func threeDeployments() *fakeDeploys {
	created := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	return &fakeDeploys{ds: []api.Deployment{
		{ID: "dabcdefghijkl", State: "running", Created: created, Allocations: []api.DeploymentAlloc{{Name: "web", State: "running"}, {Name: "worker", State: "running"}, {Name: "db", State: "running"}}},
		{ID: "dabcxyzxyzxyz", State: "completed", Created: created, Allocations: []api.DeploymentAlloc{{Name: "job", State: "completed"}}},
		{ID: "dqrstuvwxyz23", State: "queued", Created: created, Ensemble: "version: v1\nallocations:\n  only:\n    executor: wasm\n    resources: {cpu: 1, ram: 64MiB}\n    execution: {module: sha256:" + strings.Repeat("0", 64) + "}\n"},
	}}
}

// complete runs `dms __complete args...` and returns the candidates
// (without descriptions) and the directive line.
func complete(t *testing.T, home string, args ...string) ([]string, string) {
	t.Helper()
	code, stdout, stderr := run(t, append([]string{"--home", home, "__complete"}, args...)...)
	if code != 0 {
		t.Fatalf("__complete %v: exit %d: %s", args, code, stderr)
	}
	var cands []string
	directive := ""
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if strings.HasPrefix(line, ":") {
			directive = line
			continue
		}
		if line != "" {
			name, _, _ := strings.Cut(line, "\t")
			cands = append(cands, name)
		}
	}
	return cands, directive
}

func TestCompletion(t *testing.T) {
	home := serveDeploys(t, threeDeployments())
	// Directives: 0 default (files), 4 no files, 6 no files and no space,
	// 16 directories.
	tests := []struct {
		name      string
		args      []string
		want      []string
		directive string
	}{
		{"ids", []string{"deployment", "status", ""}, []string{"dabcdefghijkl", "dabcxyzxyzxyz", "dqrstuvwxyz23"}, ":4"},
		{"ids by prefix", []string{"deployment", "shutdown", "dab"}, []string{"dabcdefghijkl", "dabcxyzxyzxyz"}, ":4"},
		{"ids for logs", []string{"deployment", "logs", "dq"}, []string{"dqrstuvwxyz23"}, ":4"},
		{"ids for events", []string{"deployment", "events", "dq"}, []string{"dqrstuvwxyz23"}, ":4"},
		{"events takes one ID", []string{"deployment", "events", "dqrstuvwxyz23", ""}, nil, ":4"},
		{"one ID only", []string{"deployment", "status", "dqrstuvwxyz23", ""}, nil, ":4"},
		{"allocation flag", []string{"deployment", "logs", "dabcd", "--allocation", "w"}, []string{"web", "worker"}, ":4"},
		{"allocation from the ensemble", []string{"deployment", "logs", "dqrs", "--allocation", ""}, []string{"only"}, ":4"},
		{"allocation of an unknown deployment", []string{"deployment", "logs", "dzzz", "--allocation", ""}, nil, ":4"},
		{"from", []string{"translate", "--from", ""}, []string{"compose", "kubernetes", "nomad"}, ":4"},
		{"from by prefix", []string{"translate", "--from", "k"}, []string{"kubernetes"}, ":4"},
		{"from a file for delegate", []string{"cap", "delegate", "--from", ""}, nil, ":0"},
		{"executor", []string{"devnet", "up", "--executor", ""}, []string{"wasm", "docker", "vm", "all"}, ":6"},
		{"executor list", []string{"devnet", "up", "--executor", "wasm,"}, []string{"wasm,docker", "wasm,vm"}, ":6"},
		{"output", []string{"deployments", "-o", ""}, []string{"table", "json", "yaml"}, ":4"},
		{"output long", []string{"deployments", "--output", "y"}, []string{"yaml"}, ":4"},
		{"translate -o is a file", []string{"translate", "-o", ""}, nil, ":0"},
		{"deploy -f is a file", []string{"deploy", "-f", ""}, nil, ":0"},
		{"translate FILE", []string{"translate", ""}, nil, ":0"},
		{"a duration is no file", []string{"deploy", "--timeout", ""}, nil, ":4"},
		{"a flag the usage does not show", []string{"deploy", "--grant-ttl", ""}, nil, ":0"},
		{"no arguments", []string{"deployments", ""}, nil, ":4"},
		{"home", []string{"deployments", "--home", ""}, nil, ":16"},
		{"own ValidArgs kept", []string{"completion", "z"}, []string{"zsh"}, ":4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, dir := complete(t, home, tt.args...)
			if !reflect.DeepEqual(got, tt.want) || dir != tt.directive {
				t.Fatalf("complete %q = %q %s, want %q %s", tt.args, got, dir, tt.want, tt.directive)
			}
		})
	}

	// Descriptions tell the deployments apart.
	_, stdout, _ := run(t, "--home", home, "__complete", "deployment", "status", "dq")
	if !strings.Contains(stdout, "dqrstuvwxyz23\tqueued, 0 allocation(s), created ") {
		t.Errorf("ID candidate lacks its description: %q", stdout)
	}
}

func TestCompletionWithoutNode(t *testing.T) {
	home := t.TempDir() // no api.addr: no node
	start := time.Now()
	got, dir := complete(t, home, "deployment", "status", "")
	if got != nil || dir != ":4" {
		t.Fatalf("complete without a node = %q %s, want nothing :4", got, dir)
	}
	// A node that does not answer (a closed port) fails as quietly.
	os.WriteFile(filepath.Join(home, apiTokenFile), []byte("0123456789abcdef0123456789abcdef\n"), 0o600)
	os.WriteFile(filepath.Join(home, apiAddrFile), []byte("127.0.0.1:1\n"), 0o600)
	got, dir = complete(t, home, "deployment", "logs", "dabc", "--allocation", "")
	if got != nil || dir != ":4" {
		t.Fatalf("complete with a node down = %q %s, want nothing :4", got, dir)
	}
	if d := time.Since(start); d > 2*completionTimeout {
		t.Fatalf("completion without a node took %v", d)
	}
}

func TestParseUsage(t *testing.T) {
	tests := []struct {
		use      string
		args     []string
		variadic bool
		flags    map[string]string
	}{
		{"status ID", []string{"ID"}, false, map[string]string{}},
		{"logs ID [-f] [--allocation NAME]", []string{"ID"}, false, map[string]string{"f": "", "allocation": "NAME"}},
		{"exec ID ALLOC [-it] -- CMD [ARG]...", []string{"ID", "ALLOC"}, false, map[string]string{"it": ""}},
		{"translate --from compose|kubernetes|nomad FILE [-o FILE]", []string{"FILE"}, false, map[string]string{"from": "compose|kubernetes|nomad", "o": "FILE"}},
		{"up [--nodes N] [--executor wasm|docker|vm|all]", nil, false, map[string]string{"nodes": "N", "executor": "wasm|docker|vm|all"}},
		{"shutdown ID...", []string{"ID"}, true, map[string]string{}},
		{"did [NAME]", []string{"NAME"}, false, map[string]string{}},
		{"plan -f FILE [--timeout=D]", nil, false, map[string]string{"f": "FILE", "timeout": "D"}},
		{"deployments", nil, false, map[string]string{}},
	}
	for _, tt := range tests {
		u := parseUsage(tt.use)
		if !reflect.DeepEqual(u.args, tt.args) || u.variadic != tt.variadic || !reflect.DeepEqual(u.flags, tt.flags) {
			t.Errorf("parseUsage(%q) = %+v, want args %q variadic %v flags %v", tt.use, u, tt.args, tt.variadic, tt.flags)
		}
	}
}

func TestPrefixesAndYAML(t *testing.T) {
	home := serveDeploys(t, threeDeployments())

	// A unique prefix works; an ambiguous one is one line naming the candidates.
	code, stdout, stderr := run(t, "--home", home, "deployment", "status", "dqrs")
	if code != 0 || !strings.Contains(stdout, "id        dqrstuvwxyz23") {
		t.Fatalf("status dqrs = exit %d, %q, %q", code, stdout, stderr)
	}
	code, _, stderr = run(t, "--home", home, "deployment", "status", "dabc")
	if code != 1 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "ambiguous") || !strings.Contains(stderr, "dabcdefghijkl, dabcxyzxyzxyz") {
		t.Fatalf("status dabc = exit %d, %q; want one line naming both", code, stderr)
	}
	code, stdout, stderr = run(t, "--home", home, "deployment", "logs", "dabcd", "--allocation", "wo")
	if code != 0 || stdout != "hello from worker\n" {
		t.Fatalf("logs dabcd --allocation wo = exit %d, %q, %q", code, stdout, stderr)
	}

	// -o yaml is the -o json form's data, field for field.
	for _, args := range [][]string{
		{"deployments"},
		{"deployment", "status", "dabcd"},
		{"deployment", "shutdown", "dabcx"},
	} {
		code, js, stderr := run(t, append([]string{"--home", home, "-o", "json"}, args...)...)
		if code != 0 {
			t.Fatalf("-o json %v: exit %d: %s", args, code, stderr)
		}
		code, ys, stderr := run(t, append([]string{"--home", home, "-o", "yaml"}, args...)...)
		if code != 0 {
			t.Fatalf("-o yaml %v: exit %d: %s", args, code, stderr)
		}
		if strings.HasPrefix(strings.TrimSpace(ys), "{") || strings.HasPrefix(strings.TrimSpace(ys), "[") {
			t.Fatalf("-o yaml %v printed JSON: %s", args, ys)
		}
		fromYAML, err := yaml.YAMLToJSON([]byte(ys))
		if err != nil {
			t.Fatalf("-o yaml %v: %v\n%s", args, err, ys)
		}
		var a, b any
		json.Unmarshal([]byte(js), &a)
		json.Unmarshal(fromYAML, &b)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("-o yaml %v differs from -o json:\n%s\n%s", args, ys, js)
		}
	}

	// A stream (logs) is YAML documents separated by ---.
	code, ys, stderr := run(t, "--home", home, "-o", "yaml", "deployment", "logs", "dabcd")
	if code != 0 || strings.Count(ys, "---\n") != 2 || !strings.Contains(ys, "allocation: worker") {
		t.Fatalf("-o yaml logs = exit %d, %q, %q; want 3 documents", code, ys, stderr)
	}
}

// FuzzParseUsage: any usage line parses without panicking, and what it
// yields is stripped of brackets and never a flag.
func FuzzParseUsage(f *testing.F) {
	for _, s := range []string{"logs ID [-f] [--allocation NAME]", "exec ID ALLOC -- CMD", "up [--executor wasm|docker]", "x [--a=B]... [[C]]...", "x [", "x ]-", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, use string) {
		u := parseUsage(use)
		for _, a := range u.args {
			if strings.HasPrefix(a, "-") || strings.HasPrefix(a, "[") || strings.HasSuffix(a, "]") {
				t.Fatalf("parseUsage(%q) args = %q", use, u.args)
			}
		}
	})
}
