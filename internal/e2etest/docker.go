package e2etest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	imageMu    sync.Mutex
	imageBuilt = map[string]string{} // package → image reference
)

// DockerAvailable reports whether a Docker engine answers.
func DockerAvailable() bool {
	return exec.Command("docker", "version", "--format", "{{.Server.Version}}").Run() == nil
}

// DockerImage builds the Go package pkg (relative to the module root, e.g.
// Workload) as a static Linux binary and imports it as a one-file image
// (no registry needed: docker import of a tar), once per test process. The
// binary is /<name> and the image's entrypoint; the tag is a hash of the
// binary, so an unchanged program is not imported again. It skips the test
// when Docker is absent.
func DockerImage(t testing.TB, pkg string) string {
	t.Helper()
	if !DockerAvailable() {
		t.Skip("no Docker engine answers: docker tests skipped")
	}
	imageMu.Lock()
	defer imageMu.Unlock()
	if ref, ok := imageBuilt[pkg]; ok {
		return ref
	}
	name := filepath.Base(strings.TrimSuffix(pkg, "/"))
	dir := t.TempDir()
	bin := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, pkg)
	cmd.Dir = ModuleRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	ref := fmt.Sprintf("dms-e2e/%s:%s", name, hex.EncodeToString(sum[:6]))
	if exec.Command("docker", "image", "inspect", ref).Run() != nil {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(data))})
		tw.Write(data)
		tw.Close()
		imp := exec.Command("docker", "import", "--change", fmt.Sprintf(`ENTRYPOINT ["/%s"]`, name), "-", ref)
		imp.Stdin = &buf
		if out, err := imp.CombinedOutput(); err != nil {
			t.Fatalf("docker import %s: %v\n%s", ref, err, out)
		}
	}
	imageBuilt[pkg] = ref
	return ref
}
