package api

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// DeploymentTrace is the trace of one deployment, as its orchestrator's
// node gathered it: its own record of spans and every provider's (dms
// deployment trace). It works without any collector.
type DeploymentTrace struct {
	Deployment string `json:"deployment"`
	TraceID    string `json:"trace_id"` // 32 hex digits
	// Spans are the finished spans gathered, oldest first.
	Spans []Span `json:"spans"`
	// Nodes says, for each node asked, how many spans it gave or why it
	// gave none ("unreachable: …"): the trace is partial when one failed.
	Nodes []TraceNode `json:"nodes"`
}

// Span is one finished span of a trace.
type Span struct {
	TraceID  string            `json:"trace_id"`
	SpanID   string            `json:"span_id"`
	ParentID string            `json:"parent_id,omitempty"` // empty for the root
	Name     string            `json:"name"`
	Node     string            `json:"node"` // the peer ID of the node that recorded it
	Start    time.Time         `json:"start"`
	End      time.Time         `json:"end"`
	Attrs    map[string]string `json:"attrs,omitempty"`
	Events   []SpanEvent       `json:"events,omitempty"`
	Error    string            `json:"error,omitempty"`
}

// SpanEvent is a point in time within a span (a restart, a redeploy).
type SpanEvent struct {
	Time  time.Time         `json:"time"`
	Name  string            `json:"name"`
	Attrs map[string]string `json:"attrs,omitempty"`
}

// TraceNode is what one node gave to a trace.
type TraceNode struct {
	Node  string `json:"node"`  // peer ID
	Spans int    `json:"spans"` // how many spans it gave
	// Omitted counts the spans it left out to keep its answer bounded.
	Omitted int `json:"omitted,omitempty"`
	// Error says why it gave none (unreachable, refused, tracing off).
	Error string `json:"error,omitempty"`
}

// DeploymentTrace gathers the trace of a deployment from its orchestrator's
// node. A deployment that is unknown, was submitted with tracing off or
// whose trace was not sampled is an *Error of status 404 saying which.
func (c *Client) DeploymentTrace(ctx context.Context, id string) (*DeploymentTrace, error) {
	var t DeploymentTrace
	return &t, c.do(ctx, http.MethodGet, "/api/v1/deployments/"+url.PathEscape(id)+"/trace", nil, &t)
}
