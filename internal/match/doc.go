// Package match is the capability algebra: amounts of resources (CPU, memory,
// disk, GPUs), their arithmetic, and how a machine compares with and scores
// against a requirement. It is pure: no I/O, no clock.
//
// One algebra serves both sides of a deployment: a provider asks whether a
// request fits its free resources before it bids, and an orchestrator ranks
// the bids it received.
//
// Sizes are bytes internally (Bytes) and CPU is thousandths of a core
// (MilliCPU); both parse from and print to the human forms 512MiB, 2GB, 1.5.
package match
