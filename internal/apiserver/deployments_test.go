package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/dmsnet/dms/api"
)

// submitRecorder is a DeploymentService that records the requests Submit
// receives and accepts them.
type submitRecorder struct {
	fakeDeployments
	got []api.DeployRequest
}

func (f *submitRecorder) Submit(_ context.Context, req api.DeployRequest) (*api.Deployment, error) {
	f.got = append(f.got, req)
	return &api.Deployment{ID: "dnew"}, nil
}

// TestDeploySecrets: POST /api/v1/deployments refuses bad secrets with 400
// and the reason, before the service sees them, and never writes a
// secret's value in the answer or the log.
func TestDeploySecrets(t *testing.T) {
	const ens = `version: v1
allocations:
  job:
    executor: docker
    execution: {image: alpine}
    volumes:
      out: {path: /out, kind: s3, mode: out, s3: {bucket: results, credentials: {secret: results-keys}}}
`
	const value = "wJalrXUtnFEMIK7MDENGbPxRfiCYzzz"
	good := "access_key_id=AKIAEXAMPLE\nsecret_access_key=" + value + "\n"
	for _, tc := range []struct {
		name    string
		secrets map[string]string
		status  int
		want    string
	}{
		{"good", map[string]string{"results-keys": good}, http.StatusOK, ""},
		{"json credentials", map[string]string{"results-keys": `{"access_key_id": "A", "secret_access_key": "` + value + `"}`}, http.StatusOK, ""},
		{"not credentials", map[string]string{"results-keys": value}, http.StatusBadRequest, "secret results-keys: credentials: line 1 is not KEY=VALUE"},
		{"unknown key", map[string]string{"results-keys": good + "password=" + value + "\n"}, http.StatusBadRequest, `secret results-keys: credentials: unknown key "password"`},
		{"typo", map[string]string{"results-keys": good, "result-keys": good}, http.StatusBadRequest, `secret result-keys is given but no s3 volume's credentials.secret names it (did you mean "results-keys"?)`},
		{"bad name", map[string]string{"Results Keys": good}, http.StatusBadRequest, `secrets: "Results Keys" is not a secret name`},
		{"none: left to the service", nil, http.StatusOK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			deps := &submitRecorder{}
			s, err := New(Config{Addr: "127.0.0.1:0", Token: token, Deployments: deps, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			if err != nil {
				t.Fatal(err)
			}
			body, _ := json.Marshal(api.DeployRequest{Ensemble: ens, Chains: []string{"x"}, Secrets: tc.secrets})
			w := do(s, "POST", "/api/v1/deployments", string(body), "127.0.0.1:5555", token)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.want != "" {
				var e api.ErrorResponse
				if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || !strings.Contains(e.Error.Message, tc.want) {
					t.Errorf("body = %s, want a message containing %q", w.Body, tc.want)
				}
			}
			if tc.status != http.StatusOK && len(deps.got) != 0 {
				t.Errorf("the service got a refused request")
			}
			if tc.status == http.StatusOK && (len(deps.got) != 1 || len(deps.got[0].Secrets) != len(tc.secrets)) {
				t.Errorf("the service got %d requests, want 1 with %d secrets", len(deps.got), len(tc.secrets))
			}
			if strings.Contains(w.Body.String(), value) || strings.Contains(logs.String(), value) {
				t.Errorf("the answer or the log holds the secret:\n%s\n%s", w.Body, logs.String())
			}
		})
	}
}

// FuzzCheckSecrets: any ensemble text and secrets of a deploy request are
// checked without a panic, and a refusal never quotes a secret's value
// after its first '=' (the value of a KEY=VALUE line).
func FuzzCheckSecrets(f *testing.F) {
	ens := "version: v1\nallocations:\n  job:\n    executor: docker\n    execution: {image: alpine}\n    volumes:\n      out: {path: /out, kind: s3, mode: out, s3: {bucket: results, credentials: {secret: results-keys}}}\n"
	f.Add(ens, "results-keys", "access_key_id=A\nsecret_access_key=zzzzzzzzzzzz\n")
	f.Add(ens, "results-key", `{"access_key_id": "A", "secret_access_key": "zzzzzzzzzzzz"}`)
	f.Add("version: v1\n", "Bad Name", "x=zzzzzzzzzzzz")
	f.Add("", "k", "")
	f.Fuzz(func(t *testing.T, ensemble, name, value string) {
		err := checkSecrets(api.DeployRequest{Ensemble: ensemble, Secrets: map[string]string{name: value}})
		if err == nil {
			return
		}
		for _, line := range strings.Split(value, "\n") {
			_, v, ok := strings.Cut(line, "=")
			v = strings.Trim(strings.TrimSpace(v), `"'`)
			if ok && len(v) >= 12 && !strings.Contains(name, v) && !strings.Contains(ensemble, v) && strings.Contains(err.Error(), v) {
				t.Fatalf("the refusal quotes a value: %v", err)
			}
		}
	})
}
