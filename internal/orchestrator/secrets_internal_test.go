package orchestrator

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/identity"
)

const secretsSpec = `version: v1
allocations:
  job:
    executor: docker
    execution: {image: alpine}
    volumes:
      out: {path: /out, kind: s3, mode: out, s3: {bucket: results, credentials: {secret: results-keys}}}
  other:
    executor: docker
    execution: {image: alpine}
`

func secretsService(t *testing.T) (*Service, *identity.Key, string) {
	t.Helper()
	key, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := identity.NewSealer(key, secretsPurpose)
	if err != nil {
		t.Fatal(err)
	}
	self, err := key.DID().PeerID()
	if err != nil {
		t.Fatal(err)
	}
	return &Service{cfg: Config{Key: key}, secrets: sealer, log: slog.New(slog.DiscardHandler)}, key, self
}

// TestAdoptSecrets: a standby that takes over opens the box its primary
// sealed to it and keeps the secrets sealed with its own key; without its
// box (or with a damaged one) it says that the deployment needs secrets it
// does not hold.
func TestAdoptSecrets(t *testing.T) {
	s, key, self := secretsService(t)
	plain, _ := json.Marshal(map[string]string{"results-keys": "access_key_id=A\nsecret_access_key=B\n"})
	other, _ := identity.NewKey()
	otherPeer, _ := other.DID().PeerID()
	mine, err := identity.SealTo(key.DID(), plain, standbySecretContext("d1"))
	if err != nil {
		t.Fatal(err)
	}
	theirs, _ := identity.SealTo(other.DID(), plain, standbySecretContext("d1"))
	wrongDep, _ := identity.SealTo(key.DID(), plain, standbySecretContext("d2"))
	noSecrets := "version: v1\nallocations:\n  job: {executor: docker, execution: {image: alpine}}\n"
	for _, tc := range []struct {
		name    string
		spec    string
		boxes   map[string][]byte
		missing bool
	}{
		{"its box", secretsSpec, map[string][]byte{self: mine, otherPeer: theirs}, false},
		{"no box", secretsSpec, nil, true},
		{"another's box only", secretsSpec, map[string][]byte{otherPeer: theirs}, true},
		{"another's box under its name", secretsSpec, map[string][]byte{self: theirs}, true},
		{"a box of another deployment", secretsSpec, map[string][]byte{self: wrongDep}, true},
		{"no secrets needed", noSecrets, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Deployment{ID: "d1", Spec: []byte(tc.spec), StandbySecrets: tc.boxes}
			if got := s.adoptSecrets(d, self); got != tc.missing {
				t.Errorf("adoptSecrets missing = %v, want %v", got, tc.missing)
			}
			if d.StandbySecrets != nil {
				t.Error("the standby boxes are kept after a takeover")
			}
			if tc.missing || tc.boxes == nil {
				if d.SealedSecrets != nil {
					t.Error("sealed secrets without a box")
				}
				return
			}
			got, err := s.openSecrets(d)
			if err != nil || got["results-keys"] == "" {
				t.Fatalf("openSecrets = %v, %v", got, err)
			}
		})
	}
}

// TestSecretsReady: a node whose volumes need a secret the record does not
// hold cannot be committed, with a reason naming the secret; one that
// needs none can.
func TestSecretsReady(t *testing.T) {
	s, _, _ := secretsService(t)
	spec, err := ensemble.Parse([]byte(secretsSpec))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := s.sealSecrets("d1", map[string]string{"results-keys": "access_key_id=A\nsecret_access_key=B\n"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, node string
		sealed     []byte
		state      State
		want       string
	}{
		{"held", "job", sealed, Running, ""},
		{"not needed", "other", nil, Running, ""},
		{"not held", "job", nil, Running, "its volumes need the secret results-keys: this node does not hold the deployment's secrets"},
		{"other node's key", "job", append([]byte{}, sealed[:len(sealed)-1]...), Running, "do not open with this node's key"},
		{"ended", "job", nil, Completed, "the deployment has ended: its secrets were dropped"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &run{s: s, spec: spec, d: &Deployment{ID: "d1", State: tc.state, SealedSecrets: tc.sealed}}
			err := r.secretsReady(tc.node)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("secretsReady(%s) = %v, want nil", tc.node, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("secretsReady(%s) = %v, want %q", tc.node, err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "secret_access_key=B") {
				t.Errorf("the error holds the secret: %v", err)
			}
		})
	}
}
