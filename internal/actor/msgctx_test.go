package actor

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestMsgContext(t *testing.T) {
	c := newMsgContext(time.Now().Add(50 * time.Millisecond))
	if c.Err() != nil {
		t.Fatal("Err before the deadline")
	}
	child, cancel := context.WithCancel(c)
	defer cancel()
	select {
	case <-child.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("child not done after the deadline")
	}
	if c.Err() != context.DeadlineExceeded || child.Err() == nil {
		t.Fatalf("Err = %v, child %v", c.Err(), child.Err())
	}

	past := newMsgContext(time.Now().Add(-time.Second))
	if past.Err() != context.DeadlineExceeded {
		t.Fatal("past deadline: Err nil")
	}
	select {
	case <-past.Done():
	default:
		t.Fatal("past deadline: Done open after Err")
	}

	c2 := newMsgContext(time.Now().Add(time.Hour))
	done := c2.Done()
	c2.cancel()
	select {
	case <-done:
	default:
		t.Fatal("cancel did not close Done")
	}
	if c2.Err() != context.Canceled {
		t.Fatalf("Err after cancel = %v", c2.Err())
	}
}

// TestWaitedContextNotReused checks that recycling deliveries leaves a
// behavior's context alone: one a behavior kept stays ended, with its own
// deadline, whatever messages run after it; the message a behavior copied
// (*m) keeps its fields.
func TestWaitedContextNotReused(t *testing.T) {
	net := NewMemNetwork()
	a, b := newNode(t, net, AllowAll{}, nil), newNode(t, net, AllowAll{}, nil)
	type kept struct {
		ctx  context.Context
		done <-chan struct{}
		msg  Message
	}
	keptCh := make(chan kept, 1)
	b.a.AddBehavior("/test/wait", func(ctx context.Context, m *Message) (any, error) {
		keptCh <- kept{ctx: ctx, done: ctx.Done(), msg: *m}
		return nil, nil
	})
	b.a.AddBehavior("/test/echo", echo)
	ctx := ctxT(t)
	if err := a.a.Invoke(ctx, b.a.Handle(), "/test/wait", "first", nil); err != nil {
		t.Fatal(err)
	}
	k := <-keptCh
	for i := range 200 {
		var out string
		if err := a.a.Invoke(ctx, b.a.Handle(), "/test/echo", fmt.Sprint(i), &out); err != nil || out != fmt.Sprint(i) {
			t.Fatalf("Invoke #%d = %q, %v", i, out, err)
		}
	}
	select {
	case <-k.done:
	default:
		t.Fatal("the kept context's Done is open after its behavior returned")
	}
	if k.ctx.Done() != k.done {
		t.Fatal("the kept context's Done changed: it was reused by another message")
	}
	if dl, ok := k.ctx.Deadline(); !ok || !dl.Equal(k.msg.Expiry) {
		t.Fatalf("kept ctx.Deadline() = %v, %v; want its message's expiry %v", dl, ok, k.msg.Expiry)
	}
	if err := k.ctx.Err(); err != context.Canceled {
		t.Fatalf("kept ctx.Err() = %v, want %v", err, context.Canceled)
	}
	var s string
	if err := k.msg.Decode(&s); err != nil || s != "first" || k.msg.Behavior != "/test/wait" {
		t.Fatalf("kept message = %q %q, %v; want \"first\" /test/wait", k.msg.Behavior, s, err)
	}
}
