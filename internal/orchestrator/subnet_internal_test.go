package orchestrator

import "testing"

func TestNextVersion(t *testing.T) {
	for _, tc := range []struct {
		name              string
		last, epoch, want uint64
	}{
		{"first placement", 0, 1, 1 << 32},
		{"same epoch", 1<<32 + 4, 1, 1<<32 + 5},
		{"a redeploy's epoch", 1<<32 + 4, 2, 2 << 32},
		{"a takeover that missed the last version", 3<<32 + 7, 4, 4 << 32},
		{"a record from before the epoch floor", 5, 0, 6},
	} {
		if got := nextVersion(tc.last, tc.epoch); got != tc.want {
			t.Errorf("%s: nextVersion(%d, %d) = %d, want %d", tc.name, tc.last, tc.epoch, got, tc.want)
		}
	}
}
