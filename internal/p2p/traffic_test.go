package p2p

import (
	"bytes"
	"testing"
	"time"
)

// TestTraffic: the bytes of a frame sent over a link are counted out by
// the sender and in by the receiver.
func TestTraffic(t *testing.T) {
	a, b := newHost(t, testConfig()), newHost(t, testConfig())
	echo(a)
	introduce(t, b, a, "tcp")
	ctx := testCtx(t, 20*time.Second)
	inA0, outA0 := a.Traffic()
	inB0, outB0 := b.Traffic()
	l, err := b.Link(ctx, a.Self())
	if err != nil {
		t.Fatal(err)
	}
	frame := bytes.Repeat([]byte("x"), 64<<10)
	if err := l.Send(ctx, frame); err != nil {
		t.Fatal(err)
	}
	if f, err := recvWithin(t, l, 10*time.Second); err != nil || len(f) != len(frame) {
		t.Fatalf("echo = %d bytes, %v", len(f), err)
	}
	inA, outA := a.Traffic()
	inB, outB := b.Traffic()
	for _, c := range []struct {
		name        string
		before, now uint64
	}{
		{"sender out", outB0, outB}, {"receiver in", inA0, inA},
		{"receiver out (echo)", outA0, outA}, {"sender in (echo)", inB0, inB},
	} {
		if c.now-c.before < uint64(len(frame)) {
			t.Errorf("%s grew by %d bytes, want at least %d", c.name, c.now-c.before, len(frame))
		}
	}
}
