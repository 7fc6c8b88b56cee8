package deployproto_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/deployproto"
)

func validReplicate() deployproto.ReplicateRequest {
	return deployproto.ReplicateRequest{
		ID:         "dabcdefghijkl",
		Deployment: json.RawMessage(`{"id":"dabcdefghijkl"}`),
		Epoch:      3,
		Primary:    actor.Handle{DID: "did:key:z6Mk", Host: "12D3KooWA", Inbox: "orch/dabcdefghijkl"},
		Lease:      10 * time.Second,
	}
}

func TestReplicateValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(r *deployproto.ReplicateRequest)
		want   string // "" when valid, else part of the message
	}{
		{"valid", func(r *deployproto.ReplicateRequest) {}, ""},
		{"probe without a record", func(r *deployproto.ReplicateRequest) { *r = deployproto.ReplicateRequest{ID: "d1", Probe: true} }, ""},
		{"probe with a bad ID", func(r *deployproto.ReplicateRequest) { *r = deployproto.ReplicateRequest{ID: "../x", Probe: true} }, `deployment ID "../x"`},
		{"no ID", func(r *deployproto.ReplicateRequest) { r.ID = "" }, `deployment ID ""`},
		{"long ID", func(r *deployproto.ReplicateRequest) { r.ID = strings.Repeat("a", 65) }, "1 to 64 characters"},
		{"no record", func(r *deployproto.ReplicateRequest) { r.Deployment = nil }, "no deployment record"},
		{"no primary", func(r *deployproto.ReplicateRequest) { r.Primary = actor.Handle{} }, "no primary orchestrator"},
		{"zero lease", func(r *deployproto.ReplicateRequest) { r.Lease = 0 }, "lease 0s"},
		{"negative lease", func(r *deployproto.ReplicateRequest) { r.Lease = -time.Second }, "lease -1s"},
		{"absurd lease", func(r *deployproto.ReplicateRequest) { r.Lease = 48 * time.Hour }, "at most 1h0m0s"},
		{"too many chains", func(r *deployproto.ReplicateRequest) { r.Chains = make([]string, 9) }, "9 chains"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validReplicate()
			tt.change(&r)
			err := r.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// FuzzReplicate decodes and validates replicate requests as a standby's
// node receives them: no panic, and a request that validates keeps its
// fields through a JSON round trip.
func FuzzReplicate(f *testing.F) {
	seed, _ := json.Marshal(validReplicate())
	f.Add(seed)
	f.Add([]byte(`{"id":"d1","probe":true}`))
	f.Add([]byte(`{"id":"","lease":-1}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"deployment":{"id":1},"chains":["x"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r deployproto.ReplicateRequest
		if err := json.Unmarshal(data, &r); err != nil {
			return
		}
		if r.Validate() != nil {
			return
		}
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("marshal a valid request: %v", err)
		}
		var back deployproto.ReplicateRequest
		if err := json.Unmarshal(again, &back); err != nil || back.Validate() != nil {
			t.Fatalf("round trip of %s: %v, %v", again, err, back.Validate())
		}
	})
}

// A reply from a node that does not report artifacts reads as none
// missing; a reply that does keeps its count.
func TestReplicateReplyMissing(t *testing.T) {
	tests := []struct {
		name string
		json string
		want int
	}{
		{"older node", `{"epoch":3,"primary":{"did":"did:key:z1","host":"12D3KooWA","inbox":"orch/d1"}}`, 0},
		{"all held", `{"epoch":3,"primary":{"did":"did:key:z1","host":"12D3KooWA","inbox":"orch/d1"},"missing":0}`, 0},
		{"two missing", `{"epoch":3,"primary":{"did":"did:key:z1","host":"12D3KooWA","inbox":"orch/d1"},"missing":2}`, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rep deployproto.ReplicateReply
			if err := json.Unmarshal([]byte(tt.json), &rep); err != nil {
				t.Fatal(err)
			}
			if rep.Epoch != 3 || rep.Missing != tt.want {
				t.Fatalf("decoded %+v, want epoch 3 and %d missing", rep, tt.want)
			}
			b, err := json.Marshal(rep)
			if err != nil {
				t.Fatal(err)
			}
			var back deployproto.ReplicateReply
			if err := json.Unmarshal(b, &back); err != nil || back != rep {
				t.Fatalf("round trip: %+v, %v; want %+v", back, err, rep)
			}
		})
	}
}
