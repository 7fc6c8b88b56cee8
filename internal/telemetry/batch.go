package telemetry

import (
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// batchSpans hands the spans of queue to write in batches of at most size:
// when a batch is full, interval after its first span, on a flush request
// (everything queued then is written before the reply is closed) and at
// stop (likewise, then it returns). The timer runs only while a batch
// waits, so an idle node is not woken; onTick, when tick is not nil, runs
// at each tick. write gets a slice it must not keep.
func batchSpans(queue <-chan sdktrace.ReadOnlySpan, flush <-chan chan struct{}, stop <-chan struct{},
	size int, interval time.Duration, write func([]sdktrace.ReadOnlySpan), tick <-chan time.Time, onTick func()) {
	// The batch's slice is made at the first span: a node that never
	// traces does not hold it (64 KiB for the local record's).
	var batch []sdktrace.ReadOnlySpan
	add := func(s sdktrace.ReadOnlySpan) {
		if batch == nil {
			batch = make([]sdktrace.ReadOnlySpan, 0, size)
		}
		batch = append(batch, s)
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	send := func() {
		timer.Stop()
		if len(batch) > 0 {
			write(batch)
			clear(batch)
			batch = batch[:0]
		}
	}
	// drain sends the batch and everything queued now.
	drain := func() {
		for {
			select {
			case s := <-queue:
				add(s)
				if len(batch) == size {
					send()
				}
			default:
				send()
				return
			}
		}
	}
	for {
		select {
		case s := <-queue:
			add(s)
			switch len(batch) {
			case size:
				send()
			case 1:
				timer.Reset(interval)
			}
		case <-timer.C:
			send()
		case <-tick:
			onTick()
		case reply := <-flush:
			drain()
			close(reply)
		case <-stop:
			drain()
			return
		}
	}
}
