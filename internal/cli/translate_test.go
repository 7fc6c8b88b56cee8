package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmsnet/dms/internal/ensemble"
)

func TestTranslateCmd(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	compose := writeFile(t, dir, "compose.yaml", `services:
  web:
    image: nginx:${NGINX_TAG:-1.27}
    ports: ["8080:80"]
    privileged: true
    deploy: {resources: {limits: {cpus: "0.5", memory: 64M}}}
`)
	code, stdout, stderr := run(t, "--home", home, "translate", "--from", "compose", compose)
	if code != 0 {
		t.Fatalf("dms translate = exit %d, %s", code, stderr)
	}
	if want := "warning: services.web.privileged: not carried over\n"; stderr != want {
		t.Errorf("dms translate stderr = %q, want %q", stderr, want)
	}
	if !strings.HasPrefix(stdout, "# Translated from "+compose+" (compose) by dms translate; 1 warning: review them before deploying.\n") {
		t.Errorf("dms translate output lacks its header:\n%s", stdout)
	}
	s, err := ensemble.Parse([]byte(stdout))
	if err != nil {
		t.Fatalf("dms translate output does not parse: %v\n%s", err, stdout)
	}
	if web := s.Allocations["web"]; web.Execution.Image != "nginx:1.27" || web.Ports[0].Public != 8080 {
		t.Errorf("translated web = %+v", web)
	}

	// The environment feeds ${VAR}; -o writes a file.
	t.Setenv("NGINX_TAG", "1.26")
	out := filepath.Join(dir, "out.yaml")
	code, stdout, _ = run(t, "--home", home, "translate", "--from", "compose", compose, "-o", out)
	data, err := os.ReadFile(out)
	if code != 0 || stdout != "" || err != nil || !strings.Contains(string(data), "image: nginx:1.26") {
		t.Errorf("dms translate -o = exit %d, stdout %q, file %q (%v)", code, stdout, data, err)
	}
	if code, stdout, _ := run(t, "--home", home, "validate", "-f", out); code != 0 {
		t.Errorf("dms validate of the translation = exit %d: %s", code, stdout)
	}

	nomad := writeFile(t, dir, "job.json", `{"Job": {"ID": "x", "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "docker", "Config": {"image": "alpine:3.20"}, "Resources": {"Cores": 1, "MemoryMB": 64}}]}]}}`)
	if code, stdout, stderr := run(t, "--home", home, "translate", "--from", "nomad", nomad); code != 0 || stderr != "" || !strings.Contains(stdout, "image: alpine:3.20") {
		t.Errorf("dms translate --from nomad = exit %d, %q, %q", code, stdout, stderr)
	}
	k8s := writeFile(t, dir, "pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {restartPolicy: Never, containers: [{name: c, image: busybox, resources: {limits: {cpu: 100m, memory: 32Mi}}}]}\n")
	if code, stdout, stderr := run(t, "--home", home, "translate", "--from", "kubernetes", k8s); code != 0 || stderr != "" || !strings.Contains(stdout, "type: task") {
		t.Errorf("dms translate --from kubernetes = exit %d, %q, %q", code, stdout, stderr)
	}

	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"translate", writeFile(t, dir, "notes.yaml", "foo: bar\n")}, 1},
		{[]string{"translate", "--from", "swarm", compose}, 2},
		{[]string{"translate", "--from", "compose"}, 2},
		{[]string{"translate", "--from", "compose", compose, "extra"}, 2},
		{[]string{"translate", "--from", "nomad", compose}, 1},
		{[]string{"translate", "--from", "compose", filepath.Join(dir, "none.yaml")}, 1},
	} {
		code, stdout, stderr := run(t, append([]string{"--home", home}, tc.args...)...)
		if code != tc.code || stdout != "" || strings.Count(stderr, "\n") != 1 {
			t.Errorf("dms %v = exit %d, stdout %q, stderr %q; want exit %d and one line", tc.args, code, stdout, stderr, tc.code)
		}
	}
}
