package allocation

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/poll"
	"github.com/dmsnet/dms/internal/storage"
	"github.com/dmsnet/dms/internal/storage/local"
	"github.com/dmsnet/dms/internal/storage/s3"
	"github.com/dmsnet/dms/internal/storage/s3/s3test"
	"github.com/dmsnet/dms/internal/storage/transfer"
	"github.com/dmsnet/dms/internal/storage/web"
)

// Tests of the volumes run outside a synctest bubble: they talk to a real
// S3 server (versitygw) and mount real loop devices.

// s3Store is the node's adapter of storage/s3 (internal/node does the
// same).
type s3Store struct{ t *s3.Transfer }

func (s s3Store) Download(ctx context.Context, loc S3Location, cred storage.Credentials, dir string, p storage.ProgressFunc) (TransferStats, error) {
	st, err := s.t.Download(ctx, s3.Location(loc), cred, dir, p)
	return TransferStats{Objects: st.Objects, Bytes: st.Bytes}, err
}

func (s s3Store) Upload(ctx context.Context, loc S3Location, cred storage.Credentials, dir, journal string, p storage.ProgressFunc) (TransferStats, error) {
	st, err := s.t.Upload(ctx, s3.Location(loc), cred, dir, journal, p)
	return TransferStats{Objects: st.Objects, Bytes: st.Bytes, ResentBytes: st.ResentBytes, Resumed: st.Resumed}, err
}

// localMounter is storage/local.
type localMounter struct{}

func (localMounter) Mount(dir string, size int64) error { return local.Mount(dir, size) }
func (localMounter) Unmount(dir string) error           { return local.Unmount(dir) }
func (localMounter) Remove(dir string) error            { return local.Remove(dir) }

// transferReader is storage/transfer (internal/node does the same).
type transferReader struct{}

func (transferReader) Manifest(dir string) (deployproto.ResultFiles, error) {
	m, err := transfer.BuildManifest(dir)
	out := deployproto.ResultFiles{Bytes: m.Bytes}
	for _, f := range m.Files {
		out.Files = append(out.Files, deployproto.ResultFile(f))
	}
	return out, err
}

func (transferReader) Chunk(dir, path string, off int64, n int) ([]byte, error) {
	return transfer.ReadChunk(dir, path, off, n)
}

// webFetcher is storage/web.
type webFetcher struct{}

func (webFetcher) Fetch(ctx context.Context, rawURL, sha256hex, dir, file string, maxSize int64, p storage.ProgressFunc) error {
	return web.Fetch(ctx, http.DefaultClient, rawURL, sha256hex, dir, file, maxSize, p)
}

// storageManager makes a Manager of h with the real storage parts.
func (h *harness) storageManager(cred map[string]storage.Credentials, store ObjectStore) *Manager {
	return h.storageManagerAt(cred, store, time.Now)
}

// storageManagerAt is storageManager with a clock.
func (h *harness) storageManagerAt(cred map[string]storage.Credentials, store ObjectStore, now func() time.Time) *Manager {
	h.t.Helper()
	if store == nil {
		st := s3.New(s3.Options{Retries: 1, MinBackoff: 10 * time.Millisecond})
		store = s3Store{st}
	}
	m, err := New(Config{
		System: h.provSys, Executors: map[ensemble.Executor]executor.Executor{ensemble.Docker: h.ex},
		Store: h.store, Ledger: h.ledger, Wallet: h.wallet, Sealer: h.sealer, DataDir: h.dataDir,
		Heartbeat: time.Second, Logger: testLogger(),
		Mounter: localMounter{}, ObjectStore: store, Results: transferReader{}, Fetcher: webFetcher{},
		NodeKey: h.provKey, Credentials: cred, Now: now,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.managers = append(h.managers, m)
	return m
}

func s3Volume(path string, mode ensemble.VolumeMode, srv *s3test.Server, bucket, prefix string, cred *ensemble.Credentials) ensemble.Volume {
	return ensemble.Volume{Path: path, Kind: ensemble.S3, Mode: mode,
		S3: &ensemble.S3Volume{Bucket: bucket, Prefix: prefix, Endpoint: srv.Endpoint, Region: srv.Region, Credentials: cred}}
}

// awaitEnd waits for the final report of id.
func (h *harness) awaitEnd(id string) deployproto.Report {
	h.t.Helper()
	r, ok := h.orch.await(2*time.Minute, func(r deployproto.Report) bool { return r.ID == id && r.State.Terminal() })
	if !ok {
		h.t.Fatalf("no final report of %s; reports: %s", id, h.orch.summary(id))
	}
	return r
}

func TestVolumesInOutRoundTrip(t *testing.T) {
	srv := s3test.Start(t)
	srv.MakeBucket("inputs")
	srv.MakeBucket("outputs")
	srv.Put("inputs", "data/a.txt", []byte("alpha"))
	srv.Put("inputs", "data/sub/b.txt", []byte("beta"))
	srv.Put("inputs", "other/c.txt", []byte("not staged"))
	srv.Put("inputs", "work/seed.txt", []byte("seed;"))

	for _, tc := range []struct {
		name string
		cred *ensemble.Credentials
	}{
		{"operator credentials", &ensemble.Credentials{Provider: "ops"}},
		{"user secret", &ensemble.Credentials{Secret: "keys"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			m := h.storageManager(map[string]storage.Credentials{"ops": srv.Credentials}, nil)
			spec := task("cat=/in/a.txt", "cat=/in/sub/b.txt", "cat=/work/seed.txt", "write=/out/r.txt:result of "+tc.name, "write=/work/grown.txt:"+tc.name)
			spec.Volumes = map[string]ensemble.Volume{
				"inputs":  s3Volume("/in", ensemble.ModeIn, srv, "inputs", "data/", tc.cred),
				"outputs": s3Volume("/out", ensemble.ModeOut, srv, "outputs", "", tc.cred),
				"work":    s3Volume("/work", ensemble.ModeInOut, srv, "inputs", "work/", tc.cred),
			}
			spec.Attempt = 2
			sealed, err := identity.SealTo(h.provKey.DID(), srv.Credentials.MarshalSecret(), deployproto.SecretContext("dep1", "keys"))
			if err != nil {
				t.Fatal(err)
			}
			h.ledger.hold("r1")
			hd, err := m.Create(context.Background(), CreateRequest{ID: "r1.job", Reservation: "r1", Deployment: "dep1",
				Orchestrator: h.orch.act.Handle(), Spec: spec, Secrets: map[string][]byte{"keys": sealed}})
			if err != nil {
				t.Fatal(err)
			}
			recs, _ := h.store.List()
			b, _ := json.Marshal(recs)
			if strings.Contains(string(b), srv.Credentials.SecretAccessKey) || strings.Contains(string(b), srv.Credentials.AccessKeyID) {
				t.Fatal("the record holds the keys in clear")
			}
			h.mustStart(hd)
			r := h.awaitEnd("r1.job")
			if r.State != deployproto.AllocCompleted {
				t.Fatalf("state = %s (%s), want completed", r.State, r.Message)
			}
			got, err := srv.Get("outputs", "dep1/job/2/r.txt")
			if err != nil || string(got) != "result of "+tc.name {
				t.Fatalf("uploaded r.txt = %q, %v; want %q", got, err, "result of "+tc.name)
			}
			out, _ := h.readLogs(hd)
			if got, err := srv.Get("inputs", "work/grown.txt"); err != nil || string(got) != tc.name {
				t.Errorf("inout volume: grown.txt = %q, %v; want it uploaded back under work/", got, err)
			}
			if !strings.Contains(out, "alphabetaseed;") {
				t.Errorf("logs = %q, want the staged inputs' content", out)
			}
			if strings.Contains(out, srv.Credentials.SecretAccessKey) {
				t.Error("the logs hold the secret key")
			}
			specs := h.startedSpecs()
			if len(specs) != 1 {
				t.Fatalf("%d starts", len(specs))
			}
			for _, mt := range specs[0].Mounts {
				if want := mt.Target == "/in"; mt.ReadOnly != want {
					t.Errorf("mount %s: ReadOnly = %v, want %v", mt.Target, mt.ReadOnly, want)
				}
			}
			if _, err := os.Stat(filepath.Join(h.dataDir, "r1.job", "volumes", "inputs", "c.txt")); err == nil {
				t.Error("an object outside the prefix was staged")
			}
			// Ended: the secrets are dropped from the record.
			recs, _ = h.store.List()
			if len(recs) != 1 || recs[0].Secrets != nil || recs[0].Final != nil {
				t.Errorf("record after the end: secrets %v, final %v; want none", recs[0].Secrets, recs[0].Final)
			}
			if st := recs[0].Outputs["outputs"]; st.State != deployproto.ResultUploaded || st.Prefix != "dep1/job/2/" || st.Objects != 1 {
				t.Errorf("output state = %+v, want uploaded 1 object to dep1/job/2/", st)
			}
		})
	}
}

func TestVolumeBadInputFailsTheAllocation(t *testing.T) {
	srv := s3test.Start(t)
	srv.MakeBucket("inputs")
	srv.Put("inputs", "big.bin", []byte(strings.Repeat("0123456789abcdef", 4096)))
	srv.Corrupt("inputs", "big.bin", 100)
	srv.MakeBucket("fine")
	srv.Put("fine", "a.txt", []byte("a"))

	// An endpoint that refuses: a port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + l.Addr().String()
	l.Close()

	ops := &ensemble.Credentials{Provider: "ops"}
	for _, tc := range []struct {
		name   string
		volume ensemble.Volume
		want   string
	}{
		{"no bucket", s3Volume("/in", ensemble.ModeIn, srv, "nope", "", ops), `volume inputs: stage: `},
		{"wrong credentials", s3Volume("/in", ensemble.ModeIn, srv, "fine", "", &ensemble.Credentials{Provider: "wrong"}), "volume inputs: stage: "},
		{"unknown operator credentials", s3Volume("/in", ensemble.ModeIn, srv, "fine", "", &ensemble.Credentials{Provider: "other"}), `volume inputs: credentials: credentials.provider "other"`},
		{"missing secret", s3Volume("/in", ensemble.ModeIn, srv, "fine", "", &ensemble.Credentials{Secret: "absent"}), `volume inputs: credentials: credentials.secret "absent": the secret was not given`},
		{"secret sealed to another node", s3Volume("/in", ensemble.ModeIn, srv, "fine", "", &ensemble.Credentials{Secret: "foreign"}), `volume inputs: credentials: credentials.secret "foreign": does not open with this node's key`},
		{"secret of another deployment", s3Volume("/in", ensemble.ModeIn, srv, "fine", "", &ensemble.Credentials{Secret: "elsewhere"}), `volume inputs: credentials: credentials.secret "elsewhere": does not open`},
		{"secret that is no credentials file", s3Volume("/in", ensemble.ModeIn, srv, "fine", "", &ensemble.Credentials{Secret: "garbage"}), `volume inputs: credentials: credentials.secret "garbage": credentials: line 1 is not KEY=VALUE`},
		{"refused endpoint", func() ensemble.Volume {
			v := s3Volume("/in", ensemble.ModeIn, srv, "fine", "", ops)
			v.S3.Endpoint = refused
			return v
		}(), "volume inputs: stage: "},
		{"corrupted object", s3Volume("/in", ensemble.ModeIn, srv, "inputs", "", ops), "volume inputs: stage: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			m := h.storageManager(map[string]storage.Credentials{
				"ops":   srv.Credentials,
				"wrong": {AccessKeyID: srv.Credentials.AccessKeyID, SecretAccessKey: "not-the-secret"},
			}, nil)
			spec := task("print=ran")
			spec.Volumes = map[string]ensemble.Volume{"inputs": tc.volume, "scratch": {Path: "/scratch"}}
			seal := func(to identity.DID, text, dep, name string) []byte {
				b, err := identity.SealTo(to, []byte(text), deployproto.SecretContext(dep, name))
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			secrets := map[string][]byte{
				"foreign":   seal(mustKey(t).DID(), string(srv.Credentials.MarshalSecret()), "dep1", "foreign"),
				"elsewhere": seal(h.provKey.DID(), string(srv.Credentials.MarshalSecret()), "dep2", "elsewhere"),
				"garbage":   seal(h.provKey.DID(), "not a credentials file", "dep1", "garbage"),
			}
			h.ledger.hold("r1")
			hd, err := m.Create(context.Background(), CreateRequest{ID: "r1.job", Reservation: "r1", Deployment: "dep1",
				Orchestrator: h.orch.act.Handle(), Spec: spec, Secrets: secrets})
			if err != nil {
				t.Fatal(err)
			}
			h.mustStart(hd)
			r := h.awaitEnd("r1.job")
			if r.State != deployproto.AllocFailed || !strings.HasPrefix(r.Message, tc.want) {
				t.Fatalf("end = %s %q, want failed with %q", r.State, r.Message, tc.want)
			}
			t.Logf("reason: %s", r.Message)
			if strings.Count(r.Message, "volume ") != 1 || strings.Contains(r.Message, srv.Credentials.SecretAccessKey) || strings.Contains(r.Message, "not-the-secret") {
				t.Errorf("message %q: want one reason naming the volume once, no keys", r.Message)
			}
			if n := len(h.startedSpecs()); n != 0 {
				t.Errorf("%d instances started after a failed staging", n)
			}
			poll.Eventually(t, time.Minute, "the reservation released", func() bool { return h.ledger.releases("r1") == 1 })
		})
	}
	if t.Failed() {
		return
	}
	// The node is fine: the next allocation stages and runs.
	h := newHarness(t)
	m := h.storageManager(map[string]storage.Credentials{"ops": srv.Credentials}, nil)
	spec := task("cat=/in/a.txt")
	spec.Volumes = map[string]ensemble.Volume{"inputs": s3Volume("/in", ensemble.ModeIn, srv, "fine", "", ops)}
	h.ledger.hold("r2")
	hd, err := m.Create(context.Background(), CreateRequest{ID: "r2.job", Reservation: "r2", Deployment: "dep1", Orchestrator: h.orch.act.Handle(), Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	h.mustStart(hd)
	if r := h.awaitEnd("r2.job"); r.State != deployproto.AllocCompleted {
		t.Fatalf("after the failures: %s %q, want completed", r.State, r.Message)
	}
}

func TestUploadFailureFailsTheTask(t *testing.T) {
	srv := s3test.Start(t)
	h := newHarness(t)
	m := h.storageManager(map[string]storage.Credentials{"ops": srv.Credentials}, nil)
	spec := task("write=/out/r.txt:x")
	spec.Volumes = map[string]ensemble.Volume{"results": s3Volume("/out", ensemble.ModeOut, srv, "missing", "", &ensemble.Credentials{Provider: "ops"})}
	hd := h.createOn(m, "r1.job", "r1", spec)
	h.mustStart(hd)
	r := h.awaitEnd("r1.job")
	if r.State != deployproto.AllocFailed || !strings.HasPrefix(r.Message, "volume results: upload: ") {
		t.Fatalf("end = %s %q, want failed: volume results: upload: …", r.State, r.Message)
	}
	if r.Result == nil || r.Result.ExitCode != 0 {
		t.Errorf("result = %+v, want the run's (exit 0)", r.Result)
	}
}

// createOn creates allocation id of reservation res on m.
func (h *harness) createOn(m *Manager, id, res string, spec deployproto.AllocationSpec) actor.Handle {
	h.t.Helper()
	h.ledger.hold(res)
	hd, err := m.Create(context.Background(), CreateRequest{ID: id, Reservation: res, Deployment: "dep1", Orchestrator: h.orch.act.Handle(), Spec: spec})
	if err != nil {
		h.t.Fatalf("Create(%s): %v", id, err)
	}
	return hd
}

// stalledStore blocks its first Upload until the manager closes, as a
// node killed during an upload.
type stalledStore struct {
	ObjectStore
	once     sync.Once
	stalled  chan struct{}
	uploads  int
	uploadMu sync.Mutex
}

func (s *stalledStore) Upload(ctx context.Context, loc S3Location, cred storage.Credentials, dir, journal string, p storage.ProgressFunc) (TransferStats, error) {
	s.uploadMu.Lock()
	s.uploads++
	s.uploadMu.Unlock()
	first := false
	s.once.Do(func() { first = true })
	if first {
		close(s.stalled)
		<-ctx.Done()
		return TransferStats{}, ctx.Err()
	}
	return s.ObjectStore.Upload(ctx, loc, cred, dir, journal, p)
}

// cutStore cuts its first Upload short once cut bytes are sent, then
// holds it until the manager closes, as a node killed mid-upload.
type cutStore struct {
	ObjectStore
	cut     int64
	once    sync.Once
	stalled chan struct{}
}

func (s *cutStore) Upload(ctx context.Context, loc S3Location, cred storage.Credentials, dir, journal string, p storage.ProgressFunc) (TransferStats, error) {
	first := false
	s.once.Do(func() { first = true })
	if !first {
		return s.ObjectStore.Upload(ctx, loc, cred, dir, journal, p)
	}
	inner, cancel := context.WithCancel(ctx)
	defer cancel()
	s.ObjectStore.Upload(inner, loc, cred, dir, journal, func(pr storage.Progress) {
		if pr.Bytes >= s.cut {
			cancel()
		}
	})
	close(s.stalled)
	<-ctx.Done()
	return TransferStats{}, ctx.Err()
}

func TestRestartDuringMultipartUploadResumesIt(t *testing.T) {
	srv := s3test.Start(t)
	srv.MakeBucket("outputs")
	h := newHarness(t)
	real := s3Store{s3.New(s3.Options{Retries: 1, PartSize: 5 << 20, Concurrency: 1})}
	cut := &cutStore{ObjectStore: real, cut: 10 << 20, stalled: make(chan struct{})}
	m1 := h.storageManager(map[string]storage.Credentials{"ops": srv.Credentials}, cut)
	spec := task("print=wrote")
	spec.Volumes = map[string]ensemble.Volume{"results": s3Volume("/out", ensemble.ModeOut, srv, "outputs", "", &ensemble.Credentials{Provider: "ops"})}
	// The output is there before the run (the fake workload writes text only).
	big := make([]byte, 30<<20)
	for i := range big {
		big[i] = byte(i * 7 / 5)
	}
	dir := filepath.Join(h.dataDir, "r1.job", "volumes", "results")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	hd := h.createOn(m1, "r1.job", "r1", spec)
	h.mustStart(hd)
	select {
	case <-cut.stalled:
	case <-time.After(time.Minute):
		t.Fatal("the upload never began")
	}
	if err := m1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(h.dataDir, "r1.job", "upload-results.journal")); err != nil {
		t.Fatalf("no journal after the cut: %v", err)
	}
	m2 := h.storageManager(map[string]storage.Credentials{"ops": srv.Credentials}, real)
	if err := m2.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := h.awaitEnd("r1.job"); r.State != deployproto.AllocCompleted {
		t.Fatalf("end after the restart = %s %q, want completed", r.State, r.Message)
	}
	got, err := srv.Get("outputs", "dep1/job/1/big.bin")
	if err != nil || sha256.Sum256(got) != sha256.Sum256(big) {
		t.Fatalf("object: %d bytes, %v; want the file's", len(got), err)
	}
	_, stderr := h.readLogs(hd)
	if !strings.Contains(stderr, "(resumed; ") {
		t.Errorf("log does not say the upload resumed:\n%s", stderr)
	}
}

func TestRestartDuringUploadResumesIt(t *testing.T) {
	srv := s3test.Start(t)
	srv.MakeBucket("outputs")
	h := newHarness(t)
	real := s3Store{s3.New(s3.Options{Retries: 1})}
	stalled := &stalledStore{ObjectStore: real, stalled: make(chan struct{})}
	m1 := h.storageManager(map[string]storage.Credentials{"ops": srv.Credentials}, stalled)
	spec := task("write=/out/r.txt:done")
	spec.Volumes = map[string]ensemble.Volume{"results": s3Volume("/out", ensemble.ModeOut, srv, "outputs", "", &ensemble.Credentials{Provider: "ops"})}
	hd := h.createOn(m1, "r1.job", "r1", spec)
	h.mustStart(hd)
	select {
	case <-stalled.stalled:
	case <-time.After(time.Minute):
		t.Fatal("the upload never began")
	}
	if err := m1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	recs, _ := h.store.List()
	if len(recs) != 1 || recs[0].Final == nil || recs[0].Final.State != deployproto.AllocCompleted || recs[0].State.Terminal() {
		t.Fatalf("record after the kill: state %s, final %+v; want not ended, final completed", recs[0].State, recs[0].Final)
	}
	if _, err := srv.Get("outputs", "dep1/job/1/r.txt"); err == nil {
		t.Fatal("the object exists before the upload resumed")
	}
	m2 := h.storageManager(map[string]storage.Credentials{"ops": srv.Credentials}, real)
	if err := m2.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := h.awaitEnd("r1.job")
	if r.State != deployproto.AllocCompleted {
		t.Fatalf("end after the restart = %s %q, want completed", r.State, r.Message)
	}
	if got, err := srv.Get("outputs", "dep1/job/1/r.txt"); err != nil || string(got) != "done" {
		t.Fatalf("object = %q, %v; want done", got, err)
	}
	if n := len(h.startedSpecs()); n != 1 {
		t.Errorf("%d runs, want 1: the restart uploads, it does not run again", n)
	}
}

func TestLocalVolumeSizeIsEnforced(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loop mounts need root")
	}
	h := newHarness(t)
	m := h.storageManager(nil, nil)
	spec := task("write=/small/big:"+strings.Repeat("x", 3<<20), "print=unreachable")
	spec.Volumes = map[string]ensemble.Volume{"small": {Path: "/small", Size: 2 << 20}}
	dir := filepath.Join(h.dataDir, "r1.job", "volumes", "small")
	t.Cleanup(func() { local.Remove(dir) })
	hd := h.createOn(m, "r1.job", "r1", spec)
	h.mustStart(hd)
	r := h.awaitEnd("r1.job")
	if r.State != deployproto.AllocFailed {
		t.Fatalf("end = %s %q, want failed", r.State, r.Message)
	}
	if _, stderr := h.readLogs(hd); !strings.Contains(stderr, "no space left on device") {
		t.Fatalf("stderr = %q, want ENOSPC", stderr)
	}
	// The volume is a mount of its own; removing the allocation removes it.
	if _, err := os.Stat(dir + ".img"); err != nil {
		t.Fatalf("no image beside the volume: %v", err)
	}
	if err := h.orch.act.Invoke(context.Background(), hd, deployproto.BehaviorStop, deployproto.StopRequest{Remove: true}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir + ".img"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("image after the removal: %v, want gone", err)
	}
}

func TestResultsServedAndKept(t *testing.T) {
	h := newHarness(t)
	var ahead atomic.Int64 // how far the manager's clock is ahead
	m := h.storageManagerAt(nil, nil, func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) })
	spec := task("write=/res/answer.txt:42", "write=/scratch/tmp:x")
	spec.Volumes = map[string]ensemble.Volume{
		"res":     {Path: "/res", Mode: ensemble.ModeOut},
		"scratch": {Path: "/scratch"},
	}
	hd := h.createOn(m, "r1.job", "r1", spec)
	h.mustStart(hd)
	if r := h.awaitEnd("r1.job"); r.State != deployproto.AllocCompleted {
		t.Fatalf("end = %s %q", r.State, r.Message)
	}
	root, err := h.provSys.Spawn(mustKey(t), "node-results", actor.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := NewProvider(ProviderConfig{Node: root, Allocations: m})
	if err := p.Register(); err != nil {
		t.Fatal(err)
	}
	ask := func(from *actor.Actor, req deployproto.ResultsRequest) (deployproto.ResultsReply, error) {
		var reply deployproto.ResultsReply
		err := from.Invoke(context.Background(), root.Handle(), deployproto.BehaviorResults, req, &reply)
		return reply, err
	}
	fetch := func(state string) {
		t.Helper()
		reply, err := ask(h.orch.act, deployproto.ResultsRequest{Deployment: "dep1", Op: deployproto.ResultsList})
		if err != nil {
			t.Fatal(err)
		}
		if len(reply.Volumes) != 1 || reply.Volumes[0].Volume != "res" || reply.Volumes[0].State != state || !reply.Volumes[0].Ready {
			t.Fatalf("list = %+v, want res %s", reply.Volumes, state)
		}
		reply, err = ask(h.orch.act, deployproto.ResultsRequest{Deployment: "dep1", Allocation: "job", Volume: "res", Op: deployproto.ResultsManifest})
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte("42"))
		if reply.Manifest == nil || len(reply.Manifest.Files) != 1 || reply.Manifest.Files[0].Path != "answer.txt" || reply.Manifest.Files[0].SHA256 != hex.EncodeToString(sum[:]) {
			t.Fatalf("manifest = %+v", reply.Manifest)
		}
		reply, err = ask(h.orch.act, deployproto.ResultsRequest{Deployment: "dep1", Allocation: "job", Volume: "res", Op: deployproto.ResultsChunk, Path: "answer.txt", Offset: 1, Length: 10})
		if err != nil || string(reply.Data) != "2" {
			t.Fatalf("chunk = %q, %v; want 2", reply.Data, err)
		}
	}
	fetch(deployproto.ResultLive)

	// Another user's orchestrator is refused, with a typed error.
	other, err := newSystem(t, h.net, mustKey(t)).Spawn(mustKey(t), "orch/other", actor.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range []deployproto.ResultsOp{deployproto.ResultsList, deployproto.ResultsManifest, deployproto.ResultsChunk} {
		_, err = ask(other, deployproto.ResultsRequest{Deployment: "dep1", Allocation: "job", Volume: "res", Op: op, Path: "answer.txt", Length: 10})
		var ae *actor.Error
		if !errors.As(err, &ae) || ae.Code != actor.CodeDenied {
			t.Errorf("%s by another user: %v, want code %s", op, err, actor.CodeDenied)
		}
	}
	// Bad requests get clear errors.
	for _, req := range []deployproto.ResultsRequest{
		{Deployment: "../x", Op: deployproto.ResultsList},
		{Deployment: "dep1", Op: "delete"},
		{Deployment: "dep1", Allocation: "job", Volume: "res", Op: deployproto.ResultsChunk, Path: "answer.txt", Length: 2 << 20},
		{Deployment: "dep1", Allocation: "job", Volume: "scratch", Op: deployproto.ResultsManifest},
		{Deployment: "dep1", Allocation: "job", Volume: "res", Op: deployproto.ResultsChunk, Path: "../../../log", Length: 10},
	} {
		if _, err := ask(h.orch.act, req); err == nil {
			t.Errorf("%+v: no error", req)
		}
	}

	// Removed: the result is kept, the scratch volume is gone.
	if err := h.orch.act.Invoke(context.Background(), hd, deployproto.BehaviorStop, deployproto.StopRequest{Remove: true}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(h.dataDir, "r1.job")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("allocation dir after the removal: %v", err)
	}
	fetch(deployproto.ResultKept)

	// Past the retention, the sweeper removes it.
	ahead.Store(int64(defaultResultsRetention + time.Minute))
	if n := m.SweepResults(); n != 1 {
		t.Fatalf("SweepResults = %d, want 1", n)
	}
	if _, err := ask(h.orch.act, deployproto.ResultsRequest{Deployment: "dep1", Op: deployproto.ResultsList}); err == nil {
		t.Error("results listed after the sweep")
	}
	if _, err := os.Stat(filepath.Join(m.cfg.ResultsDir, "dep1")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("results dir after the sweep: %v", err)
	}
}

func TestServiceOutputsSyncedAndUploadedAtStop(t *testing.T) {
	srv := s3test.Start(t)
	srv.MakeBucket("outputs")
	h := newHarness(t)
	m := h.storageManager(map[string]storage.Credentials{"ops": srv.Credentials}, nil)
	spec := task("write=/out/early.txt:while running", "sleep=1h")
	spec.Type, spec.Restart = ensemble.Service, ensemble.Restart{Policy: ensemble.Never}
	v := s3Volume("/out", ensemble.ModeOut, srv, "outputs", "svc/", &ensemble.Credentials{Provider: "ops"})
	v.S3.SyncEvery = 50 * time.Millisecond
	spec.Volumes = map[string]ensemble.Volume{"results": v}
	hd := h.createOn(m, "r1.job", "r1", spec)
	h.mustStart(hd)
	poll.Eventually(t, time.Minute, "the periodic upload", func() bool {
		b, err := srv.Get("outputs", "svc/early.txt")
		return err == nil && string(b) == "while running"
	})
	if st := h.status(hd).State; st != deployproto.AllocRunning {
		t.Fatalf("state during the sync = %s, want running", st)
	}
	// What the service leaves at the end goes up at its stop.
	if err := os.WriteFile(filepath.Join(h.dataDir, "r1.job", "volumes", "results", "late.txt"), []byte("at the end"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.orch.act.Invoke(context.Background(), hd, deployproto.BehaviorStop, deployproto.StopRequest{Grace: time.Second}, nil); err != nil {
		t.Fatal(err)
	}
	r := h.awaitEnd("r1.job")
	if r.State != deployproto.AllocStopped {
		t.Fatalf("end = %s %q, want stopped", r.State, r.Message)
	}
	if b, err := srv.Get("outputs", "svc/late.txt"); err != nil || string(b) != "at the end" {
		t.Fatalf("late.txt = %q, %v: not uploaded before the final report", b, err)
	}
	// The list says where the objects are, without keys.
	reply, err := m.Results(context.Background(), h.orch.act.Handle().DID, deployproto.ResultsRequest{Deployment: "dep1", Op: deployproto.ResultsList})
	if err != nil {
		t.Fatal(err)
	}
	want := deployproto.ResultVolume{Allocation: "job", Volume: "results", Kind: ensemble.S3, Mode: ensemble.ModeOut, State: deployproto.ResultUploaded,
		Bucket: "outputs", Endpoint: srv.Endpoint, Region: srv.Region, Prefix: "svc/", Ready: true}
	if len(reply.Volumes) == 1 { // the last upload's figures
		want.Objects, want.Bytes = reply.Volumes[0].Objects, reply.Volumes[0].Bytes
	}
	if len(reply.Volumes) != 1 || reply.Volumes[0] != want {
		t.Fatalf("list = %+v, want %+v", reply.Volumes, want)
	}
	b, _ := json.Marshal(reply)
	if strings.Contains(string(b), srv.Credentials.SecretAccessKey) {
		t.Error("the list holds a key")
	}
}

// FuzzResults throws requests at the results behavior: no panic, and no
// byte from outside the kept volume.
func FuzzResults(f *testing.F) {
	h := newHarness(f)
	m := h.storageManager(nil, nil)
	orch := h.orch.act.Handle().DID
	dir := m.keptDir("dep1", "job")
	if err := os.MkdirAll(filepath.Join(dir, "res", "sub"), 0o700); err != nil {
		f.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "res", "sub", "a.txt"), []byte("inside"), 0o644)
	os.WriteFile(filepath.Join(m.cfg.ResultsDir, "dep1", "secret.txt"), []byte("outside"), 0o644)
	info, _ := json.Marshal(keptResults{Deployment: "dep1", Allocation: "job", Orchestrator: orch, Kept: time.Now(), Volumes: map[string]keptVolume{"res": {}}})
	os.WriteFile(filepath.Join(dir, keptFile), info, 0o600)
	f.Add("dep1", "job", "res", "chunk", "sub/a.txt", int64(0), 10)
	f.Add("dep1", "job", "res", "chunk", "../../secret.txt", int64(0), 10)
	f.Add("dep1", "job", "../job/res", "manifest", "", int64(0), 0)
	f.Add("dep1", "", "", "list", "", int64(0), 0)
	f.Fuzz(func(t *testing.T, dep, alloc, vol, op, path string, off int64, n int) {
		reply, err := m.Results(context.Background(), orch, deployproto.ResultsRequest{Deployment: dep, Allocation: alloc, Volume: vol,
			Op: deployproto.ResultsOp(op), Path: path, Offset: off, Length: n})
		if err == nil && strings.Contains(string(reply.Data), "outside") {
			t.Fatalf("read outside the volume: %q %q %q", alloc, vol, path)
		}
	})
}

func TestURLVolume(t *testing.T) {
	data := []byte("a public data set\n")
	sum := sha256.Sum256(data)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(data) }))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		name    string
		sha     string
		state   deployproto.AllocationState
		message string
	}{
		{"hash matches", hex.EncodeToString(sum[:]), deployproto.AllocFailed, "exited with code 1"}, // the write into it is refused
		{"hash mismatch", strings.Repeat("0", 64), deployproto.AllocFailed, "volume dataset: fetch: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			m := h.storageManager(nil, nil)
			spec := task("cat=/data/set.txt", "write=/data/set.txt:changed")
			spec.Volumes = map[string]ensemble.Volume{"dataset": {Path: "/data", Kind: ensemble.URL, URL: srv.URL + "/files/set.txt?token=abc", SHA256: tc.sha}}
			hd := h.createOn(m, "r1.job", "r1", spec)
			h.mustStart(hd)
			r := h.awaitEnd("r1.job")
			if r.State != tc.state || !strings.HasPrefix(r.Message, tc.message) {
				t.Fatalf("end = %s %q, want %s %q…", r.State, r.Message, tc.state, tc.message)
			}
			if strings.Contains(r.Message, "token=abc") {
				t.Errorf("message %q holds the URL's query", r.Message)
			}
			stdout, stderr := h.readLogs(hd)
			if host := strings.TrimPrefix(srv.URL, "http://"); !strings.Contains(stderr, "[dms] volume dataset: fetching from "+host) || strings.Contains(stderr, "token=abc") {
				t.Errorf("log %q: want the fetch from %s, without the query", stderr, host)
			}
			if tc.state == deployproto.AllocFailed && strings.HasPrefix(tc.message, "volume") {
				if !strings.Contains(r.Message, "sha256 mismatch") {
					t.Errorf("message %q, want the mismatch", r.Message)
				}
				return
			}
			if stdout != string(data) || !strings.Contains(stderr, "read-only") {
				t.Errorf("stdout %q stderr %q, want the file, then the write refused", stdout, stderr)
			}
		})
	}
}

// countingStore counts the downloads.
type countingStore struct {
	ObjectStore
	mu        sync.Mutex
	downloads int
}

func (s *countingStore) Download(ctx context.Context, loc S3Location, cred storage.Credentials, dir string, p storage.ProgressFunc) (TransferStats, error) {
	s.mu.Lock()
	s.downloads++
	s.mu.Unlock()
	return s.ObjectStore.Download(ctx, loc, cred, dir, p)
}

func TestStagedOnceAcrossRestartsWithProgress(t *testing.T) {
	srv := s3test.Start(t)
	srv.MakeBucket("inputs")
	for i := range 20 {
		srv.Put("inputs", "part-"+strings.Repeat("x", i%3)+string(rune('a'+i)), []byte(strings.Repeat("y", 64<<10)))
	}
	h := newHarness(t)
	store := &countingStore{ObjectStore: s3Store{s3.New(s3.Options{Retries: 1})}}
	m := h.storageManager(map[string]storage.Credentials{"ops": srv.Credentials}, store)
	m.progressEvery = 0 // every progress report becomes a line
	spec := task("print=run", "exit=1")
	spec.Restart = ensemble.Restart{Policy: ensemble.OnFailure, MaxRestarts: 2, Backoff: time.Millisecond}
	spec.Volumes = map[string]ensemble.Volume{"inputs": s3Volume("/in", ensemble.ModeIn, srv, "inputs", "", &ensemble.Credentials{Provider: "ops"})}
	hd := h.createOn(m, "r1.job", "r1", spec)
	h.mustStart(hd)
	r := h.awaitEnd("r1.job")
	if r.State != deployproto.AllocFailed || r.Restarts != 2 {
		t.Fatalf("end = %s after %d restarts, want failed after 2", r.State, r.Restarts)
	}
	if store.downloads != 1 {
		t.Errorf("%d downloads for 3 runs, want 1", store.downloads)
	}
	_, stderr := h.readLogs(hd)
	for _, want := range []string{"[dms] volume inputs: staging s3://inputs/ from " + srv.Endpoint, " of 20 objects)\n", "[dms] volume inputs: staged 20 objects, 1.2 MiB in "} {
		if !strings.Contains(stderr, want) {
			t.Errorf("log lacks %q:\n%s", want, stderr)
		}
	}
}

func TestCheckVolume(t *testing.T) {
	s3v := func(mode ensemble.VolumeMode) ensemble.Volume {
		return ensemble.Volume{Path: "/v", Kind: ensemble.S3, Mode: mode, S3: &ensemble.S3Volume{Bucket: "b"}}
	}
	for _, tc := range []struct {
		name string
		v    ensemble.Volume
		want string // "" = fine
	}{
		{"local", ensemble.Volume{Path: "/v"}, ""},
		{"local out", ensemble.Volume{Path: "/v", Mode: ensemble.ModeOut}, ""},
		{"local in", ensemble.Volume{Path: "/v", Mode: ensemble.ModeIn}, `mode "in": a local volume`},
		{"s3 in", s3v(ensemble.ModeIn), ""},
		{"s3 inout", s3v(ensemble.ModeInOut), ""},
		{"s3 no mode", s3v(""), `mode "" is not in, out or inout`},
		{"s3 negative sync", func() ensemble.Volume { v := s3v(ensemble.ModeOut); v.S3.SyncEvery = -1; return v }(), "sync_every"},
		{"url", ensemble.Volume{Path: "/v", Kind: ensemble.URL, URL: "https://x/y", SHA256: strings.Repeat("a", 64)}, ""},
		{"url without hash", ensemble.Volume{Path: "/v", Kind: ensemble.URL, URL: "https://x/y"}, "sha256"},
		{"url out", ensemble.Volume{Path: "/v", Kind: ensemble.URL, URL: "https://x/y", SHA256: strings.Repeat("a", 64), Mode: ensemble.ModeOut}, "an input"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkVolume(tc.v)
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("checkVolume = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestSecretsOf(t *testing.T) {
	spec := deployproto.AllocationSpec{Volumes: map[string]ensemble.Volume{
		"a": {Kind: ensemble.S3, S3: &ensemble.S3Volume{Credentials: &ensemble.Credentials{Secret: "mine"}}},
		"b": {Kind: ensemble.S3, S3: &ensemble.S3Volume{Credentials: &ensemble.Credentials{Provider: "ops"}}},
		"c": {},
	}}
	got := secretsOf(spec, map[string][]byte{"mine": []byte("sealed"), "theirs": []byte("other allocation's")})
	if len(got) != 1 || string(got["mine"]) != "sealed" {
		t.Errorf("secretsOf = %q, want only mine", got)
	}
	if got := secretsOf(spec, nil); got != nil {
		t.Errorf("secretsOf(nothing given) = %q", got)
	}
}

func TestManifestPages(t *testing.T) {
	h := newHarness(t)
	m := h.storageManager(nil, nil)
	orch := h.orch.act.Handle().DID
	dir := m.keptDir("dep1", "job")
	long := filepath.Join(strings.Repeat("a", 200), strings.Repeat("b", 200), strings.Repeat("c", 200), strings.Repeat("d", 200), strings.Repeat("e", 200))
	if err := os.MkdirAll(filepath.Join(dir, "res", long), 0o700); err != nil {
		t.Fatal(err)
	}
	const n = 1200 // × ~1.1 KiB of path: more than one page
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, "res", long, strings.Repeat("f", 50)+string(rune('A'+i%26))+strings.Repeat("0", i%7)+"-"+strconv.Itoa(i)), []byte{byte(i)}, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	info, _ := json.Marshal(keptResults{Deployment: "dep1", Allocation: "job", Orchestrator: orch, Kept: time.Now(), Volumes: map[string]keptVolume{"res": {}}})
	if err := os.WriteFile(filepath.Join(dir, keptFile), info, 0o600); err != nil {
		t.Fatal(err)
	}
	var files []deployproto.ResultFile
	pages := 0
	for off := int64(0); ; pages++ {
		reply, err := m.Results(context.Background(), orch, deployproto.ResultsRequest{Deployment: "dep1", Allocation: "job", Volume: "res", Op: deployproto.ResultsManifest, Offset: off})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(reply)
		if len(b) > 2*deployproto.MaxManifestPage {
			t.Fatalf("page %d: %d bytes", pages, len(b))
		}
		if reply.Manifest.Bytes != n {
			t.Fatalf("page %d: Bytes = %d, want the volume's %d", pages, reply.Manifest.Bytes, n)
		}
		files = append(files, reply.Manifest.Files...)
		if reply.NextFile == 0 {
			break
		}
		off = reply.NextFile
	}
	if len(files) != n || pages < 1 {
		t.Fatalf("%d files in %d pages, want %d in more than one", len(files), pages+1, n)
	}
	seen := map[string]bool{}
	for _, f := range files {
		seen[f.Path] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct files, want %d", len(seen), n)
	}
	if _, err := m.Results(context.Background(), orch, deployproto.ResultsRequest{Deployment: "dep1", Allocation: "job", Volume: "res", Op: deployproto.ResultsManifest, Offset: n + 1}); err == nil {
		t.Error("a page past the end: no error")
	}
}

func TestResultsForTheUserWhoDeployed(t *testing.T) {
	h := newHarness(t)
	m := h.storageManager(nil, nil)
	spec := task("write=/res/answer.txt:42")
	spec.Volumes = map[string]ensemble.Volume{"res": {Path: "/res", Mode: ensemble.ModeOut}}
	hd := h.createOn(m, "r1.job", "r1", spec)
	// The user delegates to the orchestrator, which delegates to the
	// allocation: the chain roots in the user.
	user := mustKey(t)
	d1, err := cap.Delegate(user, cap.DelegationParams{Audience: h.orch.key.DID(), Command: deployproto.CmdDeployment})
	if err != nil {
		t.Fatal(err)
	}
	d2, err := cap.Delegate(h.orch.key, cap.DelegationParams{Audience: hd.DID, Subject: user.DID(), Command: deployproto.CmdDeployment})
	if err != nil {
		t.Fatal(err)
	}
	text, err := cap.Chain{d1, d2}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.orch.act.Invoke(context.Background(), hd, deployproto.BehaviorStart, deployproto.StartRequest{Chain: text}, nil); err != nil {
		t.Fatal(err)
	}
	if r := h.awaitEnd("r1.job"); r.State != deployproto.AllocCompleted {
		t.Fatalf("end = %s %q", r.State, r.Message)
	}
	list := deployproto.ResultsRequest{Deployment: "dep1", Op: deployproto.ResultsList}
	for _, tc := range []struct {
		name string
		from identity.DID
		ok   bool
	}{
		{"the user", user.DID(), true},
		{"the orchestrator", h.orch.key.DID(), true},
		{"another user", mustKey(t).DID(), false},
		{"nobody", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Results(context.Background(), tc.from, list)
			var ae *actor.Error
			if tc.ok != (err == nil) || (!tc.ok && (!errors.As(err, &ae) || ae.Code != actor.CodeDenied)) {
				t.Errorf("Results by %s = %v, want allowed %v (else %s)", tc.name, err, tc.ok, actor.CodeDenied)
			}
		})
	}
	// Kept after the removal, the user still may.
	if err := h.orch.act.Invoke(context.Background(), hd, deployproto.BehaviorStop, deployproto.StopRequest{Remove: true}, nil); err != nil {
		t.Fatal(err)
	}
	reply, err := m.Results(context.Background(), user.DID(), list)
	if err != nil || len(reply.Volumes) != 1 || reply.Volumes[0].State != deployproto.ResultKept {
		t.Fatalf("kept, by the user: %+v, %v", reply.Volumes, err)
	}
}

// mounted reports whether dir is a mount point.
func mounted(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		real = dir
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == real {
			return true
		}
	}
	return false
}

func TestSizedVolumesUnmountedAtCloseServedAfter(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loop mounts need root")
	}
	h := newHarness(t)
	m1 := h.storageManager(nil, nil)
	spec := task("write=/res/answer.txt:42")
	spec.Volumes = map[string]ensemble.Volume{"res": {Path: "/res", Mode: ensemble.ModeOut, Size: 2 << 20}}
	dir := filepath.Join(h.dataDir, "r1.job", "volumes", "res")
	t.Cleanup(func() { local.Remove(dir) })
	hd := h.createOn(m1, "r1.job", "r1", spec)
	h.mustStart(hd)
	if r := h.awaitEnd("r1.job"); r.State != deployproto.AllocCompleted {
		t.Fatalf("end = %s %q", r.State, r.Message)
	}
	if !mounted(t, dir) {
		t.Fatal("the sized volume is not a mount")
	}
	if err := m1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if mounted(t, dir) {
		t.Fatal("still mounted after Close: the volume of an ended allocation")
	}
	m2 := h.storageManager(nil, nil)
	if err := m2.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	reply, err := m2.Results(context.Background(), h.orch.act.Handle().DID, deployproto.ResultsRequest{Deployment: "dep1", Allocation: "job", Volume: "res", Op: deployproto.ResultsChunk, Path: "answer.txt", Length: 10})
	if err != nil || string(reply.Data) != "42" {
		t.Fatalf("chunk after the restart = %q, %v; want 42", reply.Data, err)
	}
	if !mounted(t, dir) {
		t.Error("served without mounting")
	}
}

// BenchmarkStageSmallObjects stages 10,000 objects of 4 KiB through an
// allocation (staging, a run, the final report; target ≤ 10 s) and, as its
// anchor in the same run, through storage/s3 alone into a fresh directory.
// Run it with -benchtime 2x or another even count.
func BenchmarkStageSmallObjects(b *testing.B) {
	const n, size = 10000, 4 << 10
	srv := s3test.Start(b)
	srv.MakeBucket("small")
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				srv.Put("small", fmt.Sprintf("d%02d/o%05d", i%100, i), bytes.Repeat([]byte{byte(i)}, size))
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	h := newHarness(b)
	st := s3.New(s3.Options{})
	m := h.storageManager(map[string]storage.Credentials{"ops": srv.Credentials}, s3Store{st})
	loc := s3.Location{Endpoint: srv.Endpoint, Region: srv.Region, Bucket: "small"}

	var bare, through time.Duration
	i := 0
	bareRun := func() {
		start := time.Now()
		if _, err := st.Download(context.Background(), loc, srv.Credentials, b.TempDir(), nil); err != nil {
			b.Fatal(err)
		}
		bare += time.Since(start)
	}
	for b.Loop() {
		if i%2 == 0 { // alternate which goes first: the second finds the server's caches warm
			bareRun()
		}
		id := fmt.Sprintf("r%d.job", i)
		spec := task("exit=0")
		spec.Volumes = map[string]ensemble.Volume{"in": s3Volume("/in", ensemble.ModeIn, srv, "small", "", &ensemble.Credentials{Provider: "ops"})}
		hd := h.createOn(m, id, fmt.Sprintf("r%d", i), spec)
		start := time.Now()
		h.mustStart(hd)
		if r := h.awaitEnd(id); r.State != deployproto.AllocCompleted {
			b.Fatalf("end = %s %q", r.State, r.Message)
		}
		through += time.Since(start)
		if err := h.orch.act.Invoke(context.Background(), hd, deployproto.BehaviorStop, deployproto.StopRequest{Remove: true}, nil); err != nil {
			b.Fatal(err)
		}
		if i%2 == 1 {
			bareRun()
		}
		i++
	}
	b.ReportMetric(through.Seconds()/float64(i), "s/stage")
	b.ReportMetric(bare.Seconds()/float64(i), "s/bare-download")
	b.ReportMetric(bare.Seconds()/through.Seconds(), "ratio(≥0.9)")
}
