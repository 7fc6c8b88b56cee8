package orchestrator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/orchestrator"
)

const (
	secretText  = "access_key_id=AKIAQUITESECRET\nsecret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzz\n"
	secretValue = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzz"
)

// secretSpec is a docker task pinned to peer whose out volume's keys are the
// secret results-keys.
func secretSpec(peer string) string {
	return `version: v1
allocations:
  job:
    executor: docker
    resources: {cpu: 0.5, ram: 32MiB}
    execution: {image: alpine}
    volumes:
      out: {path: /out, kind: s3, mode: out, s3: {bucket: results, endpoint: "http://127.0.0.1:9", credentials: {secret: results-keys}}}
      in: {path: /in, kind: s3, mode: in, s3: {bucket: data}}
nodes:
  job: {allocations: [job], peer: ` + peer + `}
`
}

// recordCommits replaces tn's commit behavior with one that records each
// request and refuses it (the orchestrator then bids again).
func recordCommits(tn *tnode) <-chan deployproto.CommitRequest {
	ch := make(chan deployproto.CommitRequest, 16)
	tn.root.AddBehavior(deployproto.BehaviorCommit, func(_ context.Context, m *actor.Message) (any, error) {
		var req deployproto.CommitRequest
		if err := m.Decode(&req); err != nil {
			return nil, err
		}
		select {
		case ch <- req:
		default:
		}
		return nil, errors.New("recorded, refused")
	})
	return ch
}

func nextCommit(t *testing.T, ch <-chan deployproto.CommitRequest) deployproto.CommitRequest {
	t.Helper()
	select {
	case req := <-ch:
		return req
	case <-time.After(30 * time.Second):
		t.Fatal("no commit request within 30s")
		return deployproto.CommitRequest{}
	}
}

// TestSecretSealedToProvider: the commit carries the secret sealed to the
// provider (its key opens it to the text given, nobody else's does, nor
// for another deployment), the placement attempt, and the record holds
// the secret only sealed.
func TestSecretSealedToProvider(t *testing.T) {
	w := newWorld(t, 2, worldOpts{})
	orch, prov := w.nodes[0], w.nodes[1]
	commits := recordCommits(prov)
	sub := w.submission(orch, secretSpec(prov.host.Self()))
	sub.Secrets = map[string]string{"results-keys": secretText}
	d, err := orch.svc.Submit(context.Background(), sub)
	if err != nil {
		t.Fatal(err)
	}
	req := nextCommit(t, commits)
	if req.Deployment != d.ID || len(req.Allocations) != 1 {
		t.Fatalf("commit = %s with %d allocations, want %s with 1", req.Deployment, len(req.Allocations), d.ID)
	}
	if got := req.Allocations[0].Attempt; got != 1 {
		t.Errorf("Attempt = %d, want 1", got)
	}
	if len(req.Secrets) != 1 || req.Secrets["results-keys"] == nil {
		t.Fatalf("commit secrets = %v, want results-keys only", keys(req.Secrets))
	}
	box := req.Secrets["results-keys"]
	if bytes.Contains(box, []byte(secretValue)) {
		t.Error("the box holds the secret in clear")
	}
	for _, tc := range []struct {
		name string
		key  *identity.Key
		ctx  []byte
		ok   bool
	}{
		{"provider", prov.key, deployproto.SecretContext(d.ID, "results-keys"), true},
		{"provider, other deployment", prov.key, deployproto.SecretContext("dother", "results-keys"), false},
		{"provider, other name", prov.key, deployproto.SecretContext(d.ID, "data-keys"), false},
		{"orchestrating node", orch.key, deployproto.SecretContext(d.ID, "results-keys"), false},
		{"user", w.user, deployproto.SecretContext(d.ID, "results-keys"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.key.OpenSealed(box, tc.ctx)
			if tc.ok && (err != nil || string(got) != secretText) {
				t.Errorf("OpenSealed = %q, %v; want the secret text", got, err)
			}
			if !tc.ok && err == nil {
				t.Errorf("OpenSealed opened for the wrong key or context")
			}
		})
	}
	// The record: sealed, never in clear (the store, the snapshot, its JSON).
	cur, err := orch.svc.Get(d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(cur.SealedSecrets) == 0 {
		t.Error("the record holds no sealed secrets")
	}
	stored, _ := orch.store.Deployments()
	for _, rec := range append(stored, cur) {
		data, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte(secretValue)) || bytes.Contains(data, []byte("AKIAQUITESECRET")) {
			t.Errorf("deployment record %s holds the secret in clear", rec.ID)
		}
	}
	// Ending the deployment drops the sealed secrets.
	if _, err := orch.svc.Shutdown(context.Background(), d.ID); err != nil {
		t.Fatal(err)
	}
	end := waitState(t, orch.svc, d.ID, orchestrator.Stopped)
	if end.SealedSecrets != nil || end.StandbySecrets != nil {
		t.Error("an ended deployment keeps its secrets")
	}
	stored, _ = orch.store.Deployments()
	for _, rec := range stored {
		if rec.ID == d.ID && rec.SealedSecrets != nil {
			t.Error("the stored record of an ended deployment keeps its secrets")
		}
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestSubmitSecrets: a submission without a secret the ensemble names, with
// one it does not name, or with one that is not a credentials file is
// refused, naming the secret and never its value.
func TestSubmitSecrets(t *testing.T) {
	w := newWorld(t, 1, worldOpts{})
	tn := w.nodes[0]
	for _, tc := range []struct {
		name    string
		secrets map[string]string
		want    string
	}{
		{"missing", nil, "volume out of allocation job needs the secret results-keys: dms deploy --secret results-keys=FILE"},
		{"typo", map[string]string{"results-key": secretText}, `secret results-key is given but no s3 volume's credentials.secret names it (did you mean "results-keys"?)`},
		{"not credentials", map[string]string{"results-keys": "hunter2 is the password"}, "secret results-keys: credentials: line 1 is not KEY=VALUE"},
		{"no secret key", map[string]string{"results-keys": "access_key_id=AKIAQUITESECRET\n"}, "secret results-keys: credentials: secret_access_key is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := w.submission(tn, secretSpec(tn.host.Self()))
			sub.Secrets = tc.secrets
			_, err := tn.svc.Submit(context.Background(), sub)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Submit = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "AKIA") {
				t.Errorf("the error quotes the secret: %v", err)
			}
			if ds := tn.svc.List(); len(ds) != 0 {
				t.Errorf("a refused submission left %d deployments", len(ds))
			}
		})
	}
}

// TestStandbyGetsSecrets: the replica carries the secrets only sealed to
// the standby's key; after a takeover, the new orchestrator's commits give
// the provider the secret sealed to it.
func TestStandbyGetsSecrets(t *testing.T) {
	// Reservations of the primary's last round may outlive it: a short TTL
	// frees them for the standby's rounds.
	w := newWorld(t, 3, worldOpts{lost: time.Second, lease: time.Second, ttl: 2 * time.Second})
	w.nodes[0].ledger.Offboard()
	w.nodes[1].ledger.Offboard()
	primary, standby, prov := w.nodes[0], w.nodes[1], w.nodes[2]
	commits := recordCommits(prov)
	spec := secretSpec(prov.host.Self()) + "supervision:\n  orchestrators: 2\n  standbys: [" + peerOf(standby) + "]\n"
	sub := w.submission(primary, spec)
	sub.Secrets = map[string]string{"results-keys": secretText}
	d, err := primary.svc.Submit(context.Background(), sub)
	if err != nil {
		t.Fatal(err)
	}
	if req := nextCommit(t, commits); req.Orchestrator.Host != peerOf(primary) {
		t.Fatalf("first commit from %s, want the primary", req.Orchestrator.Host)
	}
	rep := waitGet(t, standby.svc, d.ID, "the standby holds the secrets sealed to it", func(d *orchestrator.Deployment) bool {
		return d.IsStandby() && d.StandbySecrets[peerOf(standby)] != nil
	})
	if rep.SealedSecrets != nil {
		t.Error("the replica carries the primary's sealed secrets")
	}
	stored, _ := standby.store.Deployments()
	for _, rec := range stored {
		data, _ := json.Marshal(rec)
		if bytes.Contains(data, []byte(secretValue)) {
			t.Error("the standby's stored replica holds the secret in clear")
		}
	}
	w.kill(primary)
	deadline := time.After(30 * time.Second)
	for {
		var req deployproto.CommitRequest
		select {
		case req = <-commits:
		case <-deadline:
			cur, _ := standby.svc.Get(d.ID)
			t.Fatalf("no commit from the standby after the takeover; state %s (%s) %+v\n%s", cur.State, cur.Message, cur.Candidates, eventLines(cur))
		}
		if req.Orchestrator.Host != peerOf(standby) {
			continue // the primary's, sent before it died
		}
		got, err := prov.key.OpenSealed(req.Secrets["results-keys"], deployproto.SecretContext(d.ID, "results-keys"))
		if err != nil || string(got) != secretText {
			t.Fatalf("the new orchestrator's commit: secret %q, %v; want the text given", got, err)
		}
		break
	}
	cur, _ := standby.svc.Get(d.ID)
	if cur.IsStandby() || cur.SealedSecrets == nil || cur.StandbySecrets != nil {
		t.Errorf("after the takeover: standby %v, sealed %d bytes, standby boxes %d", cur.IsStandby(), len(cur.SealedSecrets), len(cur.StandbySecrets))
	}
}
