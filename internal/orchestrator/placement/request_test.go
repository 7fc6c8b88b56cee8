package placement

import (
	"slices"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/ensemble"
)

// TestRequestsNameOperatorCredentials: a node asks for the operator
// credentials its volumes name, once each, sorted; user secrets are not
// asked of providers.
func TestRequestsNameOperatorCredentials(t *testing.T) {
	spec, err := ensemble.Parse([]byte(`version: v1
allocations:
  a:
    executor: wasm
    execution: {module: "sha256:` + zeros + `"}
    volumes:
      in: {path: /in, kind: s3, mode: in, s3: {bucket: data, credentials: {provider: lab}}}
      out: {path: /out, kind: s3, mode: out, s3: {bucket: res, credentials: {provider: archive}}}
  b:
    executor: wasm
    execution: {module: "sha256:` + zeros + `"}
    volumes:
      in: {path: /in, kind: s3, mode: in, s3: {bucket: data, credentials: {provider: lab}}}
      mine: {path: /mine, kind: s3, mode: in, s3: {bucket: mine, credentials: {secret: keys}}}
  c:
    executor: wasm
    execution: {module: "sha256:` + zeros + `"}
nodes:
  ab: {allocations: [a, b]}
  c: {allocations: [c]}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"ab": {"archive", "lab"}, "c": nil}
	for _, r := range Requests(spec, time.Now()) {
		if !slices.Equal(r.Credentials, want[r.Name]) {
			t.Errorf("node %s asks for credentials %v, want %v", r.Name, r.Credentials, want[r.Name])
		}
	}
}

const zeros = "0000000000000000000000000000000000000000000000000000000000000000"

// TestRequestsAskForSubnets: every node of an ensemble with a subnet asks
// for providers that run subnets; without one, none does.
func TestRequestsAskForSubnets(t *testing.T) {
	for _, tc := range []struct {
		name, extra string
		want        []string
	}{
		{"subnet", "network: {subnet: true}\n", []string{"docker", "subnet"}},
		{"none", "", []string{"docker"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := ensemble.Parse([]byte("version: v1\nallocations:\n  a: {executor: docker, execution: {image: x}}\n  b: {executor: docker, execution: {image: y}}\n" + tc.extra))
			if err != nil {
				t.Fatal(err)
			}
			reqs := Requests(spec, time.Now())
			if len(reqs) != 2 {
				t.Fatalf("%d requests, want 2", len(reqs))
			}
			for _, r := range reqs {
				if !slices.Equal(r.Request.Executors, tc.want) {
					t.Errorf("node %s asks for %v, want %v", r.Name, r.Request.Executors, tc.want)
				}
			}
		})
	}
}
