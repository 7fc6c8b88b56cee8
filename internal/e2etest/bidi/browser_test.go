//go:build integration

package bidi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

const page = `<!doctype html><html><head><title>t</title></head><body>
<input id="a"><button id="b">Go</button><p id="out"></p><p id="conf"></p>
<script>
document.getElementById("b").addEventListener("click", () => {
  document.getElementById("out").textContent = "clicked " + document.getElementById("a").value;
  setTimeout(() => { document.getElementById("conf").textContent = String(confirm("sure?")); }, 0);
});
</script></body></html>`

// TestBrowser drives a real Firefox against a local page: typing, a mouse
// click, scripts and their errors, a prompt, the viewport, a screenshot,
// and a clean shutdown. Skipped without Firefox.
func TestBrowser(t *testing.T) {
	bin, err := Find()
	if err != nil {
		t.Skip(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, page)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b, err := Start(ctx, Options{Binary: bin, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	}()
	prompts := make(chan Prompt, 1)
	if err := b.HandlePrompts(ctx, func(p Prompt) bool { prompts <- p; return true }, t.Logf); err != nil {
		t.Fatal(err)
	}
	if err := b.Navigate(ctx, srv.URL); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitVisible(ctx, "#b", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := b.Type(ctx, "#a", "hi there"); err != nil {
		t.Fatal(err)
	}
	if err := b.Click(ctx, "#b"); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Text(ctx, "#out"); err != nil || got != "clicked hi there" {
		t.Errorf("Text = %q, %v, want what was typed", got, err)
	}
	if err := b.Poll(ctx, `document.getElementById("conf").textContent === "true"`, 20*time.Second); err != nil {
		t.Errorf("confirm: %v", err)
	}
	select {
	case p := <-prompts:
		if p.Type != "confirm" || p.Message != "sure?" {
			t.Errorf("prompt = %+v", p)
		}
	default:
		t.Error("no prompt event")
	}

	var v any
	if err := b.Evaluate(ctx, `({a: [1, "x", null, true], s: "é"})`, &v); err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"a": []any{1.0, "x", nil, true}, "s": "é"}; fmt.Sprint(v) != fmt.Sprint(want) {
		t.Errorf("Evaluate = %v, want %v", v, want)
	}
	var se *ScriptError
	if err := b.Evaluate(ctx, `null.x`, nil); !errors.As(err, &se) {
		t.Errorf("a throwing script: %v, want a *ScriptError", err)
	}
	var be *Error
	if err := b.Call(ctx, "browsingContext.navigate", map[string]any{"context": "nope", "url": srv.URL}, nil); !errors.As(err, &be) || be.Code != "no such frame" || be.Method != "browsingContext.navigate" {
		t.Errorf("navigate an unknown context: %v, want no such frame", err)
	}
	var n int
	if err := b.CallFunction(ctx, `(a, b) => a + b.length`, &n, 2, []any{1, 2}); err != nil || n != 4 {
		t.Errorf("CallFunction = %d, %v, want 4", n, err)
	}
	if err := b.SetViewport(ctx, 390, 844, 2); err != nil {
		t.Fatal(err)
	}
	var w int
	if err := b.Evaluate(ctx, `innerWidth`, &w); err != nil || w != 390 {
		t.Errorf("innerWidth = %d, %v, want 390", w, err)
	}
	if _, err := b.Screenshot(ctx); err != nil {
		t.Fatal(err)
	}
}
