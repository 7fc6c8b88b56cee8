package telemetry

import "time"

// Attribute keys dms puts on spans and log records.
const (
	AttrDeployment = "deployment.id"
	AttrAllocation = "allocation.id"
)

// SpanRecord is one finished span as a node recorded it.
type SpanRecord struct {
	TraceID  string            `json:"trace_id"`            // 32 hex digits
	SpanID   string            `json:"span_id"`             // 16 hex digits
	ParentID string            `json:"parent_id,omitempty"` // empty for a root
	Name     string            `json:"name"`
	Node     string            `json:"node"` // service.instance.id: the recording node's peer ID
	Start    time.Time         `json:"start"`
	End      time.Time         `json:"end"`
	Attrs    map[string]string `json:"attrs,omitempty"`
	Events   []SpanEvent       `json:"events,omitempty"`
	Error    string            `json:"error,omitempty"` // the span's error status, if any
}

// SpanEvent is a point in time within a span (a restart, a redeploy).
type SpanEvent struct {
	Time  time.Time         `json:"time"`
	Name  string            `json:"name"`
	Attrs map[string]string `json:"attrs,omitempty"`
}
