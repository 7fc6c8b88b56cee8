package orchestrator

import (
	"sync"
	"testing"
)

// TestFanOut checks that fanOut calls f once for every index, and the
// last on the caller's goroutine: done by the time fanOut returns.
func TestFanOut(t *testing.T) {
	for _, n := range []int{0, 1, 2, 5} {
		var mu sync.Mutex
		calls := make([]int, n)
		var wg sync.WaitGroup
		wg.Add(n)
		fanOut(n, func(i int) {
			defer wg.Done()
			mu.Lock()
			calls[i]++
			mu.Unlock()
		})
		if n > 0 {
			mu.Lock()
			last := calls[n-1]
			mu.Unlock()
			if last != 1 {
				t.Errorf("n=%d: the last call had not run when fanOut returned", n)
			}
		}
		wg.Wait()
		for i, c := range calls {
			if c != 1 {
				t.Errorf("n=%d: f(%d) called %d times, want 1", n, i, c)
			}
		}
	}
}
