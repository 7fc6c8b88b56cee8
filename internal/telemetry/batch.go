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
	batch := make([]sdktrace.ReadOnlySpan, 0, size)
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
				batch = append(batch, s)
				if len(batch) == cap(batch) {
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
			batch = append(batch, s)
			switch len(batch) {
			case cap(batch):
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
