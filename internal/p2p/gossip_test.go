package p2p

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/poll"
)

// inbox collects what a subscription receives.
type inbox struct {
	mu  sync.Mutex
	got []received
}

type received struct {
	publisher string
	frame     string
}

func (in *inbox) add(publisher string, frame []byte) {
	in.mu.Lock()
	in.got = append(in.got, received{publisher, string(frame)})
	in.mu.Unlock()
}

func (in *inbox) list() []received {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]received(nil), in.got...)
}

func (in *inbox) has(r received) bool {
	for _, x := range in.list() {
		if x == r {
			return true
		}
	}
	return false
}

func subscribe(t *testing.T, h *Host, topic string) *inbox {
	t.Helper()
	in := &inbox{}
	cancel, err := h.Subscribe(topic, in.add)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	t.Cleanup(cancel)
	return in
}

func TestPublishSubscribe(t *testing.T) {
	a, b, c := newHost(t, testConfig()), newHost(t, testConfig()), newHost(t, testConfig())
	ina, inb, inc := subscribe(t, a, "bids"), subscribe(t, b, "bids"), subscribe(t, c, "bids")
	other := subscribe(t, b, "other")
	connect(t, b, a)
	connect(t, c, a)
	ctx := testCtx(t, 30*time.Second)

	// Published right after connecting: not lost.
	if err := a.Publish(ctx, "bids", []byte("from a")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	want := received{a.Self(), "from a"}
	poll.Eventually(t, 20*time.Second, "b and c receive a's broadcast", func() bool { return inb.has(want) && inc.has(want) })

	// c's broadcasts reach b through a once a's mesh has formed (gossipsub
	// relays along the mesh, which forms at its heartbeat, about a second):
	// c publishes until one arrives.
	var last time.Time
	poll.Eventually(t, 20*time.Second, "a and b receive c's broadcast", func() bool {
		for _, x := range inb.list() {
			if x.publisher == c.Self() && ina.has(x) {
				return true
			}
		}
		if time.Since(last) > 200*time.Millisecond {
			last = time.Now()
			if err := c.Publish(ctx, "bids", fmt.Appendf(nil, "from c at %s", last)); err != nil {
				t.Fatal(err)
			}
		}
		return false
	})
	for _, x := range inb.list() {
		if x.publisher != a.Self() && x.publisher != c.Self() {
			t.Errorf("b received %q from %s, which published nothing", x.frame, x.publisher)
		}
	}

	for _, x := range ina.list() {
		if x.publisher == a.Self() {
			t.Errorf("a received its own message %q", x.frame)
		}
	}
	for _, x := range inc.list() {
		if x.publisher == c.Self() {
			t.Errorf("c received its own message %q", x.frame)
		}
	}
	if got := other.list(); len(got) != 0 {
		t.Errorf("a subscriber of another topic received %v", got)
	}
}

func TestSubscribeCancel(t *testing.T) {
	a, b := newHost(t, testConfig()), newHost(t, testConfig())
	in := &inbox{}
	cancel, err := b.Subscribe("t", in.add)
	if err != nil {
		t.Fatal(err)
	}
	keep := subscribe(t, b, "t") // b stays subscribed through another subscription
	connect(t, a, b)
	ctx := testCtx(t, 30*time.Second)
	if err := a.Publish(ctx, "t", []byte("1")); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 20*time.Second, "b receives the first message", func() bool { return in.has(received{a.Self(), "1"}) })
	cancel()
	cancel() // twice is fine
	if err := a.Publish(ctx, "t", []byte("2")); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 20*time.Second, "b's other subscription receives the second", func() bool { return keep.has(received{a.Self(), "2"}) })
	if in.has(received{a.Self(), "2"}) {
		t.Error("a canceled subscription received a message")
	}
}

func TestGossipLimits(t *testing.T) {
	cfg := testConfig()
	cfg.MaxFrame = 1000
	a := newHost(t, cfg)
	ctx := testCtx(t, 10*time.Second)
	for _, topic := range []string{"", "a b", "tab\t", string(bytes.Repeat([]byte("x"), maxTopicLen+1))} {
		if err := a.Publish(ctx, topic, []byte("x")); err == nil {
			t.Errorf("Publish on %q succeeded", topic)
		}
		if _, err := a.Subscribe(topic, func(string, []byte) {}); err == nil {
			t.Errorf("Subscribe to %q succeeded", topic)
		}
	}
	if err := a.Publish(ctx, "t", make([]byte, 1001)); err == nil {
		t.Error("Publish of a frame over MaxFrame succeeded")
	}
}

// TestGossipValidatorRefusesOversized has a host with a larger limit
// publish to one with a smaller limit: the receiver's validator refuses it.
func TestGossipValidatorRefusesOversized(t *testing.T) {
	small := testConfig()
	small.MaxFrame = 1000
	a, b := newHost(t, testConfig()), newHost(t, small)
	in := subscribe(t, b, "t")
	connect(t, a, b)
	ctx := testCtx(t, 30*time.Second)
	if err := a.Publish(ctx, "t", make([]byte, 1500)); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(ctx, "t", []byte("small")); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 20*time.Second, "b receives the small message", func() bool { return in.has(received{a.Self(), "small"}) })
	for _, x := range in.list() {
		if len(x.frame) > 1000 {
			t.Errorf("b accepted a %d-byte message over its limit", len(x.frame))
		}
	}
}

func TestPublishAlone(t *testing.T) {
	a := newHost(t, testConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Publish(ctx, "t", []byte("nobody listens")); err != nil {
		t.Fatalf("Publish with no peers: %v", err)
	}
}
