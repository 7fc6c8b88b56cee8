package s3

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/dmsnet/dms/internal/storage/s3/s3test"
)

// The benchmarks move one file of DMS_S3_BENCH_MIB MiB (default 64) to and
// from a versitygw whose backend is in DMS_S3_BENCH_DIR (default a
// temporary directory), through Transfer with its defaults and through
// bare minio-go (FPutObject / FGetObject with the library's defaults), in
// the same run. Each reports extra-RSS-MiB: the peak resident memory
// during the transfer above what the process had before it (Linux
// VmHWM, reset through /proc/self/clear_refs), and cpu-s/op: the client's
// CPU time (user + system) per transfer.
// BenchmarkDownloadSmall stages DMS_S3_BENCH_SMALL (default 1000) objects
// of 4 KiB.

func benchSize() int64 {
	if n, err := strconv.Atoi(os.Getenv("DMS_S3_BENCH_MIB")); err == nil && n > 0 {
		return int64(n) << 20
	}
	return 64 << 20
}

func benchDir(b *testing.B) string {
	if d := os.Getenv("DMS_S3_BENCH_DIR"); d != "" {
		dir, err := os.MkdirTemp(d, "s3bench")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return b.TempDir()
}

// benchServer is a versitygw and a directory beside its backend for the
// local files.
func benchServer(b *testing.B) (*s3test.Server, string) {
	bin, err := s3test.Binary()
	if err != nil {
		b.Fatal(err)
	}
	dir := benchDir(b)
	for _, d := range []string{"gw", "local"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	srv := s3test.StartDir(b, bin, filepath.Join(dir, "gw"))
	srv.MakeBucket("bench")
	return srv, filepath.Join(dir, "local")
}

// writeRandom writes a file of n random bytes through a small buffer.
func writeRandom(b *testing.B, path string, n int64) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, n); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

// rss measures the peak resident memory above a baseline, and the CPU
// time the process used meanwhile (a cost a loaded machine does not blur).
type rss struct {
	base int64
	cpu  time.Duration
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func procStatus(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func startRSS() rss {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // reset VmHWM to VmRSS
	return rss{base: procStatus("VmRSS"), cpu: cpuTime()}
}

func (r rss) report(b *testing.B) {
	extra := procStatus("VmHWM") - r.base
	b.ReportMetric(float64(extra)/(1<<20), "extra-RSS-MiB")
	b.ReportMetric((cpuTime()-r.cpu).Seconds()/float64(b.N), "cpu-s/op")
}

func BenchmarkUpload(b *testing.B) {
	srv, local := benchServer(b)
	size := benchSize()
	writeRandom(b, filepath.Join(local, "src", "big"), size)
	tr := New(Options{})
	b.SetBytes(size)
	m := startRSS()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		loc := Location{Endpoint: srv.Endpoint, Bucket: "bench", Prefix: fmt.Sprint("up", i)}
		if _, err := tr.Upload(context.Background(), loc, srv.Credentials, filepath.Join(local, "src"), "", nil); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	m.report(b)
}

func BenchmarkBareMinioUpload(b *testing.B) {
	srv, local := benchServer(b)
	size := benchSize()
	src := filepath.Join(local, "src", "big")
	writeRandom(b, src, size)
	b.SetBytes(size)
	m := startRSS()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := srv.Client().FPutObject(context.Background(), "bench", fmt.Sprint("up", i, "/big"), src, minio.PutObjectOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	m.report(b)
}

// benchObject puts the benchmark's object with Transfer (so it carries
// the sha256 metadata Download checks).
func benchObject(b *testing.B, srv *s3test.Server, local string) int64 {
	size := benchSize()
	writeRandom(b, filepath.Join(local, "src", "big"), size)
	loc := Location{Endpoint: srv.Endpoint, Bucket: "bench", Prefix: "in"}
	if _, err := New(Options{}).Upload(context.Background(), loc, srv.Credentials, filepath.Join(local, "src"), "", nil); err != nil {
		b.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(local, "src")); err != nil {
		b.Fatal(err)
	}
	return size
}

func BenchmarkDownload(b *testing.B) {
	srv, local := benchServer(b)
	size := benchObject(b, srv, local)
	tr := New(Options{})
	b.SetBytes(size)
	m := startRSS()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dst := filepath.Join(local, fmt.Sprint("dst", i))
		st, err := tr.Download(context.Background(), Location{Endpoint: srv.Endpoint, Bucket: "bench", Prefix: "in"}, srv.Credentials, dst, nil)
		if err != nil {
			b.Fatal(err)
		}
		if st.Unverified != 0 {
			b.Fatalf("stats %+v: unverified objects", st)
		}
		b.StopTimer()
		os.RemoveAll(dst)
		b.StartTimer()
	}
	b.StopTimer()
	m.report(b)
}

func BenchmarkBareMinioDownload(b *testing.B) {
	srv, local := benchServer(b)
	size := benchObject(b, srv, local)
	b.SetBytes(size)
	m := startRSS()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dst := filepath.Join(local, fmt.Sprint("dst", i), "big")
		if err := srv.Client().FGetObject(context.Background(), "bench", "in/big", dst, minio.GetObjectOptions{}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(filepath.Dir(dst))
		b.StartTimer()
	}
	b.StopTimer()
	m.report(b)
}

// BenchmarkDownloadSmall stages many 4 KiB objects; it reports the
// seconds per staging.
func BenchmarkDownloadSmall(b *testing.B) {
	srv, local := benchServer(b)
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("DMS_S3_BENCH_SMALL")); err == nil && v > 0 {
		n = v
	}
	src := filepath.Join(local, "src")
	for i := range n {
		writeRandom(b, filepath.Join(src, fmt.Sprintf("d%02d/f%05d", i%100, i)), 4096)
	}
	tr := New(Options{})
	loc := Location{Endpoint: srv.Endpoint, Bucket: "bench", Prefix: "small"}
	if _, err := tr.Upload(context.Background(), loc, srv.Credentials, src, "", nil); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(n) * 4096)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dst := filepath.Join(local, fmt.Sprint("dst", i))
		st, err := tr.Download(context.Background(), loc, srv.Credentials, dst, nil)
		if err != nil {
			b.Fatal(err)
		}
		if st.Objects != n {
			b.Fatalf("staged %d objects, want %d", st.Objects, n)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(n), "objects")
}
