package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/apiserver"
)

// TestSignalContext sends the process a real SIGTERM and checks that the
// context SignalContext returns is cancelled with the cause Main turns into
// exit code 143.
func TestSignalContext(t *testing.T) {
	ctx, stop := SignalContext(context.Background())
	defer stop()
	if _, ok := interruption(ctx); ok {
		t.Fatal("interruption before any signal")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("SIGTERM did not cancel the context within 10s")
	}
	in, ok := interruption(ctx)
	if !ok || in.code() != exitSIGTERM || in.Error() != "interrupted by SIGTERM" {
		t.Fatalf("interruption = %v (code %d), %v; want SIGTERM, 143", in, in.code(), ok)
	}
}

// fakeOrchestrator is the deployment side of a node behind the real API
// server: it accepts one deployment, "d1", that never leaves bidding, and
// calls at when `dms deploy` reaches a step ("node": it asks for the node's
// DID; "submit"; "wait": its first long poll), for the test to send its
// signal there.
type fakeOrchestrator struct {
	did string
	at  func(step string)
	// hold, when set, delays the answer to a submission until it closes.
	hold chan struct{}

	mu        sync.Mutex
	submitted int
}

func (f *fakeOrchestrator) Info(context.Context) api.Node {
	f.at("node")
	return api.Node{DID: f.did, PeerID: "12D3KooWfake"}
}

func (f *fakeOrchestrator) Submit(context.Context, api.DeployRequest) (*api.Deployment, error) {
	f.at("submit")
	if f.hold != nil {
		<-f.hold
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.submitted++
	return &api.Deployment{ID: "d1", State: "bidding", Version: 1, Round: 1}, nil
}

func (f *fakeOrchestrator) List(context.Context) []api.Deployment { return nil }

func (f *fakeOrchestrator) Get(ctx context.Context, id string, after uint64, wait time.Duration) (*api.Deployment, error) {
	f.at("wait")
	if wait > 0 {
		<-ctx.Done() // a long poll that sees no change
		return nil, ctx.Err()
	}
	return &api.Deployment{ID: id, State: "bidding", Version: 1, Round: 1}, nil
}

func (f *fakeOrchestrator) Shutdown(context.Context, string) (*api.Deployment, error) {
	return nil, errors.New("not supported by the fake")
}

func (f *fakeOrchestrator) Logs(context.Context, string, string, bool, api.LogFilter, func(api.LogLine)) error {
	return nil
}

func TestDeployInterrupted(t *testing.T) {
	home := newHome(t)
	_, didOut, _ := run(t, "--home", home, "key", "did", "node")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "m.wasm"), []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	job := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(job, []byte("version: v1\nallocations:\n  a: {executor: wasm, execution: {module: m.wasm}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		step       string // where the signal arrives
		sig        syscall.Signal
		args       []string
		wantCode   int
		wantSubmit int
		want       []string
	}{
		{"before submitting", "node", syscall.SIGINT, nil, 130, 0,
			[]string{"interrupted by SIGINT (Ctrl-C): nothing was submitted\n"}},
		{"while submitting", "submit", syscall.SIGINT, nil, 130, 1, []string{
			"interrupted by SIGINT (Ctrl-C): waiting for the node to answer the submission",
			"interrupted by SIGINT (Ctrl-C): submitted as deployment d1; it goes on (dms deployment status d1; stop it with dms deployment shutdown d1)\n",
		}},
		{"while following", "wait", syscall.SIGINT, []string{"--follow"}, 130, 1, []string{
			"deployment d1 submitted",
			"interrupted by SIGINT (Ctrl-C): deployment d1 goes on; follow it again with dms deployment logs -f d1, stop it with dms deployment shutdown d1\n",
		}},
		{"terminated while waiting", "wait", syscall.SIGTERM, nil, 143, 1, []string{
			"interrupted by SIGTERM: deployment d1 goes on",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			f := &fakeOrchestrator{did: strings.TrimSpace(didOut), at: func(step string) {
				if step == tt.step {
					cancel(interrupted{sig: tt.sig}) // what SignalContext does on a signal
				}
			}}
			addr := serveOrchestrator(t, f, home)
			var out strings.Builder
			errb := &watchWriter{}
			if tt.step == "submit" {
				// The node answers once deploy said it waits for the answer,
				// as a slow node would.
				f.hold = make(chan struct{})
				errb.want, errb.seen = "waiting for the node to answer", f.hold
			}
			args := append([]string{"--home", home, "--api", addr, "deploy", "-f", job}, tt.args...)
			code := Main(ctx, args, strings.NewReader(""), &out, errb)
			stderr := errb.String()
			if code != tt.wantCode {
				t.Fatalf("exit = %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.submitted != tt.wantSubmit {
				t.Errorf("node got %d submissions, want %d", f.submitted, tt.wantSubmit)
			}
		})
	}
}

// serveOrchestrator runs a real API server with f behind it, with the token
// of home, and returns its address.
func serveOrchestrator(t *testing.T, f *fakeOrchestrator, home string) string {
	t.Helper()
	token, err := os.ReadFile(filepath.Join(home, apiTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	s, err := apiserver.New(apiserver.Config{Addr: "127.0.0.1:0", Token: strings.TrimSpace(string(token)), Node: f, Deployments: f})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return addr.String()
}

func TestMainExitCodeOfInterruption(t *testing.T) {
	home := t.TempDir()
	if err := os.WriteFile(filepath.Join(home, apiTokenFile), []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		sig      syscall.Signal
		args     []string
		wantCode int
		want     string
	}{
		{"a cancelled request says only interrupted", syscall.SIGINT, []string{"--home", home, "--api", "127.0.0.1:9", "peers", "list"}, 130, "interrupted by SIGINT (Ctrl-C)\n"},
		{"SIGTERM", syscall.SIGTERM, []string{"--home", home, "--api", "127.0.0.1:9", "peers", "list"}, 143, "interrupted by SIGTERM\n"},
		{"another error keeps its message", syscall.SIGTERM, []string{"--home", home, "key", "list"}, 143, "interrupted by SIGTERM: no dms home at " + home},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancelCause(context.Background())
			cancel(interrupted{sig: tt.sig})
			var out, errb strings.Builder
			code := Main(ctx, tt.args, strings.NewReader(""), &out, &errb)
			if code != tt.wantCode || !strings.HasPrefix(errb.String(), tt.want) || strings.Count(errb.String(), "\n") != 1 {
				t.Fatalf("exit %d, stderr %q; want %d and one line starting %q", code, errb.String(), tt.wantCode, tt.want)
			}
		})
	}
}

// watchWriter is a buffer that closes seen once what it holds contains want.
type watchWriter struct {
	mu   sync.Mutex
	b    strings.Builder
	want string
	seen chan struct{}
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.b.Write(p)
	if w.seen != nil && strings.Contains(w.b.String(), w.want) {
		close(w.seen)
		w.seen = nil
	}
	return n, err
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
