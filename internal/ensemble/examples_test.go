package ensemble

import (
	"os"
	"path/filepath"
	"testing"
)

// TestExamples parses and validates every ensemble in examples/.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "examples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 {
		t.Fatalf("found %d examples, want at least hello, docker-hello, multi and gang", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			s, err := Parse(data)
			if err != nil {
				t.Fatalf("%s:\n%v", f, err)
			}
			if _, err := s.Levels(); err != nil {
				t.Error(err)
			}
		})
	}
}
