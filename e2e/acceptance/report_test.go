package acceptance

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// The table of verdicts, computed from godog's cucumber JSON report (what
// godog itself recorded, not what the hooks saw).

// cukeFeature is the part of a cucumber JSON feature the table reads.
type cukeFeature struct {
	URI      string        `json:"uri"`
	Name     string        `json:"name"`
	Tags     []cukeTag     `json:"tags"`
	Elements []cukeElement `json:"elements"`
}

type cukeTag struct {
	Name string `json:"name"`
}

type cukeElement struct {
	Name  string     `json:"name"`
	Type  string     `json:"type"`
	Line  int        `json:"line"`
	Tags  []cukeTag  `json:"tags"`
	Steps []cukeStep `json:"steps"`
}

type cukeStep struct {
	Keyword string `json:"keyword"`
	Name    string `json:"name"`
	Result  struct {
		Status string `json:"status"`
		Error  string `json:"error_message"`
	} `json:"result"`
}

// featureSum counts the verdicts of one feature file's scenarios.
type featureSum struct {
	name                             string
	passed, pending, skipped, failed int
	problems                         []string // each failure, and why scenarios were skipped
}

type summary struct{ features []*featureSum }

// verdict classifies a scenario: failed when a step failed (or is
// ambiguous), or when a step is undefined or pending in a scenario not
// tagged @pending; pending when tagged @pending (none of its steps ran);
// skipped when a step was skipped; else passed.
func verdict(tags []string, steps []cukeStep) (string, string) {
	pendingTag := slices.Contains(tags, "@pending")
	var skipped, pending bool
	for _, s := range steps {
		switch s.Result.Status {
		case "failed", "ambiguous":
			return "failed", fmt.Sprintf("step %q: %s", s.Name, firstLine(s.Result.Error))
		case "undefined":
			if !pendingTag {
				return "failed", fmt.Sprintf("step %q is undefined and the scenario is not tagged @pending", s.Name)
			}
			pending = true
		case "pending":
			if !pendingTag {
				return "failed", fmt.Sprintf("step %q is pending and the scenario is not tagged @pending", s.Name)
			}
			pending = true
		case "skipped":
			skipped = true
		case "passed":
		default:
			return "failed", fmt.Sprintf("step %q: status %q", s.Name, s.Result.Status)
		}
	}
	switch {
	case pendingTag && !pending:
		return "failed", "tagged @pending but not reported pending"
	case pending:
		return "pending", ""
	case skipped:
		return "skipped", ""
	case len(steps) == 0:
		return "failed", "no steps"
	}
	return "passed", ""
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// summarize reads godog's cucumber JSON report. skips says why scenarios
// were skipped (by URI and name); teardown what failed when a feature's
// shared things were stopped.
func summarize(data []byte, skips map[string]string, teardown map[string][]string) (*summary, error) {
	var features []cukeFeature
	if err := json.Unmarshal(data, &features); err != nil {
		return nil, fmt.Errorf("read cucumber report: %w", err)
	}
	s := &summary{}
	for _, f := range features {
		fs := &featureSum{name: strings.TrimSuffix(filepath.Base(f.URI), ".feature")}
		for _, el := range f.Elements {
			if el.Type != "scenario" {
				continue
			}
			var tags []string
			for _, t := range append(f.Tags, el.Tags...) {
				tags = append(tags, t.Name)
			}
			v, why := verdict(tags, el.Steps)
			switch v {
			case "passed":
				fs.passed++
			case "pending":
				fs.pending++
			case "skipped":
				fs.skipped++
				if r := skips[f.URI+"\x00"+el.Name]; r != "" {
					fs.problems = append(fs.problems, fmt.Sprintf("skipped %q (%s:%d): %s", el.Name, f.URI, el.Line, r))
				}
			default:
				fs.failed++
				fs.problems = append(fs.problems, fmt.Sprintf("FAILED %q (%s:%d): %s", el.Name, f.URI, el.Line, why))
			}
		}
		for _, e := range teardown[f.URI] {
			fs.failed++
			fs.problems = append(fs.problems, fmt.Sprintf("FAILED teardown of %s: %s", fs.name, firstLine(e)))
		}
		s.features = append(s.features, fs)
	}
	slices.SortFunc(s.features, func(a, b *featureSum) int { return strings.Compare(a.name, b.name) })
	return s, nil
}

func (s *summary) total() featureSum {
	t := featureSum{name: "TOTAL"}
	for _, f := range s.features {
		t.passed += f.passed
		t.pending += f.pending
		t.skipped += f.skipped
		t.failed += f.failed
	}
	return t
}

// table renders the summary: one row per feature, a total, then the
// failures and the reasons for skips.
func (s *summary) table() string {
	width := len("FEATURE")
	for _, f := range s.features {
		width = max(width, len(f.name))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-*s  PASSED  PENDING  SKIPPED  FAILED\n", width, "FEATURE")
	row := func(f featureSum) {
		fmt.Fprintf(&b, "%-*s  %6d  %7d  %7d  %6d\n", width, f.name, f.passed, f.pending, f.skipped, f.failed)
	}
	for _, f := range s.features {
		row(*f)
	}
	row(s.total())
	for _, f := range s.features {
		for _, p := range f.problems {
			fmt.Fprintf(&b, "%s: %s\n", f.name, p)
		}
	}
	return b.String()
}
