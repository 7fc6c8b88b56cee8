package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmsnet/dms/internal/ensemble"
)

// TestTranslatePartial checks that dms translate refuses to drop a whole
// part unless --allow-partial, and then lists what it dropped, and the
// files that do not travel, at the top of what it writes.
func TestTranslatePartial(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	compose := writeFile(t, dir, "compose.yaml", `services:
  web:
    image: nginx:1.27
    volumes: ["./nginx.conf:/etc/nginx/nginx.conf:ro"]
    deploy: {resources: {limits: {cpus: "0.5", memory: 64M}}}
  api:
    build: ./api
`)
	code, stdout, stderr := run(t, "--home", home, "translate", compose)
	if code != 1 || stdout != "" {
		t.Fatalf("dms translate of a partial file = exit %d, stdout %q; want 1 and nothing written", code, stdout)
	}
	for _, want := range []string{
		"dropped: services.api: not carried over: it has no image",
		"warning: services.web.volumes[0]: ./nginx.conf (mounted at /etc/nginx/nginx.conf) is not shipped",
		"translate " + compose + ": 1 part would be dropped (above, as \"dropped:\"): nothing written; --allow-partial writes the ensemble without them\n",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}

	out := filepath.Join(dir, "out.yaml")
	code, stdout, stderr = run(t, "--home", home, "translate", "--allow-partial", compose, "-o", out)
	if code != 0 || stdout != "" {
		t.Fatalf("dms translate --allow-partial = exit %d, %q, %q", code, stdout, stderr)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	wantHead := "# PARTIAL: dropped 1 part of " + compose + " (dms translate --allow-partial):\n" +
		"#   services.api: not carried over: it has no image (dms does not build images: build and push it, then set image)\n" +
		"# NOT SHIPPED: 1 file the source mounts or renders do not travel with this ensemble:\n" +
		"#   services.web.volumes[0]: ./nginx.conf (mounted at /etc/nginx/nginx.conf) is not shipped: bind mounts of host paths do not travel with the ensemble (build it into the image; use a local volume for outputs)\n" +
		"# Translated from " + compose + " (compose) by dms translate; 2 warnings: review them before deploying.\n"
	if !strings.HasPrefix(string(data), wantHead) {
		t.Errorf("the partial ensemble starts with\n%s\nwant\n%s", data, wantHead)
	}
	s, err := ensemble.Parse(data)
	if err != nil || len(s.Allocations) != 1 {
		t.Errorf("the partial ensemble = %v, %v", s, err)
	}

	// A file that only loses fields, or whose files do not travel, is written.
	full := writeFile(t, dir, "docker-compose.yml", "services:\n  web:\n    image: nginx\n    volumes: [\"./site:/usr/share/nginx/html\"]\n")
	if code, stdout, stderr := run(t, "--home", home, "translate", full); code != 0 || !strings.HasPrefix(stdout, "# NOT SHIPPED: 1 file") {
		t.Errorf("dms translate of a file with a bind mount = exit %d, %q, %q", code, stdout, stderr)
	}
}

// TestTranslateNomadHCL checks that a Nomad job file in HCL is detected
// and translated, that a periodic one is refused unless --allow-partial,
// and that an error names the file and the line.
func TestTranslateNomadHCL(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	job := writeFile(t, dir, "redis.nomad.hcl", `job "redis" {
  group "cache" {
    network {
      port "db" { to = 6379 }
    }
    task "redis" {
      driver = "docker"
      config {
        image = "redis:7"
        ports = ["db"]
      }
      resources {
        cores  = 1
        memory = 256
      }
    }
  }
}
`)
	code, stdout, stderr := run(t, "--home", home, "translate", job)
	if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "# Translated from "+job+" (nomad) by dms translate.\n") || !strings.Contains(stdout, "image: redis:7") {
		t.Errorf("dms translate of HCL = exit %d, %q, %q", code, stdout, stderr)
	}

	periodic := writeFile(t, dir, "nightly.hcl", `job "nightly" {
  type = "batch"
  periodic {
    crons = ["0 3 * * *"]
  }
  group "g" {
    task "t" {
      driver = "docker"
      config { image = "busybox:1" }
      resources {
        cores  = 1
        memory = 64
      }
    }
  }
}
`)
	code, stdout, stderr = run(t, "--home", home, "translate", "--from", "nomad", periodic)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "dropped: job.periodic (line 3): a periodic job's schedule (0 3 * * *) is not carried over") {
		t.Errorf("dms translate of a periodic job = exit %d, %q, %q", code, stdout, stderr)
	}
	code, stdout, _ = run(t, "--home", home, "translate", "--allow-partial", periodic)
	if code != 0 || !strings.HasPrefix(stdout, "# PARTIAL: dropped 1 part of "+periodic) {
		t.Errorf("dms translate --allow-partial of a periodic job = exit %d, %q", code, stdout)
	}

	bad := writeFile(t, dir, "bad.nomad", "job \"x\" {\n  group \"g\" {\n    count = \n  }\n}\n")
	code, stdout, stderr = run(t, "--home", home, "translate", bad)
	if want := "translate " + bad + ": parse nomad job: line 3, column 13: Invalid expression"; code != 1 || stdout != "" || !strings.HasPrefix(stderr, want) || strings.Count(stderr, "\n") != 1 {
		t.Errorf("dms translate of bad HCL = exit %d, %q, %q; want %q", code, stdout, stderr, want)
	}
}

// runStdin is run with data on standard input.
func runStdin(t *testing.T, data string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, strings.NewReader(data), &out, &errb)
	return code, out.String(), errb.String()
}

// TestTranslateStdin checks that standard input is detected and called so.
func TestTranslateStdin(t *testing.T) {
	home := t.TempDir()
	code, stdout, stderr := runStdin(t, "services:\n  web: {image: nginx}\n  api: {build: .}\n", "--home", home, "translate", "-")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "translate standard input: 1 part would be dropped") {
		t.Errorf("dms translate - = exit %d, %q, %q", code, stdout, stderr)
	}
	code, stdout, stderr = runStdin(t, "services:\n  web: {image: nginx}\n", "--home", home, "translate", "-")
	if code != 0 || !strings.Contains(stdout, "# Translated from standard input (compose) by dms translate") {
		t.Errorf("dms translate - = exit %d, %q, %q", code, stdout, stderr)
	}
}
