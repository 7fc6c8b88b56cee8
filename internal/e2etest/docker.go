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

// BusyboxPath is where Debian's busybox-static installs busybox.
const BusyboxPath = "/bin/busybox"

// BusyboxImage imports a one-binary image of the static busybox at
// BusyboxPath, with a symlink in /bin for each of its applets (sh, nc,
// httpd, ...) and no entrypoint, once per test process: a job's cmd is
// a busybox command line such as ["/bin/sh", "-c", "nc -w 3 10.0.0.1 80"].
// It skips the test when Docker is absent or busybox is not static.
func BusyboxImage(t testing.TB) string {
	t.Helper()
	if !DockerAvailable() {
		t.Skip("no Docker engine answers: docker tests skipped")
	}
	imageMu.Lock()
	defer imageMu.Unlock()
	const key = "busybox"
	if ref, ok := imageBuilt[key]; ok {
		return ref
	}
	data, err := os.ReadFile(BusyboxPath)
	if err != nil {
		t.Skipf("busybox image: %v (install Debian's busybox-static)", err)
	}
	if !bytes.HasPrefix(data, []byte("\x7fELF")) || bytes.Contains(data[:min(len(data), 4096)], []byte("/lib64/ld-linux")) {
		t.Skipf("busybox image: %s is not statically linked (install Debian's busybox-static)", BusyboxPath)
	}
	list, err := exec.Command(BusyboxPath, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	sum := sha256.Sum256(data)
	ref := "dms-e2e/busybox:" + hex.EncodeToString(sum[:6])
	if exec.Command("docker", "image", "inspect", ref).Run() != nil {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
		tw.WriteHeader(&tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777})
		tw.WriteHeader(&tar.Header{Name: "bin/busybox", Mode: 0o755, Size: int64(len(data))})
		tw.Write(data)
		for _, applet := range strings.Fields(string(list)) {
			if applet != "busybox" {
				tw.WriteHeader(&tar.Header{Name: "bin/" + applet, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777})
			}
		}
		tw.Close()
		imp := exec.Command("docker", "import", "-", ref)
		imp.Stdin = &buf
		if out, err := imp.CombinedOutput(); err != nil {
			t.Fatalf("docker import %s: %v\n%s", ref, err, out)
		}
	}
	imageBuilt[key] = ref
	return ref
}
