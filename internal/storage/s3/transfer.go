// Package s3 moves a directory tree to and from an S3 bucket prefix: the
// staging of an s3 volume in (Download) and the upload of its outputs
// (Upload), with parallel multipart transfers in bounded memory, retries
// with backoff, checksums on every object and resumable uploads.
//
// Usage:
//
//	t := s3.New(s3.Options{}) // 8 MiB parts, 4 at once, 5 retries
//	loc := s3.Location{Endpoint: "http://127.0.0.1:7070", Bucket: "b", Prefix: "in/"}
//	st, err := t.Download(ctx, loc, cred, dir, nil)
//	st, err = t.Upload(ctx, loc, cred, dir, "/var/lib/dms/upload.journal", progress)
//
// Every object Upload writes carries user metadata sha256=<hex of the
// whole object>; Download checks it (or the server's own SHA-256
// checksum, or a plain MD5 ETag) and fails with ErrChecksum on a mismatch.
// A journal file makes an upload resumable after the process dies: the
// parts the server has are not sent again, and unchanged files already
// uploaded are skipped.
//
// Errors name the endpoint, bucket and key, never a credential; they wrap
// ErrNoSuchBucket, ErrAccessDenied, ErrUnreachable or ErrChecksum where
// one applies.
//
// # Concurrency
//
// A Transfer may be used by several goroutines at once; each call has its
// own buffers. Two calls must not share a journal file.
package s3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/dmsnet/dms/internal/storage"
)

// Errors callers can test with errors.Is.
var (
	ErrNoSuchBucket = errors.New("no such bucket")
	ErrAccessDenied = errors.New("access denied")
	ErrUnreachable  = errors.New("endpoint unreachable")
	ErrChecksum     = errors.New("checksum mismatch")
)

// Location is a bucket prefix on an S3 server.
type Location struct {
	Endpoint string // http(s)://host[:port]; "" = AWS (https://s3.<region>.amazonaws.com)
	Region   string // default us-east-1
	Bucket   string
	Prefix   string // key prefix ("" = whole bucket); a trailing "/" is not required
}

// keyPrefix is the prefix as a directory: "" or "a/b/".
func (l Location) keyPrefix() string {
	p := strings.TrimLeft(l.Prefix, "/")
	if p == "" || strings.HasSuffix(p, "/") {
		return p
	}
	return p + "/"
}

func (l Location) region() string {
	if l.Region == "" {
		return "us-east-1"
	}
	return l.Region
}

func (l Location) endpoint() string {
	if l.Endpoint == "" {
		return "https://s3." + l.region() + ".amazonaws.com"
	}
	return l.Endpoint
}

// Options tune a Transfer; zero values take the defaults.
type Options struct {
	PartSize    int64         // multipart part size; default 8 MiB, at least 5 MiB
	Concurrency int           // parallel parts / objects; default 4
	Retries     int           // attempts after the first, per request; default 5, negative for none
	MinBackoff  time.Duration // first retry delay, doubling up to 5 s; default 200 ms
	HTTPClient  *http.Client  // optional; its Transport is used
}

// Stats say what a transfer did.
type Stats struct {
	Objects     int   // objects transferred (Upload: those skipped as unchanged are in Skipped)
	Bytes       int64 // bytes sent or received
	ResentBytes int64 // Upload: bytes of parts a previous, interrupted call had started and this one sent again
	Resumed     bool  // Upload: a multipart upload from the journal was continued
	Skipped     int   // Upload: unchanged files the journal says are already uploaded
	Unverified  int   // Download: multipart objects with no SHA-256 to check them by (their size was checked)
}

// Transfer moves trees to and from S3. Make one with New.
type Transfer struct {
	opts Options
}

const (
	defaultPartSize = 8 << 20
	minPartSize     = 5 << 20
	maxParts        = 10000
	maxBackoff      = 5 * time.Second
)

// New returns a Transfer with opts, defaults filled in.
func New(opts Options) *Transfer {
	if opts.PartSize <= 0 {
		opts.PartSize = defaultPartSize
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.Retries < 0 {
		opts.Retries = 0
	} else if opts.Retries == 0 {
		opts.Retries = 5
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 200 * time.Millisecond
	}
	return &Transfer{opts: opts}
}

// partSize is the part size for a file of size n: the option (at least
// 5 MiB), raised so that the file fits in maxParts parts.
func (t *Transfer) partSize(n int64) int64 {
	ps := max(t.opts.PartSize, minPartSize)
	if need := (n + maxParts - 1) / maxParts; need > ps {
		ps = (need + 1<<20 - 1) &^ (1<<20 - 1)
	}
	return ps
}

// conn is one call's view of the server.
type conn struct {
	core *minio.Core
	loc  Location
	host string // the endpoint as errors name it
}

var transportOnce sync.Once
var sharedTransport http.RoundTripper

func defaultTransport() http.RoundTripper {
	transportOnce.Do(func() {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		tr.ResponseHeaderTimeout = 2 * time.Minute
		sharedTransport = tr
	})
	return sharedTransport
}

func (t *Transfer) connect(loc Location, cred storage.Credentials) (*conn, error) {
	if loc.Bucket == "" {
		return nil, errors.New("s3: no bucket")
	}
	u, err := url.Parse(loc.endpoint())
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("s3 bucket %s: endpoint %q: want http(s)://host[:port]", loc.Bucket, loc.Endpoint)
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("s3 bucket %s: endpoint %s: a path is not supported", loc.Bucket, u.Redacted())
	}
	creds := credentials.NewStatic("", "", "", credentials.SignatureAnonymous)
	if !cred.Anonymous() {
		creds = credentials.NewStaticV4(cred.AccessKeyID, cred.SecretAccessKey, cred.SessionToken)
	}
	lookup := minio.BucketLookupPath
	if loc.Endpoint == "" {
		lookup = minio.BucketLookupAuto
	}
	tr := defaultTransport()
	if t.opts.HTTPClient != nil && t.opts.HTTPClient.Transport != nil {
		tr = t.opts.HTTPClient.Transport
	}
	core, err := minio.NewCore(u.Host, &minio.Options{
		Creds:        creds,
		Secure:       u.Scheme == "https",
		Transport:    tr,
		Region:       loc.region(),
		BucketLookup: lookup,
		MaxRetries:   1, // retries are ours: counted, with our backoff, and none for permanent errors
	})
	if err != nil {
		return nil, fmt.Errorf("s3 bucket %s: endpoint %s: %v", loc.Bucket, u.Host, err)
	}
	return &conn{core: core, loc: loc, host: u.Scheme + "://" + u.Host}, nil
}

// errorf makes the error of an operation on key (may be ""): it names the
// endpoint, bucket and key, classifies err into a sentinel, and keeps
// only the server's code and message (never a request, where a signature
// lives).
func (c *conn) errorf(op, key string, err error) error {
	where := fmt.Sprintf("s3 %s %s bucket %s", op, c.host, c.loc.Bucket)
	if key != "" {
		where += " key " + key
	}
	if errors.Is(err, ErrChecksum) {
		return fmt.Errorf("%s: %w", where, err)
	}
	if ctxErr := contextError(err); ctxErr != nil {
		return fmt.Errorf("%s: %w", where, ctxErr)
	}
	resp := errorResponse(err)
	switch resp.Code {
	case "NoSuchBucket":
		return fmt.Errorf("%s: %w", where, ErrNoSuchBucket)
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "AllAccessDisabled":
		return fmt.Errorf("%s: %w (%s)", where, ErrAccessDenied, resp.Code)
	case "":
	default:
		msg := resp.Message
		if len(msg) > 200 {
			msg = msg[:200]
		}
		return fmt.Errorf("%s: %s: %s (HTTP %d)", where, resp.Code, msg, resp.StatusCode)
	}
	if isNetError(err) {
		return fmt.Errorf("%s: %w: %s", where, ErrUnreachable, netReason(err))
	}
	if resp.StatusCode != 0 {
		return fmt.Errorf("%s: HTTP %d", where, resp.StatusCode)
	}
	return fmt.Errorf("%s: %v", where, err)
}

func contextError(err error) error {
	switch {
	case errors.Is(err, context.Canceled):
		return context.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return context.DeadlineExceeded
	}
	return nil
}

func isNetError(err error) bool {
	var ne net.Error
	var oe *net.OpError
	var ue *url.Error
	return errors.As(err, &ne) || errors.As(err, &oe) || errors.As(err, &ue) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}

// netReason is the innermost reason of a network error, without the
// request's URL.
func netReason(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return "cannot resolve " + dns.Name
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return "network error"
}

// permanent reports whether retrying err is useless.
func permanent(err error) bool {
	if errors.Is(err, ErrChecksum) || contextError(err) != nil || errors.Is(err, errRefused) {
		return true
	}
	resp := errorResponse(err)
	switch resp.Code {
	case "":
		return false // a network error or an unparsed answer
	case "InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "RequestTimeTooSkewed", "XAmzContentSHA256Mismatch", "BadDigest", "IncompleteBody":
		return false
	}
	return resp.StatusCode < 500
}

// errRefused marks a local refusal (a key escaping the directory, a
// path clash): never retried.
var errRefused = errors.New("refused")

// retry runs op until it succeeds, fails permanently or the retries are
// used up, sleeping MinBackoff, 2×MinBackoff, … (at most 5 s) between.
func (t *Transfer) retry(ctx context.Context, op func() error) error {
	delay := t.opts.MinBackoff
	for attempt := 0; ; attempt++ {
		err := op()
		if err == nil || permanent(err) || attempt >= t.opts.Retries {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
		delay = min(2*delay, maxBackoff)
	}
}

// progress serialises calls to a ProgressFunc.
type progress struct {
	mu sync.Mutex // guards p
	p  storage.Progress
	fn storage.ProgressFunc
}

func (p *progress) add(bytes int64, objects int) {
	if p.fn == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.p.Bytes += bytes
	p.p.Objects += objects
	p.fn(p.p)
}

func (p *progress) total(bytes int64, objects int) {
	if p.fn == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.p.TotalBytes += bytes
	p.p.TotalObjects += objects
	p.fn(p.p)
}

// errorResponse is the server's error inside err, or a zero one.
func errorResponse(err error) minio.ErrorResponse {
	var r minio.ErrorResponse
	if errors.As(err, &r) {
		return r
	}
	return minio.ErrorResponse{}
}
