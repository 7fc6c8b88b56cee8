package translate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmsnet/dms/internal/ensemble"
)

// TestRealWorld translates files of public projects (testdata/realworld,
// sources and licenses in its README.md), each told apart by Detect, and
// compares the result with its golden file (go test -run TestRealWorld
// -rewrite updates them). Each golden shows what is faithful, what is lost,
// dropped or not shipped, or the error.
func TestRealWorld(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("testdata", "realworld", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	inputs, _ := filepath.Glob(filepath.Join("testdata", "realworld", "*"))
	n := 0
	for _, in := range inputs {
		base := filepath.Base(in)
		if strings.HasSuffix(in, ".golden") || base == "README.md" {
			continue
		}
		n++
		t.Run(base, func(t *testing.T) {
			if !strings.Contains(string(readme), "`"+base+"`") {
				t.Errorf("%s is not in testdata/realworld/README.md (name its source and license)", base)
			}
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			format, err := Detect(base, data)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[string]Format{"compose": Compose, "k8s": Kubernetes, "nomad": Nomad}[strings.SplitN(base, "-", 2)[0]]; format != want {
				t.Errorf("Detect(%s) = %s, want %s", base, format, want)
			}
			// Detect by content alone too.
			if f, err := Detect("input", data); err != nil || f != format {
				t.Errorf("Detect by content = %s, %v; want %s", f, err, format)
			}
			s, ws, err := Translate(format, base, data, nil)
			got := "# format: " + string(format) + "\n" + render(s, ws, err)
			golden := strings.TrimSuffix(in, filepath.Ext(in)) + ".golden"
			if *rewrite {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			} else if want, err := os.ReadFile(golden); err != nil || string(want) != got {
				t.Errorf("%s differs from %s (run with -rewrite to update):\n%s", in, golden, got)
			}
			if s != nil {
				out, _ := ensemble.Marshal(s)
				if _, err := ensemble.Parse(out); err != nil {
					t.Errorf("the translation does not parse back: %v\n%s", err, out)
				}
			}
		})
	}
	if n < 8 {
		t.Errorf("%d real-world inputs, want at least 8", n)
	}
}
