package actor

import (
	"context"
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
