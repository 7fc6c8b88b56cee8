package ensemble

import (
	"strings"
	"testing"
)

// TestParseLogs: an allocation's logs.ship is a boolean, off by default.
func TestParseLogs(t *testing.T) {
	const base = "version: v1\nallocations:\n  a:\n    executor: wasm\n    execution: {module: m.wasm}\n"
	for _, c := range []struct {
		name, src string
		ship      bool
		problem   string
	}{
		{"absent", base, false, ""},
		{"on", base + "    logs: {ship: true}\n", true, ""},
		{"off", base + "    logs: {ship: false}\n", false, ""},
		{"not a bool", base + "    logs: {ship: 3}\n", false, "allocations.a.logs.ship"},
		{"unknown key", base + "    logs: {shipp: true}\n", false, "allocations.a.logs.shipp"},
		{"not an object", base + "    logs: true\n", false, "allocations.a.logs"},
	} {
		t.Run(c.name, func(t *testing.T) {
			probs := problems(t, c.src)
			if c.problem != "" {
				if len(probs) == 0 || !strings.Contains(strings.Join(probs, "\n"), c.problem) {
					t.Fatalf("problems %q, want one at %s", probs, c.problem)
				}
				return
			}
			if len(probs) > 0 {
				t.Fatalf("problems %q", probs)
			}
			s, _ := Parse([]byte(c.src))
			if s.Allocations["a"].Logs.Ship != c.ship {
				t.Errorf("ship = %v, want %v", s.Allocations["a"].Logs.Ship, c.ship)
			}
		})
	}
}
