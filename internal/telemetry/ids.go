package telemetry

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// idGenerator makes trace IDs that start with the time (Unix
// milliseconds, 6 bytes) and end with 10 random bytes, and random span
// IDs. Time-ordered trace IDs keep the local record's inserts near the end
// of its B+tree (its keys start with the trace ID), so a commit rewrites a
// few pages instead of pages all over the tree; the ratio sampler reads
// the last 8 bytes, which stay random. (AWS X-Ray's IDs start with the
// time the same way.)
type idGenerator struct{ now func() time.Time }

var _ sdktrace.IDGenerator = idGenerator{}

func (g idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	var tid trace.TraceID
	ms := uint64(g.now().UnixMilli())
	binary.BigEndian.PutUint64(tid[0:8], ms<<16|uint64(rand.Uint32()&0xffff))
	binary.BigEndian.PutUint64(tid[8:16], rand.Uint64())
	if !tid.IsValid() { // only if the clock reads 1970 and the dice all say 0
		tid[15] = 1
	}
	return tid, g.NewSpanID(ctx, tid)
}

func (idGenerator) NewSpanID(context.Context, trace.TraceID) trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		binary.BigEndian.PutUint64(sid[:], rand.Uint64())
	}
	return sid
}
