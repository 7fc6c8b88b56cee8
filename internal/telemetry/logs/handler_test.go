package logs

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func TestReplaceAttr(t *testing.T) {
	for _, c := range []struct {
		key, want string
		redacted  bool
	}{
		{"deployment", KeyDeployment, false},
		{"dep", KeyDeployment, false},
		{"allocation", KeyAllocation, false},
		{"alloc", KeyAllocation, false},
		{"deployment_id", KeyDeployment, false},
		{"kind", "event_kind", false},
		{"peer_id", "peer_id", false},
		{"token", "token", true},
		{"api_token", "api_token", true},
		{"Password", "Password", true},
		{"passphrase", "passphrase", true},
		{"secret_key", "secret_key", true},
		{"key", "key", true},
		{"node_key", "node_key", true},
		{"credentials", "credentials", true},
		{"authorization", "authorization", true},
	} {
		a := ReplaceAttr(nil, slog.String(c.key, "v"))
		if a.Key != c.want || (a.Value.String() == Redacted) != c.redacted {
			t.Errorf("ReplaceAttr(%q) = %s=%s, want key %q redacted %v", c.key, a.Key, a.Value, c.want, c.redacted)
		}
	}
	if a := ReplaceAttr([]string{"g"}, slog.String("deployment", "d")); a.Key != "deployment" {
		t.Errorf("in a group: %s, want the key kept", a.Key)
	}
	if a := ReplaceAttr([]string{"g"}, slog.String("password", "p")); a.Value.String() != Redacted {
		t.Errorf("in a group: a password not redacted")
	}
}

func TestLoggerFields(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			l, err := NewLogger(Options{Format: format, Stderr: &buf})
			if err != nil {
				t.Fatal(err)
			}
			tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
			sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
			ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
			l.With("deployment", "d1").InfoContext(ctx, "started", "alloc", "a1", "token", "tok-XYZ")
			l.Info("no span")
			out := buf.String()
			for _, want := range []string{"deployment_id", "d1", "allocation_id", "a1", "trace_id", tid.String(), "span_id", sid.String()} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "tok-XYZ") {
				t.Errorf("a token was logged:\n%s", out)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 2 || strings.Contains(lines[1], "trace_id") {
				t.Errorf("a record without a span has a trace_id:\n%s", out)
			}
		})
	}
}

// TestLoggerFile: JSON records to a 0600 file relative to the home,
// rotated at the size given, keeping max files.
func TestLoggerFile(t *testing.T) {
	home := t.TempDir()
	var stderr bytes.Buffer
	l, err := NewLogger(Options{Format: "text", Stderr: &stderr, File: "logs/dms.log", Home: home, MaxSize: 1 << 20, MaxFiles: 2})
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 100<<10)
	for i := range 40 { // 4 MB: three rotations at 1 MiB
		l.Info("line", "i", i, "pad", big)
	}
	l.Info("last", "deployment", "d9")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(home, "logs", "dms.log")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("log file mode %v, want 0600", st.Mode().Perm())
	}
	ents, _ := os.ReadDir(filepath.Join(home, "logs"))
	if len(ents) != 3 { // the file and two rotated ones
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("files %v: want dms.log and 2 rotated", names)
	}
	for _, e := range ents {
		if st, _ := os.Stat(filepath.Join(home, "logs", e.Name())); st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", e.Name(), st.Mode().Perm())
		}
	}
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rec); err != nil {
		t.Fatalf("last line not JSON: %v", err)
	}
	if rec["msg"] != "last" || rec["deployment_id"] != "d9" {
		t.Errorf("last record %v", rec)
	}
	if !strings.Contains(stderr.String(), "msg=last") {
		t.Errorf("stderr lacks the text record")
	}
}

// TestLoggerTee: a teed logger writes to both.
func TestLoggerTee(t *testing.T) {
	var a, b bytes.Buffer
	l, err := NewLogger(Options{Format: "json", Stderr: &a})
	if err != nil {
		t.Fatal(err)
	}
	tl := l.Tee(slog.NewJSONHandler(&b, &slog.HandlerOptions{ReplaceAttr: ReplaceAttr}))
	tl.Info("both", "allocation", "x")
	if !strings.Contains(a.String(), `"allocation_id":"x"`) || !strings.Contains(b.String(), `"allocation_id":"x"`) {
		t.Errorf("tee: %q / %q", a.String(), b.String())
	}
}
