package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/dmsnet/dms/api"
)

// fakeResources answers by the request: RAM "100TiB" is refused, "boom"
// fails, anything else is onboarded.
type fakeResources struct {
	got       *api.OnboardRequest // the last one accepted
	onboarded bool
	budget    int64
}

func (f *fakeResources) Snapshot(context.Context) (api.ResourceSnapshot, error) {
	s := api.ResourceSnapshot{Capacity: api.Resources{CPU: 2, RAM: 8 << 30}}
	if f.onboarded {
		s.Onboarded = &api.Onboarding{Resources: api.Resources{CPU: 1}}
	}
	return s, nil
}

func (f *fakeResources) Onboard(_ context.Context, req api.OnboardRequest) (api.OnboardResult, error) {
	if req.RAM != nil {
		switch *req.RAM {
		case "100TiB":
			return api.OnboardResult{}, &Refused{Err: errors.New("onboard: ram 100TiB exceeds available 6GiB (machine 7GiB minus reserve 1GiB)")}
		case "4 GB":
			return api.OnboardResult{}, &BadRequest{Err: errors.New(`ram: "4 GB" is not a size`)}
		case "boom":
			return api.OnboardResult{}, errors.New("persist resources: disk full")
		}
	}
	f.got = &req
	f.onboarded = true
	return api.OnboardResult{Onboarded: api.Onboarding{Resources: api.Resources{CPU: 1}}}, nil
}

func (f *fakeResources) Offboard(context.Context) (api.OffboardResult, error) {
	if !f.onboarded {
		return api.OffboardResult{}, &Refused{Err: errors.New("offboard: not onboarded")}
	}
	f.onboarded = false
	return api.OffboardResult{}, nil
}

func (f *fakeResources) Benchmark(_ context.Context, req api.BenchmarkRequest) (api.BenchmarkResult, error) {
	f.budget = req.BudgetMS
	return api.BenchmarkResult{Scores: api.Scores{CPUSingle: 1000, Version: 1}, DataDir: "/d"}, nil
}

func TestResourceEndpoints(t *testing.T) {
	fake := &fakeResources{}
	s, err := New(Config{Addr: "127.0.0.1:0", Token: token, Resources: fake})
	if err != nil {
		t.Fatal(err)
	}
	const lo = "127.0.0.1:5000"
	tests := []struct {
		name, method, path, body string
		wantStatus               int
		wantCode                 string
	}{
		{"snapshot", "GET", "/api/v1/resources", "", 200, ""},
		{"offboard before onboarding", "POST", "/api/v1/offboard", "", 409, api.CodeRefused},
		{"onboard numbers and strings", "POST", "/api/v1/onboard", `{"cpu": 1, "ram": "512MiB", "disk": 1073741824, "gpus": ["0:8GiB"]}`, 200, ""},
		{"onboard refused", "POST", "/api/v1/onboard", `{"ram": "100TiB"}`, 409, api.CodeRefused},
		{"onboard malformed amount", "POST", "/api/v1/onboard", `{"ram": "4 GB"}`, 400, api.CodeBadRequest},
		{"onboard amount of the wrong type", "POST", "/api/v1/onboard", `{"ram": true}`, 400, api.CodeBadRequest},
		{"onboard unknown field", "POST", "/api/v1/onboard", `{"memory": "1GiB"}`, 400, api.CodeBadRequest},
		{"onboard not JSON", "POST", "/api/v1/onboard", `cpu=1`, 400, api.CodeBadRequest},
		{"onboard store failure", "POST", "/api/v1/onboard", `{"ram": "boom"}`, 500, api.CodeInternal},
		{"offboard empty object", "POST", "/api/v1/offboard", `{}`, 200, ""},
		{"benchmark default budget", "POST", "/api/v1/benchmark", "", 200, ""},
		{"benchmark budget", "POST", "/api/v1/benchmark", `{"budget_ms": 2000}`, 200, ""},
		{"benchmark budget too small", "POST", "/api/v1/benchmark", `{"budget_ms": 5}`, 400, api.CodeBadRequest},
		{"benchmark budget too large", "POST", "/api/v1/benchmark", `{"budget_ms": 600000}`, 400, api.CodeBadRequest},
		{"wrong method", "GET", "/api/v1/onboard", "", 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(s, tt.method, tt.path, tt.body, lo, token)
			if w.Code != tt.wantStatus {
				t.Fatalf("%s %s = %d, want %d (%s)", tt.method, tt.path, w.Code, tt.wantStatus, w.Body)
			}
			if tt.wantCode != "" {
				var er api.ErrorResponse
				if err := json.Unmarshal(w.Body.Bytes(), &er); err != nil || er.Error.Code != tt.wantCode || er.Error.Message == "" {
					t.Fatalf("error body = %s, want code %s and a message", w.Body, tt.wantCode)
				}
			}
		})
	}
	if fake.got == nil || fake.got.RAM == nil || fake.got.CPU == nil || *fake.got.CPU != "1" || *fake.got.Disk != "1073741824" || (*fake.got.GPUs)[0] != "0:8GiB" {
		t.Errorf("last onboard request = %+v, want the last accepted one's amounts as text", fake.got)
	}
	if fake.budget != 2000 {
		t.Errorf("benchmark budget_ms = %d, want 2000", fake.budget)
	}
}

func TestResourceEndpointsNotWired(t *testing.T) {
	s, _ := newServer(t)
	for _, ep := range []struct{ method, path, body string }{
		{"GET", "/api/v1/resources", ""},
		{"POST", "/api/v1/onboard", `{"cpu": 1}`},
		{"POST", "/api/v1/offboard", ""},
		{"POST", "/api/v1/benchmark", ""},
	} {
		if w := do(s, ep.method, ep.path, ep.body, "127.0.0.1:5000", token); w.Code != http.StatusServiceUnavailable {
			t.Errorf("%s %s without a ResourceService = %d, want 503", ep.method, ep.path, w.Code)
		}
	}
}

func TestAmountJSON(t *testing.T) {
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{"string", `"512MiB"`, "512MiB", false},
		{"integer", `1073741824`, "1073741824", false},
		{"fraction", `1.5`, "1.5", false},
		{"exponent kept as text", `1e400`, "1e400", false},
		{"bool", `true`, "", true},
		{"object", `{"a":1}`, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a api.Amount
			err := json.Unmarshal([]byte(tt.in), &a)
			if (err != nil) != tt.wantErr || string(a) != tt.want {
				t.Fatalf("Unmarshal(%s) = %q, %v; want %q, error %v", tt.in, a, err, tt.want, tt.wantErr)
			}
		})
	}
}
