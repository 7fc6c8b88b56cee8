//go:build integration

package resource

import (
	"os"
	"slices"
	"testing"
)

// TestDetectRealDocker checks the Docker probe against the engine of this
// machine, when there is one.
func TestDetectRealDocker(t *testing.T) {
	const sock = "/var/run/docker.sock"
	if _, err := os.Stat(sock); err != nil {
		t.Skip("no Docker engine socket at " + sock)
	}
	m, err := Detect(t.Context(), DetectConfig{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Docker.Reachable || m.Docker.APIVersion == "" || !slices.Contains(m.Executors, ExecutorDocker) {
		t.Fatalf("Detect = docker %+v, executors %v, want the engine reachable", m.Docker, m.Executors)
	}
}
