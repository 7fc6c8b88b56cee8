// Package zinctest starts a real Elasticsearch-API server for tests:
// ZincSearch v0.4.10 on a random loopback port, with a temporary data
// directory and its own admin credentials. It is stopped when the test
// ends; Stop and Restart (same port, same data) let a test take it away
// for a while.
//
// Usage:
//
//	srv := zinctest.Start(t)
//	// point a log sink at srv.URL (the /es/ API) as srv.User, srv.Password
//	hits := srv.Search("dms-logs", map[string]any{"term": map[string]any{"deployment_id": id}})
//
// The binary is found in $DMS_ZINCSEARCH, else on PATH, else in
// $(go env GOPATH)/bin; when it is missing the test fails with the command
// that builds it (scripts/zincsearch.sh, which .ci/run runs).
package zinctest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/e2etest/toolbin"
)

// InstallCommand builds the server the tests need (from the repository's
// root).
const InstallCommand = "scripts/zincsearch.sh"

// Server is a running ZincSearch.
type Server struct {
	URL      string // http://127.0.0.1:PORT/es: the Elasticsearch API
	User     string
	Password string
	Dir      string // its data directory

	t    testing.TB
	bin  string
	addr string
	cmd  *exec.Cmd
	exit chan error
	out  bytes.Buffer
}

// Binary returns the path of the zincsearch binary, or an error naming the
// command that builds it.
func Binary() (string, error) {
	return toolbin.Find("zincsearch", "DMS_ZINCSEARCH", true, InstallCommand)
}

// Start starts a ZincSearch for the test and stops it at cleanup. It fails
// the test if the server does not answer within 30 s.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{User: "admin", Password: "Zt-" + randHex(12), Dir: t.TempDir(), t: t, bin: bin}
	for attempt := 0; ; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s.addr = l.Addr().String()
		l.Close()
		s.URL = "http://" + s.addr + "/es"
		err = s.start()
		if err == nil {
			break
		}
		if attempt < 3 && strings.Contains(s.out.String(), "address already in use") {
			continue
		}
		t.Fatalf("zincsearch on %s: %v\n%s", s.addr, err, s.out.String())
	}
	t.Cleanup(func() { s.Stop() })
	return s
}

func (s *Server) start() error {
	_, port, _ := net.SplitHostPort(s.addr)
	s.out.Reset()
	cmd := exec.Command(s.bin)
	cmd.Env = append(os.Environ(),
		"ZINC_FIRST_ADMIN_USER="+s.User, "ZINC_FIRST_ADMIN_PASSWORD="+s.Password,
		"ZINC_DATA_PATH="+s.Dir, "ZINC_SERVER_ADDRESS=127.0.0.1", "ZINC_SERVER_PORT="+port,
		// No calls home (there is no internet here), one shard.
		"ZINC_SENTRY=false", "ZINC_TELEMETRY=false", "ZINC_PROFILER=false", "ZINC_SHARD_NUM=1",
		"GIN_MODE=release")
	cmd.Stdout, cmd.Stderr = &s.out, &s.out
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd, s.exit = cmd, make(chan error, 1)
	go func() { s.exit <- cmd.Wait() }()
	if err := s.waitReady(); err != nil {
		_ = cmd.Process.Kill()
		<-s.exit
		s.cmd = nil
		return err
	}
	return nil
}

func (s *Server) waitReady() error {
	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		resp, err := client.Get("http://" + s.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-s.exit:
			s.exit <- err
			return fmt.Errorf("exited: %v", err)
		case <-time.After(delay):
		}
		if time.Now().After(deadline) {
			return errors.New("not answering after 30s")
		}
	}
}

// Stop stops the server (SIGTERM, then SIGKILL after 10 s); its data stay.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exit:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exit
	}
	s.cmd = nil
}

// Restart starts the server again on the same port and data directory.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if err = s.start(); err == nil {
			return
		}
		if !strings.Contains(s.out.String(), "address already in use") {
			break
		}
		time.Sleep(100 * time.Millisecond) // the old socket is going away
	}
	s.t.Fatalf("restart zincsearch on %s: %v\n%s", s.addr, err, s.out.String())
}

// Hit is one document found.
type Hit struct {
	ID     string         `json:"_id"`
	Source map[string]any `json:"_source"`
}

// Search runs an Elasticsearch query (the value of "query") on index and
// returns up to 10000 hits; a missing index has none.
func (s *Server) Search(index string, query map[string]any) []Hit {
	s.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "size": 10000})
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/"+index+"/_search", bytes.NewReader(body))
	req.SetBasicAuth(s.User, s.Password)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("search: %v", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusBadRequest && bytes.Contains(data, []byte("does not exists")) {
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("search: %s: %s", resp.Status, data)
	}
	var r struct {
		Hits struct {
			Hits []Hit `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		s.t.Fatalf("search: %v: %s", err, data)
	}
	return r.Hits.Hits
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
