// Package resource is the machine side of dms: it detects this machine's
// hardware (Detect), measures it (Run, the machine benchmarks), and keeps
// the accounting of what the owner onboarded, what jobs hold and what is
// free (Manager).
package resource
