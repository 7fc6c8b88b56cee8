// Package s3test starts a real S3 server for tests: versitygw with its
// posix backend in a temporary directory, on a random loopback port, with
// its own keys. It is stopped when the test ends.
//
// Usage:
//
//	srv := s3test.Start(t)
//	srv.MakeBucket("in")
//	srv.Put("in", "data/a.txt", []byte("hello"))
//	// point a client at srv.Endpoint with srv.Credentials
//
// The binary is found in $DMS_VERSITYGW, else on PATH, else in
// $(go env GOPATH)/bin; when it is missing the test fails with the command
// that installs it.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/dmsnet/dms/internal/e2etest/toolbin"
	"github.com/dmsnet/dms/internal/storage"
)

// InstallCommand installs the server the tests need.
const InstallCommand = "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// Server is a running versitygw.
type Server struct {
	Endpoint    string // http://127.0.0.1:PORT
	Region      string // us-east-1
	Credentials storage.Credentials
	Dir         string // the posix backend's root: one directory per bucket

	t      testing.TB
	client *minio.Client
}

// Binary returns the path of the versitygw binary, or an error naming the
// command that installs it.
func Binary() (string, error) {
	return toolbin.Find("versitygw", "DMS_VERSITYGW", true, InstallCommand)
}

// Start starts a versitygw for the test and stops it at cleanup. It fails
// the test if the server does not answer within 30 s.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	return StartDir(t, bin, t.TempDir())
}

// StartDir is Start with the binary and the backend directory given (a
// benchmark may want a tmpfs).
func StartDir(t testing.TB, bin, dir string) *Server {
	t.Helper()
	s := &Server{
		Region: "us-east-1",
		Dir:    dir,
		Credentials: storage.Credentials{
			AccessKeyID:     "dmstest" + randHex(6),
			SecretAccessKey: randHex(20),
		},
		t: t,
	}
	for attempt := 0; ; attempt++ {
		addr, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		// --keep-alive: as real S3 servers do (without it every request
		// dials a new connection).
		cmd := exec.Command(bin, "--port", addr, "--quiet", "--keep-alive", "posix", dir)
		cmd.Env = append(os.Environ(),
			"ROOT_ACCESS_KEY_ID="+s.Credentials.AccessKeyID,
			"ROOT_SECRET_ACCESS_KEY="+s.Credentials.SecretAccessKey)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start versitygw: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		s.Endpoint = "http://" + addr
		err = waitReady(s.Endpoint, exited)
		if err == nil {
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
			})
			break
		}
		_ = cmd.Process.Kill()
		if attempt < 3 && strings.Contains(out.String(), "address already in use") {
			continue // another process took the port between freePort and the bind
		}
		t.Fatalf("versitygw on %s: %v\n%s", addr, err, out.String())
	}
	c, err := minio.New(strings.TrimPrefix(s.Endpoint, "http://"), &minio.Options{
		Creds:        credentials.NewStaticV4(s.Credentials.AccessKeyID, s.Credentials.SecretAccessKey, ""),
		Region:       s.Region,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.client = c
	return s
}

// Client is a plain minio-go client for the server with its keys.
func (s *Server) Client() *minio.Client { return s.client }

// MakeBucket creates a bucket.
func (s *Server) MakeBucket(name string) {
	s.t.Helper()
	if err := s.client.MakeBucket(context.Background(), name, minio.MakeBucketOptions{Region: s.Region}); err != nil {
		s.t.Fatalf("make bucket %s: %v", name, err)
	}
}

// Put stores an object (single-part, no user metadata: like a file put
// there by another tool).
func (s *Server) Put(bucket, key string, data []byte) {
	s.t.Helper()
	put := func() error {
		_, err := s.client.PutObject(context.Background(), bucket, key, bytes.NewReader(data), int64(len(data)),
			minio.PutObjectOptions{DisableMultipart: true})
		return err
	}
	err := put()
	if err != nil && strings.Contains(err.Error(), "parsing the HTTP request") {
		// versitygw v1.8.0 once failed to parse the request that
		// followed an empty PUT on the same connection (CI, 2026-12-04):
		// the fixture sends it once more.
		err = put()
	}
	if err != nil {
		s.t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
}

// Get reads an object.
func (s *Server) Get(bucket, key string) ([]byte, error) {
	o, err := s.client.GetObject(context.Background(), bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, err
	}
	defer o.Close()
	return io.ReadAll(o)
}

// Stat returns an object's metadata.
func (s *Server) Stat(bucket, key string) (minio.ObjectInfo, error) {
	return s.client.StatObject(context.Background(), bucket, key, minio.StatObjectOptions{})
}

// Path is where the posix backend keeps an object.
func (s *Server) Path(bucket, key string) string {
	return filepath.Join(s.Dir, bucket, filepath.FromSlash(key))
}

// Corrupt flips one byte of an object on disk (its metadata, ETag and
// checksums unchanged), as bit rot or a faulty disk would.
func (s *Server) Corrupt(bucket, key string, offset int64) {
	s.t.Helper()
	f, err := os.OpenFile(s.Path(bucket, key), os.O_RDWR, 0)
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	if _, err := f.ReadAt(b, offset); err != nil {
		s.t.Fatalf("corrupt %s/%s at %d: %v", bucket, key, offset, err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, offset); err != nil {
		s.t.Fatal(err)
	}
}

// waitReady polls the endpoint until it answers HTTP (any status) or the
// process exits.
func waitReady(endpoint string, exited <-chan error) error {
	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		resp, err := client.Get(endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("exited: %v", err)
		case <-time.After(delay):
		}
		if time.Now().After(deadline) {
			return errors.New("not answering after 30s")
		}
	}
}

var portMu sync.Mutex

func freePort() (string, error) {
	portMu.Lock()
	defer portMu.Unlock()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
