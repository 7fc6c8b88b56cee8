package cli

import (
	"fmt"
	"strings"

	"github.com/dmsnet/dms/api"
)

// progress turns the successive versions of a deployment into the lines
// `dms deploy` prints on stderr, printing only what changed: a phase line
// when the state or message changes, the why-not block of a queued
// deployment only when its reasons change (not at every bid round), a line
// per allocation when its state changes, and, with --follow of services,
// once they all run, how to detach and how to stop them.
type progress struct {
	follow, services bool

	line     string            // the last phase line printed
	whyNot   string            // the last why-not block printed
	allocs   map[string]string // allocation name → its last line
	detached bool              // the detach hint was printed
}

func newProgress(follow, services bool) *progress {
	return &progress{follow: follow, services: services, allocs: map[string]string{}}
}

// lines returns what to print for d, given what was printed before.
func (p *progress) lines(d *api.Deployment) []string {
	var out []string
	line := d.State
	if d.Message != "" {
		line += ": " + d.Message
	}
	// A queued deployment bids again and again; its "bidding" phase is
	// news only the first time.
	rebid := d.State == "bidding" && d.Round > 1
	if line != p.line && !rebid {
		p.line = line
		out = append(out, line)
	}
	if d.State == "queued" {
		var b strings.Builder
		for _, c := range d.Candidates {
			fmt.Fprintf(&b, "  %s\n", candidateLine(c))
		}
		if block := b.String(); block != p.whyNot && block != "" {
			if len(out) == 0 { // the reasons changed, the message did not
				out = append(out, line)
			}
			p.whyNot = block
			out = append(out, strings.Split(strings.TrimSuffix(block, "\n"), "\n")...)
		}
	}
	if d.State == "committing" && len(out) > 0 {
		for _, pl := range d.Placement {
			out = append(out, fmt.Sprintf("  node %s on %s (score %.2f)", pl.Node, pl.Provider, pl.Score))
		}
	}
	for _, al := range d.Allocations {
		l := fmt.Sprintf("  %s: %s", al.Name, al.State)
		if al.ExitCode != nil && (al.State == "completed" || al.State == "failed") {
			l += fmt.Sprintf(" (exit %d)", *al.ExitCode)
		}
		if al.State == "running" && len(al.Ports) > 0 {
			l += " (ports " + strings.Join(al.Ports, ", ") + ")"
		}
		if al.Message != "" {
			l += " - " + al.Message
		}
		if p.allocs[al.Name] != l {
			p.allocs[al.Name] = l
			out = append(out, l)
		}
	}
	if p.follow && p.services && d.State == "running" && !p.detached {
		p.detached = true
		out = append(out, fmt.Sprintf("all services run; Ctrl-C stops following and leaves them running (dms deployment shutdown %s stops them)", d.ID))
	}
	return out
}
