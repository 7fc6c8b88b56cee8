package orchestrator

// fanOut calls f(i) for every i below n, all at once: f(0) … f(n-2) each
// on a new goroutine, f(n-1) on the caller's, before fanOut returns. It
// does not wait for the others: f reports its result (on a channel
// buffered for n, as the callers do) and the caller collects them.
//
// The last call runs on the caller's goroutine because the common case is
// one call (a deployment of one node, one allocation to start, one
// provider shortlisted): a new goroutine for it starts on a small stack
// that grows by copying, two or three times, while the caller (the run
// loop) has grown its stack already. Most of the time the caller would
// only wait for that one goroutine; the results arrive in the same way
// whatever goroutine produced them.
func fanOut(n int, f func(i int)) {
	for i := range n - 1 {
		go f(i)
	}
	if n > 0 {
		f(n - 1)
	}
}
