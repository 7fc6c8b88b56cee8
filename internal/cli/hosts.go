package cli

import (
	"fmt"
	"io"

	"github.com/dmsnet/dms/internal/ensemble"
)

// hostWarnings are the problems-shaped warnings about values that name
// another allocation or node as a host (ensemble.HostReferences) that
// nothing resolves: allocation names resolve only on a subnet
// (network.subnet), node names never. data, when given,
// is the ensemble as written, for line numbers.
func hostWarnings(spec *ensemble.Spec, data []byte) []ensemble.Problem {
	ws := []ensemble.Problem{}
	for _, r := range ensemble.HostReferences(spec) {
		p := ensemble.Problem{Path: r.Path, Msg: r.Msg()}
		if data != nil {
			p.Line = ensemble.LineOf(data, r.Path)
		}
		ws = append(ws, p)
	}
	return ws
}

// printHostWarnings writes one "warning: allocation A: ..." line to w for
// each value of spec that names another allocation or node as a host
// (ensemble.HostReferences). dms validate and dms translate call it.
func printHostWarnings(w io.Writer, spec *ensemble.Spec) {
	for _, r := range ensemble.HostReferences(spec) {
		fmt.Fprintf(w, "warning: %s\n", r)
	}
}
