package node

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/config"
	"github.com/dmsnet/dms/internal/identity"
)

// Messaging benchmarks between two nodes in this process over real libp2p
// (TCP on 127.0.0.1, Noise, yamux), with full capability checks: the
// receiver verifies the sender's invocation once per link session and
// checks the grant, the replay window and the rate limit on every
// envelope. Anchors (raw libp2p stream RTT, Hollywood) run beside them in
// bench/run-messaging.sh; results are in docs/PERFORMANCE.md.

// benchBehavior answers the payload it got; benchSink answers nothing
// (the one-way benchmarks' receiver, like Hollywood's sink actor, which
// only counts).
const (
	benchBehavior = "/dms/bench/echo"
	benchSink     = "/dms/bench/sink"
)

// benchMailbox is the receiving actor's mailbox in the benchmarks; the
// one-way benchmarks keep at most sendWindow envelopes in flight, so the
// mailbox never fills whatever b.N is.
const (
	benchMailbox = 1 << 16
	sendWindow   = benchMailbox / 2
)

// sendFlow is the one-way benchmarks' flow control: Send does not wait for
// the receiver (a receiver that falls behind refuses with mailbox-full), so
// senders wait while sendWindow envelopes are in flight. Senders check one
// atomic per envelope; the receiving behavior wakes waiting senders every
// flowStep deliveries.
type sendFlow struct {
	got  atomic.Int64 // envelopes delivered
	mu   sync.Mutex
	more *sync.Cond
	stop atomic.Bool // set at the deadline: waiters give up
}

const flowStep = 1024

func newSendFlow() *sendFlow {
	f := &sendFlow{}
	f.more = sync.NewCond(&f.mu)
	return f
}

// delivered counts one delivery.
func (f *sendFlow) delivered() {
	if f.got.Add(1)%flowStep == 0 {
		f.wake()
	}
}

func (f *sendFlow) wake() {
	f.mu.Lock()
	f.more.Broadcast()
	f.mu.Unlock()
}

// wait returns once envelope i (counted from 0 over all senders) may be
// sent: fewer than sendWindow are in flight before it, or the flow stopped.
func (f *sendFlow) wait(i int) {
	if int64(i)-f.got.Load() < sendWindow {
		return
	}
	f.mu.Lock()
	for int64(i)-f.got.Load() >= sendWindow && !f.stop.Load() {
		f.more.Wait()
	}
	f.mu.Unlock()
}

// deadline stops the waiting after d (an envelope refused or lost would
// otherwise leave its senders waiting forever); call the result to cancel.
func (f *sendFlow) deadline(d time.Duration) func() bool {
	t := time.AfterFunc(d, func() { f.stop.Store(true); f.wake() })
	return t.Stop
}

// benchPair returns two connected nodes; the receiver trusts the sender's
// node key for /dms/bench and answers benchBehavior.
func benchPair(b *testing.B, onMessage func()) (from *actor.Actor, to actor.Handle) {
	b.Helper()
	sender, receiver := benchNodes(b, onMessage)
	return sender.root, receiver.root.Handle()
}

// benchNodes is benchPair's two nodes.
func benchNodes(b *testing.B, onMessage func()) (sender, receiver *testNode) {
	return benchNodesOn(b, "", onMessage)
}

// benchNodesOn is benchNodes with the receiver on a store in home (""
// none: its replay cache is in memory only).
func benchNodesOn(b *testing.B, home string, onMessage func()) (sender, receiver *testNode) {
	b.Helper()
	big := func(c *config.Config) {
		c.Actor.Mailbox = benchMailbox
		c.Actor.PeerRate, c.Actor.PeerBurst = 1e9, 1<<20
	}
	sender = newTestNode(b, big)
	if home == "" {
		receiver = newTestNode(b, big)
	} else {
		s, _ := startStored(b, home, mustKey(b), mustKey(b), big)
		receiver = s.testNode
	}
	sender.connect(b, receiver)
	trust, err := cap.NewTrust(
		cap.Anchor{Root: receiver.user.DID(), Cmd: "/dms"},
		cap.Anchor{Root: sender.cfg.Key.DID(), Cmd: "/dms/bench"},
	)
	if err != nil {
		b.Fatal(err)
	}
	receiver.verify.SetTrust(trust)
	receiver.root.AddBehavior(benchBehavior, func(ctx context.Context, m *actor.Message) (any, error) {
		if onMessage != nil {
			onMessage()
		}
		return m.Payload, nil
	})
	receiver.root.AddBehavior(benchSink, func(ctx context.Context, m *actor.Message) (any, error) {
		if onMessage != nil {
			onMessage()
		}
		return nil, nil
	})
	return sender, receiver
}

var payload100 = []byte(`"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456"`)

// BenchmarkInvokeRTT measures request/reply round trips, one at a time.
func BenchmarkInvokeRTT(b *testing.B) {
	from, to := benchPair(b, nil)
	ctx := context.Background()
	if err := from.Invoke(ctx, to, benchBehavior, payload100, nil); err != nil { // warm the link and session
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := from.InvokeRaw(ctx, to, benchBehavior, payload100); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// BenchmarkSendThroughput measures authenticated one-way envelopes per
// second from 8 concurrent senders to one actor on another node.
//
// Like Hollywood's one-way benchmark (bench/hollywood: the sender sends one
// prebuilt message, the sink actor counts), the senders pass one payload
// value and the behavior (benchSink) returns nothing: the benchmark's own
// code allocates nothing per message.
//
// Send returns once the envelope is on the link: the benchmark keeps at most
// sendWindow envelopes in flight (sendFlow), so any b.N works without
// filling the receiver's mailbox.
func BenchmarkSendThroughput(b *testing.B) {
	flow := newSendFlow()
	from, to := benchPair(b, flow.delivered)
	ctx := context.Background()
	if err := from.Invoke(ctx, to, benchBehavior, payload100, nil); err != nil {
		b.Fatal(err)
	}
	flow.got.Store(0)
	got := &flow.got
	var msg any = payload100 // one conversion to an interface, not one per Send
	defer flow.deadline(2*time.Minute + time.Duration(b.N)*10*time.Microsecond)()
	const senders = 8
	b.ResetTimer()
	t0 := time.Now()
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := s; i < b.N; i += senders {
				flow.wait(i)
				if err := from.Send(ctx, to, benchSink, msg); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(60 * time.Second)
	for got.Load() < int64(b.N) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(t0)
	b.StopTimer()
	if n := got.Load(); n < int64(b.N) {
		b.Fatalf("delivered %d of %d (sender stats %v)", n, b.N, from.System().Stats())
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
}

// BenchmarkRelayThroughput measures one-shot envelopes per second: user
// invocations, each signed once (before the timer) and relayed by the
// sender node to the receiver, which verifies each inline invocation in
// full (no link session), checks its binding and records its nonce.
func BenchmarkRelayThroughput(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchRelay(b, "") })
	b.Run("store", func(b *testing.B) { benchRelay(b, b.TempDir()) })
}

func benchRelay(b *testing.B, home string) {
	var got atomic.Int64
	sn, rn := benchNodesOn(b, home, func() { got.Add(1) })
	sender, receiver, user := sn.sys, rn.root.Handle(), sn.cfg.Key
	bundles := make([][]byte, b.N)
	for i := range bundles {
		bundles[i] = benchBundle(b, user, sender.Self(), receiver.DID, benchBehavior, payload100)
	}
	ctx := context.Background()
	const senders = 8
	b.ResetTimer()
	t0 := time.Now()
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := s; i < b.N; i += senders {
				env := &actor.Envelope{To: receiver, From: actor.Handle{DID: user.DID(), Inbox: "api"}, Behavior: benchBehavior, Payload: payload100, Invocation: bundles[i]}
				if _, err := sender.Relay(ctx, env); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(60 * time.Second)
	for got.Load() < int64(b.N) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(t0)
	b.StopTimer()
	if n := got.Load(); n < int64(b.N) {
		b.Fatalf("delivered %d of %d (receiver refusals: %v)", n, b.N, sender.Stats())
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
}

// benchBundle signs a user invocation of cmd for aud, relayed by host.
func benchBundle(b *testing.B, user *identity.Key, host string, aud identity.DID, cmd string, payload []byte) []byte {
	inv, err := cap.Invoke(user, cap.InvocationParams{Audience: aud, Command: cmd, Expiry: time.Now().Add(5 * time.Minute), Args: cap.Bind(host, payload).Args()})
	if err != nil {
		b.Fatal(err)
	}
	return cap.BundleOf(inv, nil)
}
