package orchestrator

// Secrets: the user's credentials an ensemble names (an s3 volume's
// credentials.secret), given with the submission.
//
//   - At rest they are one JSON object (name → credentials text) sealed
//     with a Sealer of the node key (purpose secretsPurpose, the deployment
//     ID as associated data): Deployment.SealedSecrets. They are never in
//     clear in the store, the API view, events or logs.
//   - At each commit (the first placement and every redeploy), the secrets
//     the node's allocations name are opened and each is sealed to the
//     chosen provider's key (identity.SealTo, context
//     deployproto.SecretContext): only that provider opens them.
//   - Standbys get them too, each sealed to the standby's own key
//     (Deployment.StandbySecrets in the replica; a node's key opens only
//     its own box). A standby that takes over opens its box and seals the
//     secrets again with its own node key. One whose box is missing (a
//     replica made before the secrets reached it) fails a redeploy that
//     needs them with the reason ReasonSecretUnavailable, rather than
//     send a commit without them.
//   - When the deployment ends, the standbys' boxes are dropped, and so is
//     the node's own copy unless an s3 out volume names a secret: dms
//     deployment results reads those volumes with it (results.go). It stays
//     sealed while the record lasts.

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/storage"
)

// secretsPurpose is the purpose of the Sealer that keeps secrets at rest.
const secretsPurpose = "deployment-secrets"

// standbySecretContext is the sealing context of a deployment's secrets
// sent to a standby.
func standbySecretContext(id string) []byte { return []byte("dms-standby-secrets/" + id) }

// CheckSecrets checks the secrets of a submission against its ensemble:
// every secret it names is given, every secret given is named, and each
// is a credentials file (storage.ParseCredentials). Its errors name
// secrets, never their values.
func CheckSecrets(spec *ensemble.Spec, secrets map[string]string) error {
	if err := spec.CheckSecrets(sortedKeys(secrets)); err != nil {
		return err
	}
	for _, name := range sortedKeys(secrets) {
		if _, err := storage.ParseCredentials([]byte(secrets[name])); err != nil {
			return fmt.Errorf("secret %s: %w", name, err)
		}
	}
	return nil
}

// sealSecrets seals the secrets of deployment id with the node key.
func (s *Service) sealSecrets(id string, secrets map[string]string) ([]byte, error) {
	if len(secrets) == 0 {
		return nil, nil
	}
	plain, err := json.Marshal(secrets)
	if err != nil {
		return nil, err
	}
	return s.secrets.Seal(plain, []byte(id)), nil
}

// errNoSecrets is why a node cannot give a provider the secrets.
var errNoSecrets = errors.New("this node does not hold the deployment's secrets")

// openSecrets opens the secrets d keeps.
func (s *Service) openSecrets(d *Deployment) (map[string]string, error) {
	if d.SealedSecrets == nil {
		if d.State.Terminal() {
			return nil, errors.New("the deployment has ended: its secrets were dropped")
		}
		return nil, fmt.Errorf("%w (an orchestrator that took over holds them only if its primary had replicated them to it)", errNoSecrets)
	}
	plain, err := s.secrets.Open(d.SealedSecrets, []byte(d.ID))
	if err != nil {
		return nil, fmt.Errorf("%w: they do not open with this node's key", errNoSecrets)
	}
	var out map[string]string
	if err := json.Unmarshal(plain, &out); err != nil {
		return nil, fmt.Errorf("%w: the sealed record is damaged", errNoSecrets)
	}
	return out, nil
}

// secretNames lists the secrets that allocations name, sorted.
func secretNames(allocs []deployproto.AllocationSpec) []string {
	var names []string
	for _, a := range allocs {
		for _, v := range a.Volumes {
			if n := v.Secret(); n != "" {
				names = append(names, n)
			}
		}
	}
	sort.Strings(names)
	return slices.Compact(names)
}

// nodeSecretNames lists the secrets the allocations of node name.
func (r *run) nodeSecretNames(node string) []string {
	var specs []deployproto.AllocationSpec
	for _, name := range r.nodeAllocs(node) {
		specs = append(specs, deployproto.AllocationSpec{Volumes: r.spec.Allocations[name].Volumes})
	}
	return secretNames(specs)
}

// secretsReady reports why node cannot be committed with its secrets, or
// nil when it needs none or they open.
func (r *run) secretsReady(node string) error {
	names := r.nodeSecretNames(node)
	if len(names) == 0 {
		return nil
	}
	plain, err := r.s.openSecrets(r.snapshot())
	if err != nil {
		return fmt.Errorf("its volumes need the secret %s: %w", strings.Join(names, ", "), err)
	}
	for _, n := range names {
		if _, ok := plain[n]; !ok {
			return fmt.Errorf("its volumes need the secret %s, which the deployment was not given", n)
		}
	}
	return nil
}

// allSecretsReady is secretsReady for every node.
func (r *run) allSecretsReady() error {
	if len(r.spec.SecretUses()) == 0 {
		return nil // the common case, once per bid round
	}
	for _, node := range r.layout().nodes {
		if err := r.secretsReady(node); err != nil {
			return fmt.Errorf("node %s: %w", node, err)
		}
	}
	return nil
}

// secretsFor seals to provider (a peer ID) the secrets allocs name.
func (r *run) secretsFor(provider string, allocs []deployproto.AllocationSpec) (map[string][]byte, error) {
	names := secretNames(allocs)
	if len(names) == 0 {
		return nil, nil
	}
	d := r.snapshot()
	plain, err := r.s.openSecrets(d)
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w", strings.Join(names, ", "), err)
	}
	did, err := identity.DIDFromPeerID(provider)
	if err != nil {
		return nil, fmt.Errorf("seal secrets to the provider: %w", err)
	}
	out := make(map[string][]byte, len(names))
	for _, n := range names {
		text, ok := plain[n]
		if !ok {
			return nil, fmt.Errorf("secret %s: the deployment was not given it", n)
		}
		box, err := identity.SealTo(did, []byte(text), deployproto.SecretContext(d.ID, n))
		if err != nil {
			return nil, fmt.Errorf("seal secret %s to the provider: %w", n, err)
		}
		out[n] = box
	}
	return out, nil
}

// standbyBoxes are a primary's secrets sealed to each of its standbys,
// made once per run and peer.
type standbyBoxes struct {
	mu    sync.Mutex
	boxes map[string][]byte // guarded by mu; peer ID → box
}

// standbySecrets returns the secrets of d sealed to each standby's key,
// for the replica; nil when there are none (or they do not open here).
func (r *run) standbySecrets(d *Deployment) map[string][]byte {
	if d.SealedSecrets == nil || len(d.Standbys) == 0 {
		return nil
	}
	r.boxes.mu.Lock()
	defer r.boxes.mu.Unlock()
	var plain []byte
	out := make(map[string][]byte, len(d.Standbys))
	for _, peer := range d.Standbys {
		if box, ok := r.boxes.boxes[peer]; ok {
			out[peer] = box
			continue
		}
		if plain == nil {
			p, err := r.s.secrets.Open(d.SealedSecrets, []byte(d.ID))
			if err != nil {
				r.s.log.Warn("replicate: the deployment's secrets do not open", "deployment_id", d.ID)
				return nil
			}
			plain = p
		}
		did, err := identity.DIDFromPeerID(peer)
		if err != nil {
			continue
		}
		box, err := identity.SealTo(did, plain, standbySecretContext(d.ID))
		if err != nil {
			continue
		}
		if r.boxes.boxes == nil {
			r.boxes.boxes = map[string][]byte{}
		}
		r.boxes.boxes[peer] = box
		out[peer] = box
	}
	return out
}

// adoptSecrets gives d, a replica this node (peer ID self) takes over,
// the secrets its primary sealed to this node, sealed again with this
// node's key. It reports whether the deployment needs secrets this node
// did not get.
func (s *Service) adoptSecrets(d *Deployment, self string) (missing bool) {
	box := d.StandbySecrets[self]
	d.StandbySecrets, d.SealedSecrets = nil, nil
	if box == nil {
		spec, err := ensemble.Parse(d.Spec)
		return err == nil && len(spec.SecretUses()) > 0
	}
	plain, err := s.cfg.Key.OpenSealed(box, standbySecretContext(d.ID))
	if err != nil {
		s.log.Warn("take over: the deployment's secrets do not open", "deployment_id", d.ID)
		return true
	}
	d.SealedSecrets = s.secrets.Seal(plain, []byte(d.ID))
	return false
}
