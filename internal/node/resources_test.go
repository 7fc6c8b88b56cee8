package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/apiserver"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/config"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/resource"
	"github.com/dmsnet/dms/internal/store"
)

// fill sets every exported field reachable from v to a non-zero value, so
// that a JSON round trip shows every field (omitempty hides none).
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0))
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		e := reflect.New(v.Type().Elem()).Elem()
		fill(e)
		m.SetMapIndex(reflect.ValueOf("k").Convert(v.Type().Key()), e)
		v.Set(m)
	case reflect.String:
		v.SetString("s")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(7)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(7)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1.5)
	}
}

// TestWireMirrorsResource checks that each api type carries every field of
// the internal type it mirrors, with the same JSON: nothing is dropped or
// renamed by wire.
func TestWireMirrorsResource(t *testing.T) {
	tests := []struct {
		name    string
		in      any // pointer to the internal type
		out     any // pointer to the api type
		apiOnly []string
	}{
		{"snapshot", &resource.Snapshot{}, &api.ResourceSnapshot{}, []string{"benchmark_due", "benchmark_budget_ms"}},
		{"onboarding", &resource.Onboarding{}, &api.Onboarding{}, nil},
		{"scores", &resource.Scores{}, &api.Scores{}, nil},
		{"resources", &match.Resources{}, &api.Resources{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fill(reflect.ValueOf(tt.in).Elem())
			data, err := json.Marshal(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.DisallowUnknownFields()
			if err := dec.Decode(tt.out); err != nil {
				t.Fatalf("api type lacks a field: %v", err)
			}
			back, err := json.Marshal(tt.out)
			if err != nil {
				t.Fatal(err)
			}
			var want, got map[string]any
			json.Unmarshal(data, &want)
			json.Unmarshal(back, &got)
			for _, k := range tt.apiOnly {
				delete(got, k)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("api JSON =\n%s\nwant\n%s", back, data)
			}
		})
	}
}

func TestParseOnboard(t *testing.T) {
	amt := func(s string) *api.Amount { a := api.Amount(s); return &a }
	cpu := func(c match.MilliCPU) *match.MilliCPU { return &c }
	size := func(b match.Bytes) *match.Bytes { return &b }
	tests := []struct {
		name    string
		req     api.OnboardRequest
		want    resource.OnboardRequest
		wantErr string
	}{
		{"empty", api.OnboardRequest{}, resource.OnboardRequest{}, ""},
		{"units", api.OnboardRequest{CPU: amt("1.5"), RAM: amt("512MiB"), Disk: amt("1073741824")},
			resource.OnboardRequest{CPU: cpu(1500), RAM: size(512 << 20), Disk: size(1 << 30)}, ""},
		{"millicores", api.OnboardRequest{CPU: amt("500m")}, resource.OnboardRequest{CPU: cpu(500)}, ""},
		{"gpus", api.OnboardRequest{GPUs: &[]string{"0", "1:8GiB"}},
			resource.OnboardRequest{GPUs: &[]match.GPU{{Index: 0}, {Index: 1, VRAM: 8 << 30}}}, ""},
		{"no gpus", api.OnboardRequest{GPUs: &[]string{}}, resource.OnboardRequest{GPUs: &[]match.GPU{}}, ""},
		{"price", api.OnboardRequest{Price: amt("cpu=0.5,ram=0.1")},
			resource.OnboardRequest{Price: &match.Price{CPU: 500_000, RAM: 100_000}}, ""},
		{"space in size", api.OnboardRequest{RAM: amt("4 GB")}, resource.OnboardRequest{}, "ram:"},
		{"negative cpu", api.OnboardRequest{CPU: amt("-1")}, resource.OnboardRequest{}, "cpu:"},
		{"words", api.OnboardRequest{CPU: amt("lots")}, resource.OnboardRequest{}, "cpu:"},
		{"exponent", api.OnboardRequest{RAM: amt("1e400")}, resource.OnboardRequest{}, "ram:"},
		{"bad gpu", api.OnboardRequest{GPUs: &[]string{"first"}}, resource.OnboardRequest{}, "gpu:"},
		{"bad price", api.OnboardRequest{Price: amt("cheap")}, resource.OnboardRequest{}, "price"},
		{"every problem at once", api.OnboardRequest{CPU: amt("x"), Disk: amt("y")}, resource.OnboardRequest{}, "disk:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOnboard(tt.req)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseOnboard = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(tt.want)
				t.Fatalf("parseOnboard = %s, %v; want %s", g, err, w)
			}
		})
	}
}

func TestClassifyResourceErr(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string // "refused", "bad", "other"
	}{
		{"onboard error", &resource.OnboardError{Problems: []match.Reason{{Dimension: "ram", Message: "too much"}}}, "refused"},
		{"busy", errors.Join(errors.New("offboard"), resource.ErrBusy), "refused"},
		{"not onboarded", errors.Join(errors.New("offboard"), resource.ErrNotOnboarded), "refused"},
		{"invalid", errors.Join(errors.New("onboard"), resource.ErrInvalid), "bad"},
		{"store failure", errors.New("persist resources: disk full"), "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := classifyResourceErr(tt.err)
			var rf *apiserver.Refused
			var br *apiserver.BadRequest
			got := "other"
			switch {
			case errors.As(err, &rf):
				got = "refused"
			case errors.As(err, &br):
				got = "bad"
			}
			if got != tt.want || !errors.Is(err, tt.err) {
				t.Fatalf("classifyResourceErr(%v) = %T, want %s wrapping the error", tt.err, err, tt.want)
			}
		})
	}
}

// withResources opens a store in a temporary home and starts the resource
// part of n on it (benchmark budget 400 ms). The returned function closes
// the store.
func withResources(t *testing.T, n *Node, home string) func() {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(home, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	n.cfg.Home = home
	n.cfg.Config.Resources.BenchmarkBudget = config.Duration(400 * time.Millisecond)
	n.cfg.Config.Resources.ReserveCPU, n.cfg.Config.Resources.ReserveRAM, n.cfg.Config.Resources.ReserveDisk = 0, 64<<20, 64<<20
	n.cfg.Config.Executor.Docker.Enabled = false
	db, err := store.Open(filepath.Join(home, StoreFile), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n.db = db
	if err := n.startResources(context.Background()); err != nil {
		db.Close()
		t.Fatal(err)
	}
	return func() { db.Close() }
}

// The accounting survives closing and reopening the store (a restart), and
// onboarding runs the benchmark once.
func TestResourceServiceRestart(t *testing.T) {
	home := t.TempDir()
	ctx := context.Background()
	newNode := func() *Node {
		return &Node{cfg: Config{Config: config.Default()}, log: slog.New(slog.DiscardHandler)}
	}
	n := newNode()
	closeDB := withResources(t, n, home)
	svc := resourceService{n}
	snap, err := svc.Snapshot(ctx)
	if err != nil || snap.Onboarded != nil || !snap.BenchmarkDue || snap.BenchmarkBudgetMS != 400 || snap.Capacity.CPU <= 0 {
		t.Fatalf("fresh snapshot = %+v, %v; want not onboarded, benchmark due, a capacity", snap, err)
	}
	cpu, ram, disk := api.Amount("1"), api.Amount("512MiB"), api.Amount("1GiB")
	res, err := svc.Onboard(ctx, api.OnboardRequest{CPU: &cpu, RAM: &ram, Disk: &disk})
	if err != nil || !res.Benchmarked || res.Benchmark == nil || res.Benchmark.CPUSingle <= 0 || res.Warning != "" {
		t.Fatalf("Onboard = %+v, %v; want a benchmark with scores > 0", res, err)
	}
	if res.Onboarded.Resources.CPU != 1 || res.Onboarded.Resources.RAM != 512<<20 || res.Onboarded.Resources.Disk != 1<<30 {
		t.Fatalf("Onboarded = %+v", res.Onboarded.Resources)
	}
	// Again in place: no second benchmark.
	ram = "256MiB"
	res, err = svc.Onboard(ctx, api.OnboardRequest{RAM: &ram})
	if err != nil || res.Benchmarked || res.Onboarded.Resources.RAM != 256<<20 || res.Onboarded.Resources.CPU != 1 {
		t.Fatalf("re-Onboard = %+v, %v; want RAM changed in place, CPU kept, no benchmark", res, err)
	}
	huge := api.Amount("100TiB")
	_, err = svc.Onboard(ctx, api.OnboardRequest{RAM: &huge})
	var rf *apiserver.Refused
	if !errors.As(err, &rf) || !strings.Contains(err.Error(), "exceeds available") {
		t.Fatalf("Onboard 100TiB = %v, want a refusal saying what is available", err)
	}
	before, _ := svc.Snapshot(ctx)
	closeDB()

	n2 := newNode()
	defer withResources(t, n2, home)()
	after, err := resourceService{n2}.Snapshot(ctx)
	if err != nil || after.Onboarded == nil || !reflect.DeepEqual(after.Onboarded, before.Onboarded) || !reflect.DeepEqual(after.Benchmark, before.Benchmark) || after.BenchmarkDue {
		t.Fatalf("after restart = %+v, %v\nwant onboarded %+v and the same scores", after.Onboarded, err, before.Onboarded)
	}

	if _, err := (resourceService{n2}).Offboard(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := (resourceService{n2}).Offboard(ctx); !errors.As(err, &rf) {
		t.Fatalf("second Offboard = %v, want a refusal", err)
	}
}

// The behaviors answer the owner over the network and refuse a stranger.
func TestResourceBehaviors(t *testing.T) {
	provider, owner := newTestNode(t, nil), newTestNode(t, nil)
	defer withResources(t, provider.Node, t.TempDir())()
	provider.addResourceBehaviors()
	owner.connect(t, provider)

	invoke := func(t *testing.T, as *identity.Key, behavior string, payload, out any) error {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var raw []byte
		if payload != nil {
			raw, _ = json.Marshal(payload)
		}
		inv, err := cap.Invoke(as, cap.InvocationParams{Audience: provider.cfg.Key.DID(), Command: behavior, Expiry: time.Now().Add(time.Minute), Args: cap.Bind(owner.host.ID(), raw).Args()})
		if err != nil {
			t.Fatal(err)
		}
		reply, err := owner.sys.Relay(ctx, &actor.Envelope{
			To:       actor.Handle{DID: provider.cfg.Key.DID(), Host: provider.host.ID(), Inbox: actor.RootInbox},
			From:     actor.Handle{DID: as.DID(), Inbox: "api"},
			Behavior: behavior, Payload: raw, Invocation: cap.BundleOf(inv, nil), WantReply: true,
		})
		if err != nil {
			return err
		}
		return json.Unmarshal(reply.Payload, out)
	}

	tests := []struct {
		name     string
		as       *identity.Key
		behavior string
		payload  any
		check    func(t *testing.T, raw json.RawMessage, err error)
	}{
		{"stranger denied", mustKey(t), api.BehaviorOnboardStatus, nil, func(t *testing.T, _ json.RawMessage, err error) {
			if !errors.Is(err, actor.ErrDenied) {
				t.Fatalf("err = %v, want denied", err)
			}
		}},
		{"status before onboarding", provider.user, api.BehaviorOnboardStatus, nil, func(t *testing.T, raw json.RawMessage, err error) {
			var s api.ResourceSnapshot
			if err != nil || json.Unmarshal(raw, &s) != nil || s.Onboarded != nil || s.Capacity.CPU <= 0 {
				t.Fatalf("status = %s, %v", raw, err)
			}
		}},
		{"onboard", provider.user, api.BehaviorOnboard, map[string]any{"cpu": 1, "ram": "256MiB", "disk": "512MiB"}, func(t *testing.T, raw json.RawMessage, err error) {
			var r api.OnboardResult
			if err != nil || json.Unmarshal(raw, &r) != nil || r.Onboarded.Resources.RAM != 256<<20 || r.Benchmark == nil || r.Benchmark.CPUSingle <= 0 {
				t.Fatalf("onboard = %s, %v", raw, err)
			}
		}},
		{"onboard too much", provider.user, api.BehaviorOnboard, map[string]any{"ram": "100TiB"}, func(t *testing.T, _ json.RawMessage, err error) {
			if err == nil || !strings.Contains(err.Error(), "exceeds available") {
				t.Fatalf("err = %v, want a refusal saying what is available", err)
			}
		}},
		{"onboard malformed", provider.user, api.BehaviorOnboard, map[string]any{"ram": "4 GB"}, func(t *testing.T, _ json.RawMessage, err error) {
			if err == nil || !strings.Contains(err.Error(), `"4 GB"`) {
				t.Fatalf("err = %v, want the malformed amount named", err)
			}
		}},
		{"free", provider.user, api.BehaviorResourcesFree, nil, func(t *testing.T, raw json.RawMessage, err error) {
			var r api.Resources
			if err != nil || json.Unmarshal(raw, &r) != nil || r.CPU != 1 || r.RAM != 256<<20 || r.Disk != 512<<20 {
				t.Fatalf("free = %s, %v", raw, err)
			}
		}},
		{"onboarded", provider.user, api.BehaviorResourcesOnboarded, nil, func(t *testing.T, raw json.RawMessage, err error) {
			var r api.Resources
			if err != nil || json.Unmarshal(raw, &r) != nil || r.RAM != 256<<20 {
				t.Fatalf("onboarded = %s, %v", raw, err)
			}
		}},
		{"allocated", provider.user, api.BehaviorResourcesAllocated, nil, func(t *testing.T, raw json.RawMessage, err error) {
			var r api.Resources
			if err != nil || json.Unmarshal(raw, &r) != nil || r.CPU != 0 || r.RAM != 0 {
				t.Fatalf("allocated = %s, %v", raw, err)
			}
		}},
		{"offboard", provider.user, api.BehaviorOffboard, nil, func(t *testing.T, raw json.RawMessage, err error) {
			var r api.OffboardResult
			if err != nil || json.Unmarshal(raw, &r) != nil || r.Offboarded.Resources.RAM != 256<<20 {
				t.Fatalf("offboard = %s, %v", raw, err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var raw json.RawMessage
			err := invoke(t, tt.as, tt.behavior, tt.payload, &raw)
			tt.check(t, raw, err)
		})
	}
}
