package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run calls Main in-process and returns exit code, stdout and stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// newHome runs `dms init` in a fresh home and returns its path.
func newHome(t *testing.T) string {
	t.Helper()
	home := filepath.Join(t.TempDir(), "home")
	t.Setenv("DMS_PASSPHRASE", "test-pass")
	if code, _, stderr := run(t, "--home", home, "init"); code != 0 {
		t.Fatalf("dms init: exit %d: %s", code, stderr)
	}
	return home
}

func TestExitCodesAndOneLineErrors(t *testing.T) {
	home := t.TempDir()
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"version", []string{"version"}, 0, ""},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"unknown flag", []string{"version", "--frob"}, 2, "unknown flag: --frob"},
		{"bad output", []string{"-o", "xml", "version"}, 2, `-o "xml": want table, json or yaml`},
		{"extra argument", []string{"version", "x"}, 2, "takes no arguments"},
		{"missing argument", []string{"--home", home, "config", "get"}, 2, "needs 1 argument"},
		{"no home", []string{"--home", home, "key", "list"}, 1, "run `dms init` first"},
		{"bad completion shell", []string{"completion", "tcsh"}, 2, "want bash, zsh, fish or powershell"},
		{"suggestion on one line", []string{"deplo"}, 2, `unknown command "deplo" for "dms"; did you mean "deploy", "deployment" or "deployments"?`},
		{"group refuses unknown subcommand", []string{"deployment", "frob"}, 2, `unknown command "frob" for "dms deployment"; see dms deployment --help`},
		{"group suggests subcommand", []string{"--home", home, "deployment", "statu"}, 2, `unknown command "statu" for "dms deployment"; did you mean "status"?`},
		{"group without subcommand prints help", []string{"deployment"}, 0, ""},
		{"duration flag too large", []string{"deploy", "-f", "x.yaml", "--timeout", "9999999h"}, 2, `--timeout: "9999999h" is too large (at most 2562047h47m16.854775807s)`},
		{"duration flag not a duration", []string{"deploy", "-f", "x.yaml", "--timeout", "soon"}, 2, `--timeout: "soon" is not a duration (examples: 30s, 10m, 1h)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(t, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit = %d, want %d (stderr %q)", code, tt.wantCode, stderr)
			}
			if tt.wantErr == "" {
				if stderr != "" {
					t.Fatalf("stderr = %q, want empty", stderr)
				}
				return
			}
			if !strings.Contains(stderr, tt.wantErr) {
				t.Fatalf("stderr = %q, want it to contain %q", stderr, tt.wantErr)
			}
			if n := strings.Count(stderr, "\n"); n != 1 {
				t.Fatalf("stderr has %d lines, want 1: %q", n, stderr)
			}
		})
	}
}

func TestInitAndKeys(t *testing.T) {
	home := newHome(t)

	code, _, stderr := run(t, "--home", home, "init")
	if code != 1 || !strings.Contains(stderr, "refusing to overwrite") {
		t.Fatalf("second init: exit %d, %q; want refusal", code, stderr)
	}

	t.Setenv("DMS_PASSPHRASE", "") // reading a DID needs no passphrase
	os.Unsetenv("DMS_PASSPHRASE")
	code, out, _ := run(t, "--home", home, "key", "did", "node")
	if code != 0 || !strings.HasPrefix(out, "did:key:z6Mk") {
		t.Fatalf("key did node: exit %d, %q", code, out)
	}
	nodeDID := strings.TrimSpace(out)

	for _, f := range []string{"keys/node.key", "keys/user.key", "api.token", "config.yaml"} {
		st, err := os.Stat(filepath.Join(home, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", f, st.Mode().Perm())
		}
	}

	t.Setenv("DMS_PASSPHRASE", "wrong")
	code, _, stderr = run(t, "--home", home, "key", "check", "node")
	if code != 1 || stderr != "wrong passphrase for key node (read from $DMS_PASSPHRASE)\n" {
		t.Fatalf("wrong passphrase: exit %d, %q", code, stderr)
	}
	t.Setenv("DMS_PASSPHRASE", "test-pass")
	if code, _, stderr := run(t, "--home", home, "key", "check", "node"); code != 0 {
		t.Fatalf("key check: exit %d, %q", code, stderr)
	}

	// Passphrase from a file.
	os.Unsetenv("DMS_PASSPHRASE")
	pf := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(pf, []byte("test-pass\n"), 0o600)
	t.Setenv("DMS_PASSPHRASE_FILE", pf)
	if code, _, stderr := run(t, "--home", home, "key", "new", "extra"); code != 0 {
		t.Fatalf("key new with DMS_PASSPHRASE_FILE: exit %d, %q", code, stderr)
	}
	wrong := filepath.Join(t.TempDir(), "wrong")
	os.WriteFile(wrong, []byte("nope\n"), 0o600)
	t.Setenv("DMS_PASSPHRASE_FILE", wrong)
	code, _, stderr = run(t, "--home", home, "key", "check", "node")
	if want := "wrong passphrase for key node (read from $DMS_PASSPHRASE_FILE=" + wrong + ")\n"; code != 1 || stderr != want {
		t.Fatalf("wrong passphrase from a file: exit %d, %q, want %q", code, stderr, want)
	}
	t.Setenv("DMS_PASSPHRASE_FILE", pf)

	code, out, _ = run(t, "--home", home, "-o", "json", "key", "list")
	var keys []struct{ Name, DID string }
	if code != 0 || json.Unmarshal([]byte(out), &keys) != nil || len(keys) != 3 {
		t.Fatalf("key list -o json: exit %d, %q", code, out)
	}
	if keys[1].Name != "node" || keys[1].DID != nodeDID {
		t.Fatalf("key list = %+v", keys)
	}

	// A truncated key file gets a clear error, never a panic.
	p := filepath.Join(home, "keys", "user.key")
	data, _ := os.ReadFile(p)
	os.WriteFile(p, data[:len(data)/3], 0o600)
	code, _, stderr = run(t, "--home", home, "key", "did", "user")
	if code != 1 || !strings.Contains(stderr, "corrupted or truncated") {
		t.Fatalf("truncated key: exit %d, %q", code, stderr)
	}
}

func TestConfigCommands(t *testing.T) {
	home := t.TempDir()
	tests := []struct {
		args     []string
		wantCode int
		wantOut  string
	}{
		{[]string{"config", "get", "api.listen"}, 0, "127.0.0.1:9999\n"},
		{[]string{"config", "set", "api.listen", "127.0.0.1:7777"}, 0, "api.listen = 127.0.0.1:7777\n"},
		{[]string{"config", "get", "api.listen"}, 0, "127.0.0.1:7777\n"},
		{[]string{"config", "set", "api.listen", "0.0.0.0:7777"}, 1, ""},
		{[]string{"config", "get", "api.listen"}, 0, "127.0.0.1:7777\n"}, // refused set lost nothing
		{[]string{"config", "set", "p2p.listn", "x"}, 1, ""},
		{[]string{"config", "get", "nope"}, 1, ""},
	}
	for _, tt := range tests {
		code, out, stderr := run(t, append([]string{"--home", home}, tt.args...)...)
		if code != tt.wantCode || (tt.wantOut != "" && out != tt.wantOut) {
			t.Fatalf("%v: exit %d, out %q, err %q; want exit %d out %q", tt.args, code, out, stderr, tt.wantCode, tt.wantOut)
		}
	}
	t.Setenv("DMS_API_LISTEN", "127.0.0.1:8888")
	if _, out, _ := run(t, "--home", home, "config", "get", "api.listen"); out != "127.0.0.1:8888\n" {
		t.Fatalf("env override: got %q", out)
	}
	code, out, _ := run(t, "--home", home, "-o", "json", "config", "show")
	var cfg map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &cfg) != nil || cfg["api"] == nil {
		t.Fatalf("config show -o json: exit %d, %q", code, out)
	}
}
