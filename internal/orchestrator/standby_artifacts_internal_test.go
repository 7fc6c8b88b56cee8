package orchestrator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/identity"
)

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// serve returns a get function that serves data in chunks of size n, as
// an orchestrator's onArtifact does.
func serve(data []byte, n int) func(context.Context, int64) (deployproto.ArtifactChunk, error) {
	return func(_ context.Context, off int64) (deployproto.ArtifactChunk, error) {
		end := min(int64(len(data)), off+int64(n))
		return deployproto.ArtifactChunk{Data: data[off:end], Size: int64(len(data))}, nil
	}
}

func TestFetchArtifact(t *testing.T) {
	small := []byte("a wasm module")
	big := bytes.Repeat([]byte("0123456789abcdef"), deployproto.ArtifactChunkSize/16+100)
	tests := []struct {
		name   string
		digest string
		max    int64
		get    func(context.Context, int64) (deployproto.ArtifactChunk, error)
		want   []byte
		err    string
	}{
		{"one chunk", digestOf(small), 1 << 20, serve(small, deployproto.ArtifactChunkSize), small, ""},
		{"several chunks", digestOf(big), 1 << 30, serve(big, deployproto.ArtifactChunkSize), big, ""},
		{"empty artifact", digestOf(nil), 1 << 20, serve(nil, deployproto.ArtifactChunkSize), []byte{}, ""},
		{"other content", digestOf([]byte("expected")), 1 << 20, serve(small, deployproto.ArtifactChunkSize), nil, "served content " + digestOf(small)},
		{"too large", digestOf(small), 4, serve(small, deployproto.ArtifactChunkSize), nil, "outside 0-4"},
		{"negative size", digestOf(small), 1 << 20, func(context.Context, int64) (deployproto.ArtifactChunk, error) {
			return deployproto.ArtifactChunk{Size: -1}, nil
		}, nil, "outside"},
		{"oversized chunk", digestOf(big), 1 << 30, serve(big, deployproto.ArtifactChunkSize+1), nil, "exceeds"},
		{"overrun", digestOf(small), 1 << 20, func(context.Context, int64) (deployproto.ArtifactChunk, error) {
			return deployproto.ArtifactChunk{Data: small, Size: 3}, nil
		}, nil, "overruns"},
		{"empty chunk", digestOf(small), 1 << 20, func(context.Context, int64) (deployproto.ArtifactChunk, error) {
			return deployproto.ArtifactChunk{Size: int64(len(small))}, nil
		}, nil, "empty chunk"},
		{"size changes", digestOf(small), 1 << 20, func(_ context.Context, off int64) (deployproto.ArtifactChunk, error) {
			return deployproto.ArtifactChunk{Data: small[off : off+1], Size: int64(len(small)) + off}, nil
		}, nil, "size changed"},
		{"refused", digestOf(small), 1 << 20, func(context.Context, int64) (deployproto.ArtifactChunk, error) {
			return deployproto.ArtifactChunk{}, errors.New("no such artifact")
		}, nil, "no such artifact"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := fetchArtifact(context.Background(), tt.digest, tt.max, tt.get)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("fetchArtifact = %d bytes, %v; want an error with %q", len(got), err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("fetched %d bytes, want %d", len(got), len(tt.want))
			}
		})
	}
}

// FuzzFetchArtifact serves arbitrary chunks: no panic, and what is
// accepted is exactly the content of the digest.
func FuzzFetchArtifact(f *testing.F) {
	f.Add([]byte("a module"), int64(8), int64(0), 3)
	f.Add([]byte("a module"), int64(100), int64(-5), 1)
	f.Add([]byte{}, int64(0), int64(0), 1)
	want := []byte("a module")
	digest := digestOf(want)
	f.Fuzz(func(t *testing.T, data []byte, size, shift int64, n int) {
		calls := 0
		get := func(_ context.Context, off int64) (deployproto.ArtifactChunk, error) {
			calls++
			if calls > 64 {
				return deployproto.ArtifactChunk{}, errors.New("enough")
			}
			lo := min(max(off+shift, 0), int64(len(data)))
			hi := min(lo+int64(max(n, 0)), int64(len(data)))
			return deployproto.ArtifactChunk{Data: data[lo:hi], Size: size}, nil
		}
		got, err := fetchArtifact(context.Background(), digest, 1<<20, get)
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("accepted %q for the digest of %q", got, want)
		}
	})
}

// The standby node fetches artifacts with the chains its primary gave it
// (the owner's delegation to the primary node, redelegated to the standby
// node, as chainsFor makes them and decodeReplica keeps them). Under UCAN
// its invocation of BehaviorArtifact on the primary's orchestrator actor
// verifies on the primary, which trusts the owner for CmdDeployment (as
// it must for its allocations' reports), and nothing more.
func TestStandbyArtifactInvocationVerifies(t *testing.T) {
	now := time.Now()
	user, primaryNode, standbyNode, orch := mustNewKey(t), mustNewKey(t), mustNewKey(t), mustNewKey(t)
	primaryPeer, _ := primaryNode.DID().PeerID()
	standbyPeer, _ := standbyNode.DID().PeerID()
	// The owner's delegations to the primary node, as dms deploy signs them.
	var nodeChains []string
	for _, cmd := range []string{deployproto.CmdDeployment, deployproto.CmdAllocation} {
		d, err := cap.Delegate(user, cap.DelegationParams{Audience: primaryNode.DID(), Command: cmd, Expiry: now.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		text, err := cap.Chain{d}.Encode()
		if err != nil {
			t.Fatal(err)
		}
		nodeChains = append(nodeChains, text)
	}
	// The primary redelegates them to the standby node in its replicate.
	primary := &run{s: &Service{cfg: Config{Key: primaryNode, Now: time.Now}}, ha: newHAState(now, []string{standbyPeer})}
	spec := "version: v1\nallocations:\n  job: {executor: docker, execution: {image: x}}\n"
	d := &Deployment{ID: "d1", Owner: user.DID(), Spec: []byte(spec), State: Running, Epoch: 1, NodeChains: nodeChains,
		Artifacts: []string{digestOf([]byte("module"))}}
	chains, err := primary.chainsFor(standbyPeer, d)
	if err != nil {
		t.Fatal(err)
	}
	record, _ := json.Marshal(d)
	orchHandle := actor.Handle{DID: orch.DID(), Host: primaryPeer, Inbox: "orch/d1"}
	standby := &Service{cfg: Config{Key: standbyNode}}
	replica, err := standby.decodeReplica(deployproto.ReplicateRequest{ID: "d1", Deployment: record, Epoch: 1, Primary: orchHandle, Lease: time.Second, Chains: chains})
	if err != nil {
		t.Fatal(err)
	}
	// The standby node's wallet: the replica's chains it holds (startStandby).
	var held cap.Chain
	for _, text := range replica.NodeChains {
		c, err := cap.DecodeChain([]byte(text))
		if err != nil {
			t.Fatal(err)
		}
		if c.Holder() == standbyNode.DID() && cap.Covers(c.Leaf().Command(), deployproto.BehaviorArtifact) {
			held = c
		}
	}
	if held == nil {
		t.Fatalf("the standby holds no chain covering %s", deployproto.BehaviorArtifact)
	}
	// Its node actor invokes the primary's orchestrator actor, as the
	// node's issuer signs it.
	payload, _ := json.Marshal(deployproto.ArtifactRequest{Deployment: "d1", Digest: replica.Artifacts[0]})
	inv, err := cap.Invoke(standbyNode, cap.InvocationParams{Audience: orch.DID(), Command: deployproto.BehaviorArtifact, Proofs: held,
		Expiry: now.Add(time.Minute), Args: cap.Bind(primaryPeer, payload).Args()})
	if err != nil {
		t.Fatal(err)
	}
	trust, err := cap.NewTrust(cap.Anchor{Root: user.DID(), Cmd: deployproto.CmdDeployment})
	if err != nil {
		t.Fatal(err)
	}
	v := cap.NewVerifier(cap.Config{Trust: trust, IsLocal: func(d identity.DID) bool { return d == orch.DID() || d == primaryNode.DID() }})
	proofs := make([][]byte, len(held))
	for i, d := range held {
		proofs[i] = d.Sealed()
	}
	res, err := v.Authorize(now, inv.Sealed(), proofs)
	if err != nil {
		t.Fatalf("the primary refuses the standby's artifact request: %v", err)
	}
	if res.Subject != user.DID() || res.Issuer != standbyNode.DID() || res.Audience != orch.DID() {
		t.Fatalf("authorized subject %s, issuer %s, audience %s; want the owner, the standby node, the orchestrator", res.Subject, res.Issuer, res.Audience)
	}
	if err := res.Binding.Check(primaryPeer, payload, true); err != nil {
		t.Fatal(err)
	}
	// A primary that does not trust the owner refuses it.
	other, _ := cap.NewTrust(cap.Anchor{Root: standbyNode.DID(), Cmd: deployproto.CmdDeployment})
	v = cap.NewVerifier(cap.Config{Trust: other, IsLocal: func(d identity.DID) bool { return d == orch.DID() }})
	if _, err := v.Authorize(now, inv.Sealed(), proofs); err == nil {
		t.Fatal("a primary that trusts another root accepts the standby's artifact request")
	}
}

func mustNewKey(t *testing.T) *identity.Key {
	t.Helper()
	k, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
