package logs

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/trace"
)

// Field names of the records (docs/observability.md, "Logs").
const (
	KeyDeployment = "deployment_id"
	KeyAllocation = "allocation_id"
	KeyTrace      = "trace_id"
	KeySpan       = "span_id"
	KeyKind       = "kind"
	KeyStream     = "stream"
	KeyNode       = "node_id" // the exporting node's peer ID (a call site's "node" is an ensemble's node name)

	// KindNode marks the node's own records, KindAllocation the lines an
	// allocation's workload wrote.
	KindNode       = "node"
	KindAllocation = "allocation"

	// Redacted replaces the value of an attribute that names secret
	// material.
	Redacted = "[redacted]"
)

// renamed maps the attribute keys call sites use to the record's fields.
// A call site's "kind" (an event's kind) would clash with the record's
// kind, so it becomes event_kind.
var renamed = map[string]string{
	"deployment": KeyDeployment,
	"deploy":     KeyDeployment,
	"dep":        KeyDeployment,
	"allocation": KeyAllocation,
	"alloc":      KeyAllocation,
	"alloc_id":   KeyAllocation,
	KeyKind:      "event_kind",
}

// secretWords are the parts of an attribute key that say its value is
// secret material.
var secretWords = []string{"token", "password", "passwd", "passphrase", "secret", "credential", "authorization", "private", "seed", "mnemonic"}

// IsSecretKey reports whether an attribute named key holds secret material:
// its lower-cased name contains one of the secret words, or it is "key" or
// ends with "_key" (api_key, node_key) or "key material".
func IsSecretKey(key string) bool {
	k := strings.ToLower(key)
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return k == "key" || strings.HasSuffix(k, "_key") || strings.HasSuffix(k, "-key") || strings.HasSuffix(k, "apikey")
}

// secretKeys caches IsSecretKey by key: call sites use a few constant
// keys. It holds at most maxCachedKeys keys (keys made at run time are
// checked each time once it is full).
var (
	secretKeys     sync.Map // string → bool
	secretKeysSize atomic.Int32
)

const maxCachedKeys = 4096

func isSecretCached(key string) bool {
	if v, ok := secretKeys.Load(key); ok {
		return v.(bool)
	}
	secret := IsSecretKey(key)
	if secretKeysSize.Load() < maxCachedKeys {
		if _, loaded := secretKeys.LoadOrStore(key, secret); !loaded {
			secretKeysSize.Add(1)
		}
	}
	return secret
}

// ReplaceAttr renames call sites' attribute keys to the record's fields and
// redacts secrets; it is the slog.HandlerOptions.ReplaceAttr of every
// handler of the node. Keys inside groups are redacted, not renamed.
func ReplaceAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 {
		switch a.Key {
		case slog.TimeKey, slog.LevelKey, slog.MessageKey:
			return a
		}
	}
	if isSecretCached(a.Key) {
		return slog.String(a.Key, Redacted)
	}
	if len(groups) == 0 {
		if to, ok := renamed[a.Key]; ok {
			a.Key = to
		}
	}
	return a
}

// chainReplace runs ReplaceAttr, then next (may be nil).
func chainReplace(next func([]string, slog.Attr) slog.Attr) func([]string, slog.Attr) slog.Attr {
	if next == nil {
		return ReplaceAttr
	}
	return func(groups []string, a slog.Attr) slog.Attr {
		return next(groups, ReplaceAttr(groups, a))
	}
}

// contextHandler adds trace_id and span_id from the context's span to
// every record.
type contextHandler struct {
	slog.Handler
	grouped bool // a group is open: the ids were added before it
}

// WithTrace wraps h so that records logged with a context holding a valid
// OpenTelemetry span context carry its trace_id and span_id.
func WithTrace(h slog.Handler) slog.Handler { return contextHandler{Handler: h} }

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() && !h.grouped {
		r = r.Clone()
		r.AddAttrs(slog.String(KeyTrace, sc.TraceID().String()), slog.String(KeySpan, sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return contextHandler{Handler: h.Handler.WithAttrs(as), grouped: h.grouped}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	// Attributes added after a group land in it; the ids belong at the
	// top, so a grouped handler leaves them out.
	return contextHandler{Handler: h.Handler.WithGroup(name), grouped: true}
}
