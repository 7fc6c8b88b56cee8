package acceptance

import (
	"encoding/json"
	"encoding/xml"
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
		Status   string `json:"status"`
		Error    string `json:"error_message"`
		Duration int64  `json:"duration"` // ns
	} `json:"result"`
}

// featureSum counts the verdicts of one feature file's scenarios.
type featureSum struct {
	name                             string
	passed, pending, skipped, failed int
	problems                         []string // each failure, and why scenarios were skipped
	scenarios                        []scenarioSum
}

// scenarioSum is one scenario's verdict.
type scenarioSum struct {
	name, verdict, why string
	seconds            float64
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
			sc := scenarioSum{name: el.Name, verdict: v, why: why}
			for _, st := range el.Steps {
				sc.seconds += float64(st.Result.Duration) / 1e9
			}
			switch v {
			case "passed":
				fs.passed++
			case "pending":
				fs.pending++
			case "skipped":
				fs.skipped++
				if r := skips[f.URI+"\x00"+el.Name]; r != "" {
					sc.why = r
					fs.problems = append(fs.problems, fmt.Sprintf("skipped %q (%s:%d): %s", el.Name, f.URI, el.Line, r))
				}
			default:
				fs.failed++
				fs.problems = append(fs.problems, fmt.Sprintf("FAILED %q (%s:%d): %s", el.Name, f.URI, el.Line, why))
			}
			fs.scenarios = append(fs.scenarios, sc)
		}
		for _, e := range teardown[f.URI] {
			fs.failed++
			fs.problems = append(fs.problems, fmt.Sprintf("FAILED teardown of %s: %s", fs.name, firstLine(e)))
			fs.scenarios = append(fs.scenarios, scenarioSum{name: "(teardown)", verdict: "failed", why: e})
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

// JUnit XML of the run, in the form CI tools read: one testsuite per
// feature file, one testcase per scenario; a pending scenario is skipped
// with the message "pending: ...", a skipped one with its reason, a failed
// one has a failure. (godog's own junit formatter reports pending
// scenarios as errors and a scenario skipped after a passing step as
// passed.)
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Classname string        `xml:"classname,attr"`
	Name      string        `xml:"name,attr"`
	Time      string        `xml:"time,attr"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	Failure   *junitMessage `xml:"failure,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

func secs(f float64) string { return fmt.Sprintf("%.3f", f) }

// junit renders the summary as JUnit XML.
func (s *summary) junit() ([]byte, error) {
	all := junitSuites{Name: "acceptance"}
	var total float64
	for _, f := range s.features {
		js := junitSuite{Name: f.name}
		var t float64
		seen := map[string]int{}
		for _, sc := range f.scenarios {
			name := sc.name
			if seen[sc.name]++; seen[sc.name] > 1 {
				name = fmt.Sprintf("%s #%d", sc.name, seen[sc.name])
			}
			c := junitCase{Classname: "acceptance." + f.name, Name: name, Time: secs(sc.seconds)}
			switch sc.verdict {
			case "pending":
				c.Skipped = &junitMessage{Message: "pending: not built yet (@pending)"}
				js.Skipped++
			case "skipped":
				c.Skipped = &junitMessage{Message: "skipped: " + firstLine(sc.why), Text: sc.why}
				js.Skipped++
			case "failed":
				c.Failure = &junitMessage{Message: firstLine(sc.why), Text: sc.why}
				js.Failures++
			}
			js.Tests++
			t += sc.seconds
			js.Cases = append(js.Cases, c)
		}
		js.Time = secs(t)
		total += t
		all.Tests += js.Tests
		all.Failures += js.Failures
		all.Skipped += js.Skipped
		all.Suites = append(all.Suites, js)
	}
	all.Time = secs(total)
	out, err := xml.MarshalIndent(all, "", "  ")
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), append(out, '\n')...), nil
}
