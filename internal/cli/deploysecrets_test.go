package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDeploySecrets: dms deploy --secret checks its secrets before it
// contacts the node: each a credentials file, every one the ensemble
// names given, none it does not name; errors name the secret and the file,
// never a value.
func TestDeploySecrets(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	job := write("job.yaml", `version: v1
allocations:
  job:
    executor: docker
    execution: {image: alpine}
    volumes:
      in: {path: /in, kind: s3, mode: in, s3: {bucket: data, credentials: {secret: data-keys}}}
      out: {path: /out, kind: s3, mode: out, s3: {bucket: results, credentials: {secret: results-keys}}}
`)
	const value = "wJalrXUtnFEMIK7MDENGbPxRfiCYzzz"
	good := write("good.env", "access_key_id=AKIAEXAMPLE\nsecret_access_key="+value+"\n")
	bad := write("bad.env", "password "+value+"\n")
	home := filepath.Join(dir, "home") // no node: a deploy that gets past the secrets fails there

	for _, tc := range []struct {
		name  string
		args  []string
		stdin string
		code  int
		want  string
	}{
		{"none given", nil, "", 1, "volume in of allocation job needs the secret data-keys: dms deploy --secret data-keys=FILE; volume out of allocation job needs the secret results-keys: dms deploy --secret results-keys=FILE"},
		{"one missing", []string{"--secret", "data-keys=" + good}, "", 1, "volume out of allocation job needs the secret results-keys: dms deploy --secret results-keys=FILE"},
		{"typo", []string{"--secret", "data-keys=" + good, "--secret", "results-keys=" + good, "--secret", "result-keys=" + good}, "", 1, `secret result-keys is given but no s3 volume's credentials.secret names it (did you mean "results-keys"?)`},
		{"not credentials", []string{"--secret", "data-keys=" + bad, "--secret", "results-keys=" + good}, "", 1, "secret data-keys (" + bad + "): credentials: line 1 is not KEY=VALUE"},
		{"no file", []string{"--secret", "data-keys=" + dir + "/nope", "--secret", "results-keys=" + good}, "", 1, "secret data-keys: read " + dir + "/nope: no such file or directory"},
		{"no equals", []string{"--secret", "data-keys"}, "", 2, `--secret "data-keys": want NAME=FILE (FILE - reads stdin)`},
		{"bad name", []string{"--secret", "Data=" + good}, "", 2, `--secret Data=` + good[:min(len(good), 55)]},
		{"twice", []string{"--secret", "data-keys=" + good, "--secret", "data-keys=" + good}, "", 2, "--secret data-keys is given twice"},
		{"stdin twice", []string{"--secret", "data-keys=-", "--secret", "results-keys=-"}, "access_key_id=A\nsecret_access_key=" + value + "\n", 2, "--secret results-keys=-: stdin is read once, for one secret"},
		{"stdin bad", []string{"--secret", "data-keys=-", "--secret", "results-keys=" + good}, value, 1, "secret data-keys (-): credentials: line 1 is not KEY=VALUE"},
		{"all given, stdin", []string{"--secret", "data-keys=-", "--secret", "results-keys=" + good}, "access_key_id=A\nsecret_access_key=" + value + "\n", 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			args := append([]string{"--home", home, "deploy", "-f", job}, tc.args...)
			code := Main(context.Background(), args, strings.NewReader(tc.stdin), &out, &errb)
			stderr := errb.String()
			if code != tc.code {
				t.Errorf("exit %d, want %d: %s", code, tc.code, stderr)
			}
			if tc.want != "" && !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tc.want)
			}
			if tc.want == "" && strings.Contains(stderr, "secret") {
				t.Errorf("all secrets given, yet stderr = %q", stderr)
			}
			if strings.Contains(stderr, value) || strings.Contains(out.String(), value) {
				t.Errorf("the output quotes the secret: %q", stderr)
			}
		})
	}
}
