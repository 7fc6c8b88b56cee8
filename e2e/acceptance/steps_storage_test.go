package acceptance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cucumber/godog"

	"github.com/dmsnet/dms/internal/storage/s3/s3test"
)

// Steps of storage: one real S3 server (versitygw) per feature and its
// buckets, a web server of files for url volumes, ensembles deployed with
// the server's keys as a secret, and where those keys must never show.
//
// Ensembles may name <s3> (the S3 server's endpoint), <web> (the web
// server's URL) and <sha256 of FILE> (the SHA-256 of a file the web server
// serves).

// s3Server is the feature's S3 server.
func s3Server(w *World) *s3test.Server {
	return featureValue(w.Feature, "s3", func(t testing.TB) *s3test.Server { return s3test.Start(t) })
}

// webFiles is the scenario's web server and its files.
type webFiles struct {
	srv   *httptest.Server
	files map[string][]byte
}

var storagePlaceholder = regexp.MustCompile(`<s3>|<web>|<sha256 of ([^>]+)>`)

// expandStorage replaces the storage placeholders of an ensemble.
func (w *World) expandStorage(s string) string {
	return storagePlaceholder.ReplaceAllStringFunc(s, func(m string) string {
		switch {
		case m == "<s3>":
			return s3Server(w).Endpoint
		case m == "<web>":
			web, ok := w.vals["web"].(*webFiles)
			if !ok {
				w.T.Fatal("<web>: no web server in this scenario")
			}
			return web.srv.URL
		}
		name := storagePlaceholder.FindStringSubmatch(m)[1]
		web, ok := w.vals["web"].(*webFiles)
		if !ok || web.files[name] == nil {
			w.T.Fatalf("%s: the web server has no file %s", m, name)
		}
		sum := sha256.Sum256(web.files[name])
		return hex.EncodeToString(sum[:])
	})
}

// makeBucket creates a bucket of the feature's server unless it exists.
func (w *World) makeBucket(name string) {
	srv := s3Server(w)
	if _, ok := w.Feature.vals["bucket/"+name]; ok {
		return
	}
	srv.MakeBucket(name)
	w.Feature.vals["bucket/"+name] = true
}

// secretKeyIn returns the places (of what) that hold the S3 secret key.
func secretKeyIn(w *World, what string, b []byte) []string {
	if key := s3Server(w).Credentials.SecretAccessKey; key != "" && bytes.Contains(b, []byte(key)) {
		return []string{what}
	}
	return nil
}

func storageSteps(sc *godog.ScenarioContext) {
	sc.Step(`^an S3 server$`, func(ctx context.Context) error {
		s3Server(worldOf(ctx))
		return nil
	})
	sc.Step(`^the bucket "([^"]+)"$`, func(ctx context.Context, bucket string) error {
		worldOf(ctx).makeBucket(bucket)
		return nil
	})
	sc.Step(`^the bucket "([^"]+)" holding "([^"]+)" with "(.*)"$`, func(ctx context.Context, bucket, key, text string) error {
		w := worldOf(ctx)
		w.makeBucket(bucket)
		s3Server(w).Put(bucket, key, []byte(unquote(text)))
		return nil
	})
	sc.Step(`^the bucket "([^"]+)" holds "([^"]+)" with "(.*)"$`, func(ctx context.Context, bucket, key, want string) error {
		w := worldOf(ctx)
		key = w.expand(key)
		got, err := s3Server(w).Get(bucket, key)
		if err != nil {
			return fmt.Errorf("bucket %s, key %s: %w", bucket, key, err)
		}
		if string(got) != unquote(want) {
			return fmt.Errorf("bucket %s, key %s holds %q, want %q", bucket, key, got, want)
		}
		return nil
	})
	sc.Step(`^a web server with the file "([^"]+)" holding "(.*)"$`, func(ctx context.Context, name, text string) error {
		w := worldOf(ctx)
		content := []byte(strings.ReplaceAll(unquote(text), `\n`, "\n"))
		web := &webFiles{files: map[string][]byte{name: content}}
		web.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			b, ok := web.files[strings.TrimPrefix(r.URL.Path, "/")]
			if !ok {
				http.NotFound(rw, r)
				return
			}
			http.ServeContent(rw, r, name, time.Time{}, bytes.NewReader(b))
		}))
		w.T.Cleanup(web.srv.Close)
		w.vals["web"] = web
		return nil
	})
	sc.Step(`^([a-z]+) deploys(?: with the S3 keys as the secret "([^"]+)")? the ensemble:$`, func(ctx context.Context, orch, secret string, doc *godog.DocString) error {
		w := worldOf(ctx)
		var args []string
		if secret != "" {
			keys := s3Server(w).Credentials
			f := w.writeFile("secret-"+secret+".env", string(keys.MarshalSecret()))
			args = append(args, "--secret", secret+"="+f)
		}
		w.deploy(orch, w.expandStorage(doc.Content), args...)
		return nil
	})
	sc.Step(`^within (\d+) seconds the logs of "([^"]+)" hold the lines:$`, func(ctx context.Context, secs, alloc string, doc *godog.DocString) error {
		want := strings.TrimSpace(doc.Content) + "\n"
		if out, ok := worldOf(ctx).logsShow(alloc, seconds(secs), func(out string) bool { return strings.Contains(out, want) }); !ok {
			return fmt.Errorf("the logs of %s lack the lines\n%s\nthey are:\n%s", alloc, want, tail(out, 20))
		}
		return nil
	})
	sc.Step("^the S3 secret key is in none of ((?:`dms [^`]+`(?:, )?)+)$", func(ctx context.Context, list string) error {
		w := worldOf(ctx)
		orch, _ := w.vals["orchestrator"].(string)
		var found []string
		for _, m := range regexp.MustCompile("`dms ([^`]+)`").FindAllStringSubmatch(list, -1) {
			r := w.run(orch, m[1])
			if r.Code != 0 {
				return fmt.Errorf("dms %s: %s", m[1], r)
			}
			found = append(found, secretKeyIn(w, "dms "+m[1], []byte(r.Stdout+r.Stderr))...)
		}
		if len(found) > 0 {
			return fmt.Errorf("the secret key shows in %s", strings.Join(found, ", "))
		}
		return nil
	})
	sc.Step(`^the S3 secret key is in no file of ([a-z]+)'s or ([a-z]+)'s node$`, func(ctx context.Context, a, b string) error {
		w := worldOf(ctx)
		var found []string
		for _, name := range []string{a, b} {
			root := netOf(w).home(name).Dir
			err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
				if err != nil || !d.Type().IsRegular() {
					return err
				}
				data, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(root, path)
				found = append(found, secretKeyIn(w, name+":"+rel, data)...)
				return nil
			})
			if err != nil {
				return err
			}
		}
		if len(found) > 0 {
			return fmt.Errorf("the secret key is in clear in %s", strings.Join(found, ", "))
		}
		return nil
	})
	sc.Step(`^the allocation "([^"]+)" failed with a message containing "([^"]+)" and "([^"]+)"$`, func(ctx context.Context, name, a, b string) error {
		w := worldOf(ctx)
		d := w.deployment()
		al, err := w.alloc(d, name)
		if err != nil {
			return err
		}
		msg := al.Message + " | " + d.Message
		if al.State != "failed" || !strings.Contains(msg, a) || !strings.Contains(msg, b) {
			return fmt.Errorf("allocation %s is %s (%s), want failed with %q and %q", name, al.State, msg, a, b)
		}
		return nil
	})
	sc.Step("^([a-z]+)'s node answers `dms ([^`]+)`$", func(ctx context.Context, name, line string) error {
		w := worldOf(ctx)
		if r := w.run(name, line); r.Code != 0 {
			return fmt.Errorf("%s's node does not answer: %s", name, r)
		}
		return nil
	})
	sc.Step(`^the logs of "([^"]+)" show that a write (was refused as read-only|failed with ENOSPC)$`, func(ctx context.Context, alloc, how string) error {
		// Linux says "read-only file system", Go on wasip1 "Read-only …".
		want := map[string]string{"was refused as read-only": "read-only file system", "failed with ENOSPC": "no space left on device"}[how]
		if out, ok := worldOf(ctx).logsShow(alloc, settle, func(out string) bool { return strings.Contains(strings.ToLower(out), want) }); !ok {
			return fmt.Errorf("the logs of %s do not say %q:\n%s", alloc, want, tail(out, 20))
		}
		return nil
	})
	sc.Step(`^the file "([^"]+)" has (\d+) bytes$`, func(ctx context.Context, name string, n int64) error {
		w := worldOf(ctx)
		fi, err := os.Stat(w.Path(name))
		if err != nil {
			return err
		}
		if fi.Size() != n {
			return fmt.Errorf("%s has %d bytes, want %d", name, fi.Size(), n)
		}
		return nil
	})
}
