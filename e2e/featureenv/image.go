//go:build linux

package featureenv

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// Image names: imageRepo:<first 16 hex digits of the binary's SHA-256>.
const (
	imageRepo  = "dms-featureenv"
	binaryPath = "/usr/local/bin/dms" // in the image
	homePath   = "/home/dms"          // in the image: each node's home, bind-mounted
)

// staticBinary returns the dms binary to put in the image: cfg's, or
// $DMS_FEATUREENV_BIN, or one built from this checkout with CGO_ENABLED=0
// into dir. It must be statically linked: the image holds nothing else.
func staticBinary(ctx context.Context, path, dir string, logf func(string, ...any)) (string, error) {
	if path == "" {
		path = os.Getenv("DMS_FEATUREENV_BIN")
	}
	if path == "" {
		_, file, _, ok := runtime.Caller(0)
		if !ok {
			return "", fmt.Errorf("find the module root: no caller information (give Config.Binary)")
		}
		root := filepath.Join(filepath.Dir(file), "..", "..")
		path = filepath.Join(dir, "dms")
		start := time.Now()
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", path, "./cmd/dms")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("build a static dms (CGO_ENABLED=0 go build ./cmd/dms in %s): %w\n%s", root, err, out)
		}
		logf("featureenv: built a static dms in %s", time.Since(start).Round(100*time.Millisecond))
	}
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("dms binary %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("dms binary %s is dynamically linked: the node image holds nothing but dms; build it with CGO_ENABLED=0", path)
		}
	}
	return path, nil
}

// ensureImage returns the image holding bin, importing it unless an image
// of the same content exists, and removes the images of other contents
// (older builds) that no container uses.
func ensureImage(ctx context.Context, cli *client.Client, bin string, logf func(string, ...any)) (string, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", bin, err)
	}
	sum := sha256.Sum256(data)
	ref := imageRepo + ":" + hex.EncodeToString(sum[:8])
	if _, err := cli.ImageInspect(ctx, ref); err == nil {
		return ref, nil
	} else if !cerrdefs.IsNotFound(err) {
		return "", fmt.Errorf("inspect image %s: %w", ref, err)
	}
	start := time.Now()
	var tarball bytes.Buffer
	if err := imageTar(&tarball, data); err != nil {
		return "", err
	}
	resp, err := cli.ImageImport(ctx, client.ImageImportSource{Source: &tarball, SourceName: "-"}, ref, client.ImageImportOptions{
		Changes: []string{
			`ENTRYPOINT ["` + binaryPath + `"]`,
			"ENV DMS_HOME=" + homePath,
			"LABEL " + labelImage + "=1",
		},
	})
	if err != nil {
		return "", fmt.Errorf("import image %s: %w", ref, err)
	}
	out, err := io.ReadAll(resp)
	resp.Close()
	if err != nil {
		return "", fmt.Errorf("import image %s: %w", ref, err)
	}
	if bytes.Contains(out, []byte(`"error"`)) {
		return "", fmt.Errorf("import image %s: %s", ref, strings.TrimSpace(string(out)))
	}
	logf("featureenv: image %s imported in %s", ref, time.Since(start).Round(100*time.Millisecond))

	// Older builds: remove those no container uses (a concurrent run's
	// containers keep theirs; the removal fails and is ignored).
	f := client.Filters{}.Add("reference", imageRepo)
	list, err := cli.ImageList(ctx, client.ImageListOptions{Filters: f})
	if err == nil {
		for _, im := range list.Items {
			if im.Containers > 0 || (len(im.RepoTags) == 1 && im.RepoTags[0] == ref) {
				continue
			}
			for _, tag := range im.RepoTags {
				if tag != ref {
					cli.ImageRemove(ctx, tag, client.ImageRemoveOptions{})
				}
			}
		}
	}
	return ref, nil
}

// imageTar writes the image's file system: dms, a home for the node's
// files (bind-mounted over), /tmp.
func imageTar(w io.Writer, bin []byte) error {
	tw := tar.NewWriter(w)
	mod := time.Unix(0, 0)
	for _, h := range []*tar.Header{
		{Name: "usr/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mod},
		{Name: "usr/local/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mod},
		{Name: "usr/local/bin/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mod},
		{Name: "home/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mod},
		{Name: "home/dms/", Typeflag: tar.TypeDir, Mode: 0o700, ModTime: mod},
		{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777, ModTime: mod},
	} {
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("image tar: %w", err)
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(binaryPath, "/"), Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin)), ModTime: mod}); err != nil {
		return fmt.Errorf("image tar: %w", err)
	}
	if _, err := tw.Write(bin); err != nil {
		return fmt.Errorf("image tar: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("image tar: %w", err)
	}
	return nil
}
