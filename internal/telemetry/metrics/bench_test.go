package metrics

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/identity"
)

// BenchmarkObserver is the cost of the actor Observer on the hot path:
// one Handled (counter and histogram) or one Refused per op. Its anchor is
// BenchmarkSend below, in the same run: the observer's share of one
// message's cost is ns/op here over ns/op there.
func BenchmarkObserver(b *testing.B) {
	o := New().Observer()
	o.Known("/dms/bench/echo")
	b.Run("handled", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			o.Handled("/dms/bench/echo", "", time.Microsecond)
		}
	})
	b.Run("handled-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				o.Handled("/dms/bench/echo", "", time.Microsecond)
			}
		})
	})
	b.Run("refused-unknown", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			o.Refused("/dms/not/here", actor.CodeUnknownBehavior)
		}
	})
}

// BenchmarkSend: one-way envelopes from 8 concurrent senders to one actor
// on another host of an in-memory network, with no observer (the anchor)
// and with this package's Observer. cpu-ns/msg is the process's CPU time
// per message (senders, runtime and receiver).
func BenchmarkSend(b *testing.B) {
	for _, tc := range []struct {
		name string
		obs  actor.Observer
	}{
		{"observer=none", nil},
		{"observer=metrics", New().Observer()},
	} {
		b.Run(tc.name, func(b *testing.B) { benchSend(b, tc.obs) })
	}
}

func benchSend(b *testing.B, obs actor.Observer) {
	ctx := context.Background()
	net := actor.NewMemNetwork()
	var got atomic.Int64
	start := func() (*actor.System, *actor.Actor) {
		key, err := identity.NewKey()
		if err != nil {
			b.Fatal(err)
		}
		host, _ := key.DID().PeerID()
		sys, err := actor.NewSystem(actor.Config{
			Transport: net.Host(host), Auth: actor.AllowAll{}, Issuer: actor.AllowAll{}, Observer: obs,
			Mailbox: 1 << 16, PeerRate: 1e9, PeerBurst: 1 << 20,
		})
		if err != nil {
			b.Fatal(err)
		}
		a, err := sys.Spawn(key, actor.RootInbox, actor.SpawnOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { sys.Close(ctx) })
		return sys, a
	}
	_, from := start()
	_, to := start()
	to.AddBehavior("/dms/bench/echo", func(ctx context.Context, m *actor.Message) (any, error) {
		got.Add(1)
		return nil, nil
	})
	payload := []byte(`"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456"`)
	if err := from.Invoke(ctx, to.Handle(), "/dms/bench/echo", payload, nil); err != nil {
		b.Fatal(err)
	}
	got.Store(0)
	const senders = 8
	b.ReportAllocs()
	b.ResetTimer()
	t0, cpu0 := time.Now(), cpuTime(b)
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := s; i < b.N; i += senders {
				if err := from.Send(ctx, to.Handle(), "/dms/bench/echo", payload); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(60 * time.Second)
	for got.Load() < int64(b.N) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Microsecond)
	}
	elapsed, cpu := time.Since(t0), cpuTime(b)-cpu0
	b.StopTimer()
	if n := got.Load(); n < int64(b.N) {
		b.Fatalf("delivered %d of %d", n, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
	// CPU time per message, both hosts together: less sensitive than
	// wall time to other work on a shared machine.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/msg")
}

// cpuTime is the CPU time (user and system) this process used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
