package logbuf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestTailStart(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"", 2, ""},
		{"a\n", 1, "a\n"},
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc", 2, "b\nc"},
		{"a\nb\n", 5, "a\nb\n"},
		{"a\n\n\n", 2, "\n\n"},
	} {
		if got := c.in[tailStart([]byte(c.in), c.n):]; got != c.want {
			t.Errorf("tail(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

func TestCopyFollow(t *testing.T) {
	b := New(0)
	var out, errb bytes.Buffer
	done := make(chan error)
	go func() { done <- b.Copy(context.Background(), true, 0, &out, &errb) }()
	for i := range 100 {
		fmt.Fprintf(b.Stdout(), "line %d\n", i)
		if i%10 == 0 {
			fmt.Fprintf(b.Stderr(), "err %d\n", i)
		}
	}
	b.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "\n"); n != 100 {
		t.Errorf("followed %d stdout lines, want 100", n)
	}
	if !strings.HasPrefix(errb.String(), "err 0\nerr 10\n") {
		t.Errorf("stderr = %q", errb.String())
	}
	fmt.Fprintln(b.Stdout(), "after close")
	if strings.Contains(b.Tail(0, 1), "after") {
		t.Errorf("write after Close was kept")
	}
}

func TestCopyNoFollowAndCancel(t *testing.T) {
	b := New(0)
	fmt.Fprint(b.Stdout(), "a\nb\nc\n")
	var out bytes.Buffer
	if err := b.Copy(context.Background(), false, 2, &out, nil); err != nil || out.String() != "b\nc\n" {
		t.Errorf("Copy(tail 2) = %q, %v", out.String(), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := b.Copy(ctx, true, 0, nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Copy(follow) on an open buffer = %v, want DeadlineExceeded", err)
	}
}

func TestLimitDropsOldest(t *testing.T) {
	b := New(1000)
	var mu sync.Mutex
	for i := range 500 {
		mu.Lock()
		fmt.Fprintf(b.Stdout(), "line %03d\n", i)
		mu.Unlock()
	}
	b.Close()
	var out bytes.Buffer
	b.Copy(context.Background(), false, 0, &out, nil)
	if out.Len() > 1000 || !strings.HasPrefix(out.String(), "line ") || !strings.HasSuffix(out.String(), "line 499\n") {
		t.Errorf("kept %d bytes: %q…", out.Len(), out.String()[:20])
	}
}
