package ensemble

import (
	"reflect"
	"strings"
	"testing"
)

// volumeSpec is an ensemble of one docker allocation with the volumes
// given (YAML lines indented under volumes:, from line 6).
func volumeSpec(volumes string) string {
	return "version: v1\nallocations:\n  job:\n    executor: docker\n    execution: {image: alpine}\n    volumes:\n" + volumes
}

func TestVolumeValidation(t *testing.T) {
	const p = "allocations.job.volumes."
	for _, tc := range []struct {
		name    string
		volumes string
		want    []string
	}{
		{"local scratch", "      tmp: {path: /tmp/x}\n", nil},
		{"local out with size", "      res: {path: /out, mode: out, size: 1GiB}\n", nil},
		{"s3 in with secret", "      data: {path: /in, kind: s3, mode: in, s3: {bucket: my-data, prefix: sets/a/, credentials: {secret: data-keys}}}\n", nil},
		{"s3 inout to an endpoint", "      data: {path: /w, kind: s3, mode: inout, s3: {bucket: b.example, endpoint: \"http://127.0.0.1:7070\", region: eu-west-1, sync_every: 30s, credentials: {provider: ops}}}\n", nil},
		{"s3 in read_only explicitly", "      data: {path: /in, kind: s3, mode: in, read_only: true, s3: {bucket: abc}}\n", nil},
		{"url", "      set: {path: /set, kind: url, url: \"https://example.com/d/set.tar?v=2\", sha256: " + strings.Repeat("ab", 32) + ", file: set.tar}\n", nil},
		{"url in on the wasm executor", "      set: {path: /set, kind: url, mode: in, url: \"http://h/f\", sha256: " + strings.Repeat("0", 64) + "}\n", nil},

		{"local mode in", "      a: {path: /a, mode: in}\n", []string{
			p + "a.mode: a local volume has no mode in (only out: a result to fetch; omit it for a scratch directory) (line 7)"}},
		{"local with s3 fields", "      a: {path: /a, s3: {bucket: abc}, url: \"http://h/x\", sha256: x, file: f}\n", []string{
			p + "a.file: not used by a local volume (a url volume's) (line 7)",
			p + "a.s3: not used by a local volume (an s3 volume's) (line 7)",
			p + "a.sha256: not used by a local volume (a url volume's) (line 7)",
			p + "a.url: not used by a local volume (a url volume's) (line 7)"}},
		{"local small size", "      a: {path: /a, size: 4KiB}\n", []string{
			p + "a.size: 4KiB is less than 1MiB (line 7)"}},
		{"local zero size", "      a: {path: /a, size: 0}\n", []string{
			p + "a.size: 0B is less than 1MiB (line 7)"}},
		{"local out read-only", "      a: {path: /a, mode: out, read_only: true}\n", []string{
			p + "a.read_only: an out volume must be writable (the job writes its results there) (line 7)"}},
		{"s3 without block or mode", "      a: {path: /a, kind: s3}\n", []string{
			p + "a.mode: missing (an s3 volume needs a mode: in, out or inout) (line 7)",
			p + "a.s3: missing (an s3 volume needs s3: {bucket: ...}) (line 7)"}},
		{"s3 without bucket", "      a: {path: /a, kind: s3, mode: in, s3: {prefix: x/}}\n", []string{
			p + "a.s3.bucket: missing (line 7)"}},
		{"s3 bad bucket", "      a: {path: /a, kind: s3, mode: in, s3: {bucket: My_Bucket}}\n", []string{
			p + `a.s3.bucket: "My_Bucket" is not a bucket name (3 to 63 lower-case letters, digits, '.' and '-', starting and ending with a letter or digit) (line 7)`}},
		{"s3 bucket too short", "      a: {path: /a, kind: s3, mode: in, s3: {bucket: ab}}\n", []string{
			p + `a.s3.bucket: "ab" is not a bucket name (3 to 63 lower-case letters, digits, '.' and '-', starting and ending with a letter or digit) (line 7)`}},
		{"s3 bucket double dot", "      a: {path: /a, kind: s3, mode: in, s3: {bucket: a..b}}\n", []string{
			p + `a.s3.bucket: "a..b" is not a bucket name (no two dots in a row) (line 7)`}},
		{"s3 out read-only", "      a: {path: /a, kind: s3, mode: out, read_only: true, s3: {bucket: abc}}\n", []string{
			p + "a.read_only: an out volume must be writable (what the job writes is uploaded) (line 7)"}},
		{"s3 bad mode", "      a: {path: /a, kind: s3, mode: both, s3: {bucket: abc}}\n", []string{
			p + `a.mode: unknown value "both" (want in, out or inout) (line 7)`}},
		{"s3 endpoint with path", "      a: {path: /a, kind: s3, mode: in, s3: {bucket: abc, endpoint: \"https://h/bucket\"}}\n", []string{
			p + `a.s3.endpoint: "https://h/bucket" is not an endpoint (http(s)://host[:port]): no path or query (the bucket is given apart) (line 7)`}},
		{"s3 endpoint with password", "      a: {path: /a, kind: s3, mode: in, s3: {bucket: abc, endpoint: \"https://AKID:hunter2@h\"}}\n", []string{
			p + "a.s3.endpoint: the address has a user name or password (give credentials as a secret, not in the address) (line 7)"}},
		{"s3 endpoint not http", "      a: {path: /a, kind: s3, mode: in, s3: {bucket: abc, endpoint: \"ftp://h\"}}\n", []string{
			p + `a.s3.endpoint: "ftp://h" is not an endpoint (http(s)://host[:port]): the scheme must be http or https (line 7)`}},
		{"s3 endpoint no scheme", "      a: {path: /a, kind: s3, mode: in, s3: {bucket: abc, endpoint: \"minio:9000\"}}\n", []string{
			p + `a.s3.endpoint: "minio:9000" is not an endpoint (http(s)://host[:port]) (line 7)`}},
		{"s3 prefix", "      a: {path: /a, kind: s3, mode: in, s3: {bucket: abc, prefix: /x}}\n      b: {path: /b, kind: s3, mode: in, s3: {bucket: abc, prefix: x/../y}}\n", []string{
			p + `a.s3.prefix: "/x" starts with / (a key prefix is relative to the bucket) (line 7)`,
			p + `b.s3.prefix: "x/../y" has a .. element (line 8)`}},
		{"s3 sync_every", "      a: {path: /a, kind: s3, mode: in, s3: {bucket: abc, sync_every: 1m}}\n      b: {path: /b, kind: s3, mode: out, s3: {bucket: abc, sync_every: 100ms}}\n", []string{
			p + "a.s3.sync_every: only for mode out or inout (an in volume is never uploaded) (line 7)",
			p + "b.s3.sync_every: 100ms is shorter than 1s (line 8)"}},
		{"s3 credentials", "      a: {path: /a, kind: s3, mode: in, s3: {bucket: abc, credentials: {secret: k, provider: o}}}\n      b: {path: /b, kind: s3, mode: in, s3: {bucket: abc, credentials: {}}}\n      c: {path: /c, kind: s3, mode: in, s3: {bucket: abc, credentials: {secret: My_Keys}}}\n", []string{
			p + "a.s3.credentials: want one of secret or provider, got both (line 7)",
			p + "b.s3.credentials: want one of secret (given at deploy time) or provider (configured by the provider's operator); omit credentials for anonymous access (line 8)",
			p + `c.s3.credentials.secret: "My_Keys" is not a valid name (lower-case letters, digits and '-', starting and ending with a letter or digit) (line 9)`}},
		{"s3 with url fields", "      a: {path: /a, kind: s3, mode: in, url: \"http://h/f\", s3: {bucket: abc}}\n", []string{
			p + "a.url: not used by an s3 volume (a url volume's) (line 7)"}},
		{"url missing", "      a: {path: /a, kind: url}\n", []string{
			p + "a.sha256: missing (a url volume needs the file's SHA-256, 64 hex digits) (line 7)",
			p + "a.url: missing (a url volume needs the address of its file) (line 7)"}},
		{"url bad", "      a: {path: /a, kind: url, mode: out, url: \"file:///etc/passwd\", sha256: abc, file: ../x, size: 1GiB, s3: {bucket: abc}}\n", []string{
			p + `a.file: "../x" is not a plain file name (no slash) (line 7)`,
			p + "a.mode: a url volume is an input: mode in or none, not out (line 7)",
			p + "a.s3: not used by a url volume (an s3 volume's) (line 7)",
			p + `a.sha256: "abc" is not a SHA-256 (64 hex digits) (line 7)`,
			p + "a.size: not used by a url volume (its size is the file's) (line 7)",
			p + `a.url: "file:///etc/passwd" is not an http(s) URL (line 7)`}},
		{"url file dots", "      a: {path: /a, kind: url, url: \"https://h/f\", sha256: " + strings.Repeat("a", 64) + ", file: ..}\n", []string{
			p + `a.file: ".." is not a file name (line 7)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := problems(t, volumeSpec(tc.volumes))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

// TestVolumeDefaults: inputs are read-only, the region defaults.
func TestVolumeDefaults(t *testing.T) {
	s, err := Parse([]byte(volumeSpec("      in: {path: /in, kind: s3, mode: in, s3: {bucket: abc}}\n      out: {path: /out, kind: s3, mode: out, s3: {bucket: abc}}\n      set: {path: /set, kind: url, url: \"https://h/f\", sha256: " + strings.Repeat("a", 64) + "}\n      tmp: {path: /tmp}\n")))
	if err != nil {
		t.Fatal(err)
	}
	vols := s.Allocations["job"].Volumes
	for name, want := range map[string]bool{"in": true, "out": false, "set": true, "tmp": false} {
		if got := vols[name].ReadOnly; got != want {
			t.Errorf("volume %s: ReadOnly = %v, want %v", name, got, want)
		}
	}
	if got := vols["in"].S3.Region; got != "us-east-1" {
		t.Errorf("region = %q, want us-east-1", got)
	}
	if got := vols["tmp"].Kind; got != Local {
		t.Errorf("kind = %q, want local", got)
	}
}

// TestVolumeValidationInGo: a spec built in Go gets the same checks.
func TestVolumeValidationInGo(t *testing.T) {
	s := &Spec{Version: Version, Allocations: map[string]Allocation{"job": {
		Executor: Wasm, Execution: Execution{Module: "sha256:" + strings.Repeat("a", 64)},
		Volumes: map[string]Volume{"out": {Path: "/out", Kind: S3, Mode: ModeOut, S3: &S3Volume{Bucket: "BAD"}}},
	}}}
	s.SetDefaults()
	err := s.Validate()
	if err == nil || !strings.Contains(err.Error(), `allocations.job.volumes.out.s3.bucket: "BAD" is not a bucket name`) {
		t.Errorf("Validate = %v, want the bucket refused", err)
	}
}

func TestCheckSecrets(t *testing.T) {
	src := volumeSpec(`      in: {path: /in, kind: s3, mode: in, s3: {bucket: abc, credentials: {secret: data-keys}}}
      out: {path: /out, kind: s3, mode: out, s3: {bucket: abc, credentials: {secret: results-keys}}}
      ops: {path: /ops, kind: s3, mode: out, s3: {bucket: abc, credentials: {provider: ops}}}
      also: {path: /also, kind: s3, mode: in, s3: {bucket: abc, credentials: {secret: data-keys}}}
`)
	s, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []SecretUse{{"data-keys", "job", "also"}, {"data-keys", "job", "in"}, {"results-keys", "job", "out"}}
	if got := s.SecretUses(); !reflect.DeepEqual(got, want) {
		t.Errorf("SecretUses = %v, want %v", got, want)
	}
	for _, tc := range []struct {
		name  string
		given []string
		want  string
	}{
		{"all", []string{"data-keys", "results-keys"}, ""},
		{"one missing", []string{"data-keys"}, "volume out of allocation job needs the secret results-keys: dms deploy --secret results-keys=FILE"},
		{"none", nil, "volume also of allocation job needs the secret data-keys: dms deploy --secret data-keys=FILE; volume out of allocation job needs the secret results-keys: dms deploy --secret results-keys=FILE"},
		{"typo", []string{"data-keys", "results-key"}, `volume out of allocation job needs the secret results-keys: dms deploy --secret results-keys=FILE; secret results-key is given but no s3 volume's credentials.secret names it (did you mean "results-keys"?)`},
		{"extra", []string{"data-keys", "results-keys", "zzz"}, "secret zzz is given but no s3 volume's credentials.secret names it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.CheckSecrets(tc.given)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("CheckSecrets(%q) = %q, want %q", tc.given, got, tc.want)
			}
		})
	}
}
