package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/dmsnet/dms/api"
)

// fakeResults serves deployment d1's volume job/out holding a.txt.
type fakeResults struct{}

func (fakeResults) Results(_ context.Context, id string) ([]api.ResultVolume, error) {
	if id != "d1" {
		return nil, &NotFound{Err: errNotFound(id)}
	}
	return []api.ResultVolume{{Allocation: "job", Volume: "out", Kind: "local", Mode: "out", Ready: true}}, nil
}

func (fakeResults) ResultManifest(_ context.Context, id, alloc, volume string) (*api.ResultManifest, error) {
	if id != "d1" || alloc != "job" || volume != "out" {
		return nil, &NotFound{Err: fmt.Errorf("no out volume %s/%s", alloc, volume)}
	}
	return &api.ResultManifest{Files: []api.ResultFile{{Path: "a.txt", Size: 5, SHA256: "x"}}, Bytes: 5}, nil
}

func (fakeResults) ResultChunk(_ context.Context, id, alloc, volume, path string, off int64, n int) ([]byte, error) {
	data := []byte("hello")
	if path != "a.txt" {
		return nil, &NotFound{Err: fmt.Errorf("no file %s", path)}
	}
	if off >= int64(len(data)) {
		return nil, nil
	}
	return data[off:min(int64(len(data)), off+int64(n))], nil
}

func TestResultsRoutes(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		status int
		code   string
		body   string
	}{
		{"list", "/api/v1/deployments/d1/results", 200, "", `[{"allocation":"job","volume":"out","kind":"local","mode":"out","ready":true}]`},
		{"manifest", "/api/v1/deployments/d1/results/job/out/manifest", 200, "", `{"files":[{"path":"a.txt","size":5,"sha256":"x"}],"bytes":5}`},
		{"chunk", "/api/v1/deployments/d1/results/job/out/chunk?path=a.txt&offset=1&length=3", 200, "", "ell"},
		{"chunk past the end", "/api/v1/deployments/d1/results/job/out/chunk?path=a.txt&offset=9&length=3", 200, "", ""},
		{"unknown deployment", "/api/v1/deployments/nope/results", 404, api.CodeNotFound, ""},
		{"unknown volume", "/api/v1/deployments/d1/results/job/in/manifest", 404, api.CodeNotFound, ""},
		{"no path", "/api/v1/deployments/d1/results/job/out/chunk?offset=0&length=3", 400, api.CodeBadRequest, ""},
		{"bad offset", "/api/v1/deployments/d1/results/job/out/chunk?path=a.txt&offset=-1&length=3", 400, api.CodeBadRequest, ""},
		{"offset not a number", "/api/v1/deployments/d1/results/job/out/chunk?path=a.txt&offset=x&length=3", 400, api.CodeBadRequest, ""},
		{"zero length", "/api/v1/deployments/d1/results/job/out/chunk?path=a.txt&offset=0&length=0", 400, api.CodeBadRequest, ""},
		{"length too large", "/api/v1/deployments/d1/results/job/out/chunk?path=a.txt&offset=0&length=1048577", 400, api.CodeBadRequest, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(Config{Addr: "127.0.0.1:0", Token: token, Deployments: newFakeTimeline("completed"), Results: fakeResults{}})
			if err != nil {
				t.Fatal(err)
			}
			w := do(s, "GET", tt.path, "", "127.0.0.1:5000", token)
			if w.Code != tt.status {
				t.Fatalf("GET %s = %d %s, want %d", tt.path, w.Code, w.Body, tt.status)
			}
			if tt.status != http.StatusOK {
				var body api.ErrorResponse
				if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code != tt.code {
					t.Fatalf("GET %s body = %s, want code %s", tt.path, w.Body, tt.code)
				}
				return
			}
			got := w.Body.String()
			if w.Header().Get("Content-Type") == "application/json" {
				var v any
				if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
					t.Fatal(err)
				}
				b, _ := json.Marshal(v)
				var want any
				if err := json.Unmarshal([]byte(tt.body), &want); err != nil {
					t.Fatal(err)
				}
				wb, _ := json.Marshal(want)
				got, tt.body = string(b), string(wb)
			}
			if got != tt.body {
				t.Fatalf("GET %s = %q, want %q", tt.path, got, tt.body)
			}
		})
	}
	t.Run("no results service", func(t *testing.T) {
		s, err := New(Config{Addr: "127.0.0.1:0", Token: token, Deployments: newFakeTimeline("completed")})
		if err != nil {
			t.Fatal(err)
		}
		if w := do(s, "GET", "/api/v1/deployments/d1/results", "", "127.0.0.1:5000", token); w.Code != http.StatusServiceUnavailable {
			t.Fatalf("without a results service: %d %s", w.Code, w.Body)
		}
	})
}
