package poll

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestUntil(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name      string
		timeout   time.Duration
		cond      func(n int) (bool, error) // n: the how-manieth call, from 1
		wantCalls int                       // 0: any
		wantErr   string                    // "": nil
		wantAs    bool                      // a *TimeoutError
	}{
		{"holds at once", time.Second, func(int) (bool, error) { return true, nil }, 1, "", false},
		{"holds at the third check", time.Second, func(n int) (bool, error) { return n == 3, nil }, 3, "", false},
		{"never holds", 200 * time.Millisecond, func(int) (bool, error) { return false, nil }, 0, "waiting: not within 200ms", true},
		{"an error stops at once", time.Second, func(n int) (bool, error) { return false, fmt.Errorf("call %d: %w", n, boom) }, 1, "waiting: call 1: boom", false},
		{"true with an error is the error", time.Second, func(int) (bool, error) { return true, boom }, 1, "waiting: boom", false},
		{"a context error is retried and shown", 200 * time.Millisecond, func(int) (bool, error) { return false, fmt.Errorf("dial: %w", context.DeadlineExceeded) },
			0, "waiting: not within 200ms (last error: dial: context deadline exceeded)", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				calls := 0
				err := Until(context.Background(), tt.timeout, "waiting", func(ctx context.Context) (bool, error) {
					calls++
					return tt.cond(calls)
				})
				if (err == nil) != (tt.wantErr == "") || (err != nil && err.Error() != tt.wantErr) {
					t.Fatalf("Until = %v, want %q", err, tt.wantErr)
				}
				var te *TimeoutError
				if errors.As(err, &te) != tt.wantAs {
					t.Fatalf("Until = %#v: a *TimeoutError is %v, want %v", err, !tt.wantAs, tt.wantAs)
				}
				if tt.wantCalls > 0 && calls != tt.wantCalls {
					t.Fatalf("cond called %d times, want %d", calls, tt.wantCalls)
				}
				if errors.Is(err, boom) != strings.Contains(tt.wantErr, "boom") {
					t.Fatalf("errors.Is(%v, boom) = %v", err, !strings.Contains(tt.wantErr, "boom"))
				}
			})
		})
	}
}

// TestUntilPauses: the checks come at once, then after 10, 20, 40, 80,
// 100, 100 ms.
func TestUntilPauses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var at []time.Duration
		Until(context.Background(), 350*time.Millisecond+time.Millisecond, "x", func(context.Context) (bool, error) {
			at = append(at, time.Since(start))
			return false, nil
		})
		want := []time.Duration{0, 10, 30, 70, 150, 250, 350}
		if len(at) != len(want) {
			t.Fatalf("checks at %v, want %v ms", at, want)
		}
		for i := range want {
			if at[i] != want[i]*time.Millisecond {
				t.Fatalf("checks at %v, want %v ms", at, want)
			}
		}
	})
}

func TestUntilContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		calls := 0
		err := Until(ctx, time.Minute, "waiting", func(ctx context.Context) (bool, error) {
			if calls++; calls == 2 {
				cancel()
			}
			return false, nil
		})
		if !errors.Is(err, context.Canceled) || err.Error() != "waiting: context canceled" {
			t.Fatalf("Until = %v, want waiting: context canceled", err)
		}
		var te *TimeoutError
		if errors.As(err, &te) {
			t.Fatal("a cancelled wait is a *TimeoutError")
		}
	})
}

// TestUntilCondContext: cond's context ends at the timeout.
func TestUntilCondContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		err := Until(context.Background(), 3*time.Second, "blocked", func(ctx context.Context) (bool, error) {
			<-ctx.Done()
			return false, ctx.Err()
		})
		if took := time.Since(start); took != 3*time.Second {
			t.Fatalf("Until returned after %s, want 3s", took)
		}
		if err == nil || err.Error() != "blocked: not within 3s (last error: context deadline exceeded)" {
			t.Fatalf("Until = %v", err)
		}
	})
}

// fakeT records what Eventually reports.
type fakeT struct{ fatal []string }

func (f *fakeT) Helper()           {}
func (f *fakeT) Fatal(args ...any) { f.fatal = append(f.fatal, fmt.Sprint(args...)) }

func TestEventually(t *testing.T) {
	tests := []struct {
		name string
		cond func(n int) bool
		want []string
	}{
		{"holds", func(n int) bool { return n == 2 }, nil},
		{"never", func(int) bool { return false }, []string{"ready: not within 1m0s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakeT{}
				n := 0
				Eventually(f, time.Minute, "ready", func() bool { n++; return tt.cond(n) })
				if fmt.Sprint(f.fatal) != fmt.Sprint(tt.want) {
					t.Fatalf("Eventually reported %q, want %q", f.fatal, tt.want)
				}
			})
		})
	}
	var _ T = t // a *testing.T is a T
}
