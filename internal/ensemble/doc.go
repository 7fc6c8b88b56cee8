// Package ensemble is the dms job format: an ensemble describes, once, what
// to run on the network — its allocations (units of work, each run by one
// executor: docker, vm or wasm), the nodes (machines) that host them, and
// the constraints between them.
//
// The package is pure: it takes bytes and values and returns values; it
// reads no file, opens no connection and reads no clock. The format
// reference is docs/ensemble.md, the JSON Schema for editors
// docs/ensemble.schema.json (generated from the types here, see
// schema_test.go).
//
// # Usage
//
// Parse reads YAML, fills in the defaults and validates; its error is
// Problems, every problem at once, each with a YAML path and line:
//
//	spec, err := ensemble.Parse(data)
//	var probs ensemble.Problems
//	if errors.As(err, &probs) {
//		for _, p := range probs {
//			fmt.Println(p) // allocations.web.resources.ram: "4 GB" is not a size (line 12)
//		}
//	}
//
// The orchestrator then reads the Spec: Spec.Nodes says which allocations
// share a provider (each node lands on a provider of its own), and
// Spec.Levels gives the start order:
//
//	levels, _ := spec.Levels() // [[db] [api worker] [web]]: start each level in parallel
//
// Spec.Reschedule bounds how often a node is placed again on another
// provider, and Reschedule.Wait says how long to wait before the n-th
// time; Spec.Supervision names the strategy (what else restarts when an
// allocation restarts or moves) and the standby orchestrators.
//
// Wasm modules and vm images may be local files; Spec.LocalFiles lists
// them for the CLI to read and ship, and Spec.ReplaceFiles swaps them for
// the sha256 references they are shipped under.
//
// A Spec built in Go (by a translator, a test) gets its defaults from
// SetDefaults and is checked by Validate; Marshal writes it back as YAML.
//
// Translation from docker-compose, Kubernetes and Nomad lives in the
// sub-package translate, which links the heavy parsers of those formats.
package ensemble
