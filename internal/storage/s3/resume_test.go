package s3

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/dmsnet/dms/internal/storage"
	"github.com/dmsnet/dms/internal/storage/s3/s3test"
)

// checkObject fails unless the object is data, by its bytes and its
// metadata sha256.
func checkObject(t *testing.T, srv *s3test.Server, bucket, key string, data []byte) {
	t.Helper()
	sum := sha256.Sum256(data)
	info, err := srv.Stat(bucket, key)
	if err != nil {
		t.Fatalf("stat %s: %v", key, err)
	}
	if got := info.UserMetadata[metaKey(info.UserMetadata)]; got != hex.EncodeToString(sum[:]) {
		t.Errorf("%s: metadata sha256 %q, want %x", key, got, sum)
	}
	got, err := srv.Get(bucket, key)
	if err != nil {
		t.Fatal(err)
	}
	if g := sha256.Sum256(got); g != sum {
		t.Errorf("%s: content sha256 %x (%d bytes), want %x (%d bytes)", key, g, len(got), sum, len(data))
	}
}

// An upload cancelled after some parts continues from the journal: only
// the parts in flight are sent again.
func TestResumeAfterCancel(t *testing.T) {
	srv := s3test.Start(t)
	srv.MakeBucket("out")
	tests := []struct {
		name        string
		concurrency int
		parts       int // of the file
		cancelAfter int // parts confirmed
	}{
		{"one part at a time", 1, 6, 2},
		{"four at a time", 4, 9, 3},
		{"cancel before any part", 2, 3, 0},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := t.TempDir()
			data := randBytes(t, tc.parts*testPart-100)
			writeTree(t, src, map[string][]byte{"big": data, "small": []byte("s")})
			journal := filepath.Join(t.TempDir(), "journal")
			loc := Location{Endpoint: srv.Endpoint, Bucket: "out", Prefix: "r" + strconv.Itoa(i)}
			tr := newTest(Options{Concurrency: tc.concurrency})

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			_, err := tr.Upload(ctx, loc, srv.Credentials, src, journal, func(p storage.Progress) {
				if p.Bytes >= int64(tc.cancelAfter)*testPart {
					cancel()
				}
			})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("first Upload: %v, want context.Canceled", err)
			}
			st, err := tr.Upload(context.Background(), loc, srv.Credentials, src, journal, nil)
			if err != nil {
				t.Fatalf("second Upload: %v", err)
			}
			if limit := int64(tc.concurrency) * testPart; st.ResentBytes > limit {
				t.Errorf("ResentBytes = %d, want ≤ %d (concurrency × part size)", st.ResentBytes, limit)
			}
			if tc.cancelAfter > 0 && !st.Resumed {
				t.Errorf("Resumed = false, want true")
			}
			if sent := st.Bytes; sent > int64(len(data))-int64(tc.cancelAfter)*testPart+int64(tc.concurrency)*testPart+1 {
				t.Errorf("second Upload sent %d bytes of %d after %d parts were done", sent, len(data), tc.cancelAfter)
			}
			checkObject(t, srv, "out", loc.keyPrefix()+"big", data)
		})
	}
}

// The process dies (SIGKILL) in the middle of a multipart upload; a new
// process with the same journal finishes it, re-sending at most the parts
// that were in flight.
func TestResumeAfterKill(t *testing.T) {
	if os.Getenv("DMS_S3_CHILD") == "1" {
		killChild()
		return
	}
	srv := s3test.Start(t)
	srv.MakeBucket("out")
	// DMS_S3_RESUME_MIB (bench/run-storage.sh) runs it at scale with the
	// defaults: 8 MiB parts, 4 at once.
	parts, concurrency, partSize := 10, 2, int64(testPart)
	if mib, err := strconv.Atoi(os.Getenv("DMS_S3_RESUME_MIB")); err == nil && mib > 0 {
		partSize, concurrency = defaultPartSize, 4
		parts = int(int64(mib) << 20 / partSize)
	}
	src := t.TempDir()
	data := randBytes(t, parts*int(partSize))
	writeTree(t, src, map[string][]byte{"big": data})
	journal := filepath.Join(t.TempDir(), "journal")

	cmd := exec.Command(os.Args[0], "-test.run=^TestResumeAfterKill$", "-test.count=1")
	cmd.Env = append(os.Environ(), "DMS_S3_CHILD=1",
		"DMS_S3_ENDPOINT="+srv.Endpoint, "DMS_S3_SRC="+src, "DMS_S3_JOURNAL="+journal,
		"DMS_S3_CONCURRENCY="+strconv.Itoa(concurrency), "DMS_S3_PART="+strconv.FormatInt(partSize, 10),
		"DMS_S3_STOP_AT="+strconv.FormatInt(int64(parts/2)*partSize, 10))
	// The keys reach the child on stdin, not in its environment.
	cmd.Stdin = strings.NewReader(string(srv.Credentials.MarshalSecret()))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	ready := false
	for sc.Scan() {
		if sc.Text() == "stopped" {
			ready = true
			break
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if !ready {
		t.Fatalf("the child ended before it had sent %d parts", parts/2)
	}

	st, err := newTest(Options{Concurrency: concurrency, PartSize: partSize}).Upload(context.Background(),
		Location{Endpoint: srv.Endpoint, Bucket: "out", Prefix: "k"}, srv.Credentials, src, journal, nil)
	if err != nil {
		t.Fatalf("Upload after kill: %v", err)
	}
	if !st.Resumed {
		t.Error("Resumed = false, want true")
	}
	if limit := int64(concurrency) * partSize; st.ResentBytes > limit {
		t.Errorf("ResentBytes = %d, want ≤ %d", st.ResentBytes, limit)
	}
	if st.Bytes > int64(len(data))-int64(parts/2)*partSize+int64(concurrency)*partSize {
		t.Errorf("sent %d bytes after %d of %d parts were done", st.Bytes, parts/2, parts)
	}
	t.Logf("after kill -9: resent_bytes=%d sent_bytes=%d of %d (part %d, concurrency %d)", st.ResentBytes, st.Bytes, len(data), partSize, concurrency)
	checkObject(t, srv, "out", "k/big", data)
}

// killChild uploads until DMS_S3_STOP_AT bytes are confirmed, says
// "stopped" and blocks (its progress callback never returns) until the
// parent kills it.
func killChild() {
	secret, _ := io.ReadAll(os.Stdin)
	cred, err := storage.ParseCredentials(secret)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	conc, _ := strconv.Atoi(os.Getenv("DMS_S3_CONCURRENCY"))
	part, _ := strconv.ParseInt(os.Getenv("DMS_S3_PART"), 10, 64)
	stopAt, _ := strconv.ParseInt(os.Getenv("DMS_S3_STOP_AT"), 10, 64)
	tr := newTest(Options{Concurrency: conc, PartSize: part})
	_, err = tr.Upload(context.Background(), Location{Endpoint: os.Getenv("DMS_S3_ENDPOINT"), Bucket: "out", Prefix: "k"},
		cred, os.Getenv("DMS_S3_SRC"), os.Getenv("DMS_S3_JOURNAL"), func(p storage.Progress) {
			if p.Bytes >= stopAt {
				fmt.Println("stopped")
				select {}
			}
		})
	fmt.Fprintln(os.Stderr, "upload ended:", err)
	os.Exit(1)
}

// Without a journal nothing can resume an upload: a failed one is
// aborted, its parts not left on the server.
func TestUploadAbortsWithoutJournal(t *testing.T) {
	srv := s3test.Start(t)
	srv.MakeBucket("out")
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"big": randBytes(t, 4*testPart)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := newTest(Options{Concurrency: 1}).Upload(ctx, Location{Endpoint: srv.Endpoint, Bucket: "out"}, srv.Credentials, src, "",
		func(p storage.Progress) {
			if p.Bytes >= testPart {
				cancel()
			}
		})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Upload = %v, want context.Canceled", err)
	}
	res, err := (&minio.Core{Client: srv.Client()}).ListMultipartUploads(context.Background(), "out", "", "", "", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Uploads) != 0 {
		t.Errorf("%d multipart uploads left on the server, want 0", len(res.Uploads))
	}
}
