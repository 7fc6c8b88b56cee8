package placement

import "testing"

func TestSummarize(t *testing.T) {
	tests := []struct {
		name string
		rs   []Reason
		want string
	}{
		{"none", nil, "no provider answered"},
		{"one", []Reason{{Peer: "p1", Node: "a", Kind: "resource"}}, "1 provider too small"},
		{"providers, not rows", []Reason{
			{Peer: "p1", Node: "a", Kind: "resource"},
			{Peer: "p1", Node: "b", Kind: "resource"},
			{Peer: "p2", Node: "a", Kind: "resource"},
			{Peer: "p3", Node: "a", Kind: "resource"},
			{Peer: "p4", Node: "a", Kind: "executor"},
		}, "3 providers too small, 1 provider without the executor"},
		{"most first, then by kind", []Reason{
			{Peer: "p1", Node: "*", Kind: "no-answer"},
			{Peer: "p2", Node: "a", Kind: "distinct"},
			{Peer: "p3", Node: "*", Kind: "no-answer"},
			{Peer: "p4", Node: "a", Kind: "price"},
		}, "2 providers not answering, 1 provider already hosting another node, 1 provider above the price ceiling"},
		{"no single provider", []Reason{{Node: "*", Kind: "invalid"}, {Node: "*", Kind: "invalid"}}, "2 providers with an invalid bid"},
		{"unknown kind", []Reason{{Peer: "p1", Node: "a", Kind: "weather"}}, "1 provider (weather)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Summarize(tt.rs); got != tt.want {
				t.Fatalf("Summarize() = %q, want %q", got, tt.want)
			}
		})
	}
}
