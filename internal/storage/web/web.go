// Package web fetches one file over HTTP(S) and checks it by its SHA-256:
// the url volume kind, for public data sets.
//
// Usage:
//
//	err := web.Fetch(ctx, http.DefaultClient, "https://example.org/data.tar",
//		"9f86d08…", dir, "", 0, progress)
//	if errors.Is(err, web.ErrChecksum) { … the server sent other bytes … }
//
// The body streams to dir/.NAME.part; an interrupted transfer resumes from
// there with a Range request (from scratch when the server ignores it),
// transient failures (5xx, 408, 429, broken connections) are retried with
// backoff, and dir/NAME appears only once its hash matches. A file already
// in place with the right hash is not fetched again. Messages name the URL
// without its userinfo and with its query string redacted, since either may
// carry a token.
package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/dmsnet/dms/internal/storage"
)

// ErrChecksum is wrapped by Fetch when the body's SHA-256 is not the one
// asked for.
var ErrChecksum = errors.New("sha256 mismatch")

// ErrTooLarge is wrapped by Fetch when the body is larger than allowed.
var ErrTooLarge = errors.New("body too large")

// DefaultMaxSize bounds a body when Fetch is given 0.
const DefaultMaxSize int64 = 64 << 30

// attempts bounds the requests one Fetch makes.
const attempts = 5

// backoff is the wait before retry n (1, 2, …): 200 ms doubling, at most
// 5 s, with jitter.
func backoff(n int) time.Duration {
	d := 200 * time.Millisecond << (n - 1)
	if d > 5*time.Second {
		d = 5 * time.Second
	}
	return d/2 + rand.N(d/2+1)
}

// Fetch downloads rawURL into dir/file (file "" is the last element of the
// URL's path), verifying its SHA-256 sha256hex (required, 64 hex digits).
// client nil means http.DefaultClient; maxSize 0 means DefaultMaxSize; p
// may be nil. A hash mismatch wraps ErrChecksum, a body over maxSize
// ErrTooLarge; both name the URL redacted. The partial file is kept on
// cancellation and transient failures, so a later Fetch resumes it.
func Fetch(ctx context.Context, client *http.Client, rawURL, sha256hex, dir, file string, maxSize int64, p storage.ProgressFunc) error {
	u, err := checkURL(rawURL)
	if err != nil {
		return err
	}
	shown := Redact(u)
	want, err := checkSHA256(sha256hex)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", shown, err)
	}
	if file == "" {
		file = path.Base(u.Path)
	}
	if err := checkName(file); err != nil {
		return fmt.Errorf("fetch %s: %w", shown, err)
	}
	if maxSize < 0 {
		return fmt.Errorf("fetch %s: negative size limit %d", shown, maxSize)
	}
	if maxSize == 0 {
		maxSize = DefaultMaxSize
	}
	if client == nil {
		client = http.DefaultClient
	}
	if p == nil {
		p = func(storage.Progress) {}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("fetch %s: %w", shown, err)
	}
	final := filepath.Join(dir, file)
	if n, ok := hasHash(final, want); ok {
		p(storage.Progress{Bytes: n, TotalBytes: n, Objects: 1, TotalObjects: 1})
		return nil
	}
	f := &fetch{
		ctx: ctx, client: client, url: u, shown: shown, want: want,
		part: filepath.Join(dir, "."+file+".part"), max: maxSize, p: p,
	}
	if err := f.run(); err != nil {
		if errors.Is(err, ErrChecksum) || errors.Is(err, ErrTooLarge) {
			_ = os.Remove(f.part) // its bytes are of no use to a later Fetch
		}
		return err
	}
	if err := os.Rename(f.part, final); err != nil {
		return fmt.Errorf("fetch %s: %w", shown, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// Redact returns u for messages: without userinfo and fragment, the query
// string replaced by "REDACTED".
func Redact(u *url.URL) string {
	c := *u
	c.User = nil
	c.Fragment, c.RawFragment = "", ""
	if c.RawQuery != "" || c.ForceQuery {
		c.RawQuery, c.ForceQuery = "REDACTED", false
	}
	return c.String()
}

// checkURL parses an http or https URL with a host.
func checkURL(raw string) (*url.URL, error) {
	if strings.IndexFunc(raw, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return nil, errors.New("fetch: the URL holds a space or control character")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the URL; say only what is wrong.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("fetch: bad URL: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("fetch %s: scheme %q is not http or https", Redact(u), u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("fetch %s: the URL has no host", Redact(u))
	}
	return u, nil
}

func checkSHA256(s string) ([]byte, error) {
	if len(s) != 2*sha256.Size {
		return nil, fmt.Errorf("sha256 %q is not 64 hex digits", s)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("sha256 %q is not 64 hex digits", s)
	}
	return b, nil
}

// checkName refuses file names that are not one plain element.
func checkName(name string) error {
	switch {
	case name == "" || name == "." || name == ".." || name == "/":
		return fmt.Errorf("no usable file name (%q): give one", name)
	case strings.ContainsAny(name, `/\`):
		return fmt.Errorf("file name %q holds a slash", name)
	case strings.ContainsRune(name, 0):
		return fmt.Errorf("file name %q holds a NUL", name)
	}
	return nil
}

// hasHash reports whether the file at name has SHA-256 want, and its size.
func hasHash(name string, want []byte) (int64, bool) {
	f, err := os.Open(name)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return 0, false
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	return n, err == nil && string(h.Sum(nil)) == string(want)
}

// fetch is one Fetch under way.
type fetch struct {
	ctx    context.Context
	client *http.Client
	url    *url.URL
	shown  string
	want   []byte
	part   string
	max    int64
	p      storage.ProgressFunc

	out     *os.File
	h       hash.Hash
	off     int64 // bytes in out, all hashed into h
	total   int64 // the body's full size, -1 while unknown
	resumed bool  // out held bytes from before this Fetch
}

// permanent marks an error that retrying will not cure.
type permanent struct{ error }

func (e permanent) Unwrap() error { return e.error }

func (f *fetch) run() error {
	if err := f.open(); err != nil {
		return fmt.Errorf("fetch %s: %w", f.shown, err)
	}
	defer func() {
		if f.out != nil {
			f.out.Close()
		}
	}()
	restarted := false
	var last error
	for n := 0; n < attempts; n++ {
		if n > 0 {
			t := time.NewTimer(backoff(n))
			select {
			case <-f.ctx.Done():
				t.Stop()
				return fmt.Errorf("fetch %s: %w (after %v)", f.shown, f.ctx.Err(), last)
			case <-t.C:
			}
		}
		done, err := f.attempt()
		if err == nil && done {
			resumed := f.resumed
			err = f.finish()
			if errors.Is(err, ErrChecksum) && resumed && !restarted {
				// The kept part may be of an older file: once more from scratch.
				restarted = true
				if err := f.reset(); err != nil {
					return fmt.Errorf("fetch %s: %w", f.shown, err)
				}
				n--
				continue
			}
			if err == nil {
				return nil
			}
		}
		if err == nil {
			continue
		}
		if ctxErr := f.ctx.Err(); ctxErr != nil {
			return fmt.Errorf("fetch %s: %w", f.shown, ctxErr)
		}
		var perm permanent
		if errors.As(err, &perm) {
			return fmt.Errorf("fetch %s: %w", f.shown, perm.error)
		}
		last = err
	}
	return fmt.Errorf("fetch %s: %d attempts: %w", f.shown, attempts, last)
}

// open opens the part file and hashes what it holds.
func (f *fetch) open() error {
	out, err := os.OpenFile(f.part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	f.out, f.h, f.total = out, sha256.New(), -1
	n, err := io.Copy(f.h, out)
	if err != nil {
		return err
	}
	if n > f.max {
		return f.reset()
	}
	f.off, f.resumed = n, n > 0
	return nil
}

// reset empties the part file.
func (f *fetch) reset() error {
	f.h.Reset()
	f.off, f.resumed = 0, false
	if err := f.out.Truncate(0); err != nil {
		return err
	}
	_, err := f.out.Seek(0, io.SeekStart)
	return err
}

// attempt makes one request and appends its body to the part file. done
// reports that the body is complete; an error is transient unless marked
// permanent.
func (f *fetch) attempt() (done bool, err error) {
	req, err := http.NewRequestWithContext(f.ctx, http.MethodGet, f.url.String(), nil)
	if err != nil {
		return false, permanent{errors.New("cannot make a request")}
	}
	if f.off > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(f.off, 10)+"-")
	}
	resp, err := f.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) { // it quotes the URL with its query
			err = ue.Err
		}
		return false, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
		if f.off > 0 {
			if err := f.reset(); err != nil { // no Range support: from scratch
				return false, permanent{err}
			}
		}
		f.total = resp.ContentLength
	case resp.StatusCode == http.StatusPartialContent && f.off > 0:
		start, size, ok := ParseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != f.off {
			if err := f.reset(); err != nil {
				return false, permanent{err}
			}
			return false, fmt.Errorf("range answer %q does not start at %d", resp.Header.Get("Content-Range"), f.off)
		}
		f.total = size
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && f.off > 0:
		if _, size, ok := ParseContentRange(resp.Header.Get("Content-Range")); ok && size == f.off {
			return true, nil // the part was already whole
		}
		if err := f.reset(); err != nil {
			return false, permanent{err}
		}
		return false, errors.New("range not satisfiable: starting again")
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests:
		return false, fmt.Errorf("server answered %s", resp.Status)
	default:
		return false, permanent{fmt.Errorf("server answered %s", resp.Status)}
	}
	if f.total > f.max {
		return false, permanent{fmt.Errorf("%w: %d bytes, more than %d", ErrTooLarge, f.total, f.max)}
	}
	return f.copy(resp.Body)
}

// copy appends body to the part file, hashing it and reporting progress.
func (f *fetch) copy(body io.Reader) (bool, error) {
	total := max(f.total, 0)
	f.p(storage.Progress{Bytes: f.off, TotalBytes: total, TotalObjects: 1})
	buf := make([]byte, 256<<10)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if f.off+int64(n) > f.max {
				_ = f.reset()
				return false, permanent{fmt.Errorf("%w: more than %d bytes", ErrTooLarge, f.max)}
			}
			if _, err := f.out.Write(buf[:n]); err != nil {
				return false, permanent{fmt.Errorf("write %s: %w", filepath.Base(f.part), err)}
			}
			f.h.Write(buf[:n])
			f.off += int64(n)
			f.p(storage.Progress{Bytes: f.off, TotalBytes: max(total, f.off), TotalObjects: 1})
		}
		if rerr == io.EOF {
			if f.total >= 0 && f.off != f.total {
				return false, fmt.Errorf("body ended at %d of %d bytes", f.off, f.total)
			}
			return true, nil
		}
		if rerr != nil {
			return false, fmt.Errorf("read body at %d bytes: %w", f.off, rerr)
		}
	}
}

// finish checks the hash and syncs the part file. On a mismatch the part
// is emptied: its bytes are of no use to a later Fetch.
func (f *fetch) finish() error {
	got := f.h.Sum(nil)
	if string(got) != string(f.want) {
		if err := f.reset(); err != nil {
			return permanent{err}
		}
		return permanent{fmt.Errorf("%w: got %x, want %x", ErrChecksum, got, f.want)}
	}
	f.p(storage.Progress{Bytes: f.off, TotalBytes: f.off, Objects: 1, TotalObjects: 1})
	if err := f.out.Sync(); err != nil {
		return permanent{err}
	}
	err := f.out.Close()
	f.out = nil
	if err != nil {
		return permanent{err}
	}
	return nil
}

// ParseContentRange reads "bytes START-END/SIZE" and returns START and SIZE
// (-1 when SIZE is "*"), or "bytes */SIZE" with START -1.
func ParseContentRange(s string) (start, size int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, sz, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	size = -1
	if sz != "*" {
		n, err := strconv.ParseInt(sz, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, false
		}
		size = n
	}
	if rng == "*" {
		if size < 0 {
			return 0, 0, false
		}
		return -1, size, true
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || first < 0 || last < first || (size >= 0 && last >= size) {
		return 0, 0, false
	}
	return first, size, true
}
