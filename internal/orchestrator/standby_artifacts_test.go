package orchestrator_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/orchestrator"
	"github.com/dmsnet/dms/internal/poll"
)

// wasmModule is an artifact of two chunks, and its digest.
func wasmModule() ([]byte, string) {
	data := bytes.Repeat([]byte("\x00asm module "), deployproto.ArtifactChunkSize/12+1000)
	sum := sha256.Sum256(data)
	return data, "sha256:" + hex.EncodeToString(sum[:])
}

// wasmService is an ensemble of one wasm service whose module is digest,
// with node 1 of w as its standby orchestrator.
func wasmService(w *world, digest string) string {
	return "version: v1\nallocations:\n  web:\n    type: service\n    executor: wasm\n    resources: {cpu: 0.5, ram: 32MiB}\n" +
		"    execution: {module: " + digest + ", args: [print=serving, sleep=1h]}\n" +
		"reschedule: {delay: 100ms}\n" +
		"supervision:\n  orchestrators: 2\n  standbys: [" + peerOf(w.nodes[1]) + "]\n"
}

// submitWithArtifact deploys yaml from node 0 with the artifact shipped.
func (w *world) submitWithArtifact(yaml, digest string, data []byte) *orchestrator.Deployment {
	w.t.Helper()
	sub := w.submission(w.nodes[0], yaml)
	sub.Artifacts = map[string][]byte{digest: data}
	d, err := w.nodes[0].svc.Submit(context.Background(), sub)
	if err != nil {
		w.t.Fatal(err)
	}
	return d
}

// waitArtifact waits until a node's store holds data under digest.
func waitArtifact(t *testing.T, tn *tnode, digest string, data []byte) {
	t.Helper()
	err := poll.Until(context.Background(), 30*time.Second, "the standby holds the artifact", func(context.Context) (bool, error) {
		tn.store.mu.Lock()
		defer tn.store.mu.Unlock()
		return bytes.Equal(tn.store.artifacts[digest], data), nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestStandbyFetchesArtifacts(t *testing.T) {
	w := standbyWorld(t, 3)
	data, digest := wasmModule()
	d := w.submitWithArtifact(wasmService(w, digest), digest, data)
	waitState(t, w.nodes[0].svc, d.ID, orchestrator.Running)
	waitArtifact(t, w.nodes[1], digest, data)
}

func TestTakeoverRedeploysWithArtifact(t *testing.T) {
	w := standbyWorld(t, 4)
	primary, standby := w.nodes[0], w.nodes[1]
	data, digest := wasmModule()
	d := w.submitWithArtifact(wasmService(w, digest), digest, data)
	d = waitState(t, primary.svc, d.ID, orchestrator.Running)
	first := d.Allocations["web"]
	waitGet(t, standby.svc, d.ID, "the standby holds the running deployment", func(d *orchestrator.Deployment) bool {
		return d.IsStandby() && d.State == orchestrator.Running
	})
	waitArtifact(t, standby, digest, data)
	w.kill(primary)
	after := waitGet(t, standby.svc, d.ID, "the standby took over", func(d *orchestrator.Deployment) bool {
		return !d.IsStandby() && hasEvent(d, orchestrator.EventTakeover, "took over from")
	})
	if hasEvent(after, orchestrator.EventTakeover, "does not hold") {
		t.Fatalf("the takeover records missing artifacts:\n%s", eventLines(after))
	}
	skipWithoutAdopt(t, standby.svc, d.ID)
	// The provider dies: the new orchestrator redeploys, and the new copy
	// fetches the module from it.
	w.kill(w.byHost(first.Handle.Host))
	d = waitGet(t, standby.svc, d.ID, "redeployed and running", func(d *orchestrator.Deployment) bool {
		a := d.Allocations["web"]
		return a.Attempt == 2 && a.State == deployproto.AllocRunning
	})
	if a := d.Allocations["web"]; a.Handle.Host == first.Handle.Host {
		t.Fatalf("redeployed on the dead provider %s", a.Handle.Host)
	}
}

// A primary that serves bytes other than the digest's: the standby
// refuses them, keeps nothing, and keeps saying the artifact is missing.
func TestStandbyRefusesWrongArtifact(t *testing.T) {
	w := newWorld(t, 2, worldOpts{})
	target, sender := w.nodes[0], w.nodes[1]
	to, err := actor.NodeHandle(peerOf(target))
	if err != nil {
		t.Fatal(err)
	}
	_, digest := wasmModule()
	var served atomic.Int32
	sender.root.AddBehavior(deployproto.BehaviorArtifact, func(ctx context.Context, m *actor.Message) (any, error) {
		served.Add(1)
		return deployproto.ArtifactChunk{Data: []byte("not the module"), Size: 14}, nil
	})
	record, _ := json.Marshal(map[string]any{"id": "dx", "owner": string(w.user.DID()), "state": "running", "epoch": 1,
		"spec": []byte(task("0.5", "print=x")), "artifacts": []string{digest}})
	req := deployproto.ReplicateRequest{ID: "dx", Deployment: record, Epoch: 1, Lease: time.Minute, Primary: sender.root.Handle()}
	var rep deployproto.ReplicateReply
	// A fetch starts at each replicate while none is under way: a second
	// one served means the first has ended.
	err = poll.Until(context.Background(), 30*time.Second, "two fetches", func(ctx context.Context) (bool, error) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := sender.root.Invoke(cctx, to, deployproto.BehaviorReplicate, req, &rep); err != nil {
			return false, err
		}
		if rep.Missing != 1 {
			return false, fmt.Errorf("reply %+v, want 1 artifact missing", rep)
		}
		return served.Load() >= 2, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	target.store.mu.Lock()
	_, kept := target.store.artifacts[digest]
	target.store.mu.Unlock()
	if kept {
		t.Fatal("the standby stored content that does not match the digest")
	}
}
