// Package resource is the machine side of dms: it detects this machine's
// hardware (Detect), measures it (Run, the machine benchmarks), and keeps
// the accounting of what the owner onboarded, what allocations hold, what
// bids have reserved and what is free (Ledger). The arithmetic and the
// matching rules come from package match.
//
// # Usage
//
// The node builds it at start:
//
//	mach, err := resource.Detect(ctx, resource.DetectConfig{DataDir: dataDir, Location: loc, Logger: log})
//	ledger, err := resource.NewLedger(resource.LedgerConfig{
//		Machine: mach, Reserve: reserve, Persister: p, Logger: log})
//	if s, ok := ledger.Scores(); !ok || s.Version != resource.BenchmarkVersion {
//		s, err := resource.Run(ctx, resource.BenchConfig{DataDir: dataDir, GPUs: mach.GPUs})
//		... ledger.SetScores(s)
//	}
//
// and then serves the owner (Onboard, Offboard, Snapshot) and the bidding
// (Bid or Reserve, Commit, Release, Free, Offer). A failed Onboard is an
// *OnboardError whose message says how much is available; a request that
// does not fit is a *match.NoFitError with one reason per dimension.
//
// # Concurrency
//
// Detect and Run are safe to call from any goroutine (Run uses all CPUs for
// a few seconds). A Ledger is safe for concurrent use: every method takes
// one mutex, and persists its change before it returns; reservations expire
// by the injected clock when any method runs, without timers or goroutines.
package resource
