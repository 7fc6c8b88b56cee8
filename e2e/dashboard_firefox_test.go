//go:build integration

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/e2etest"
	"github.com/dmsnet/dms/internal/e2etest/bidi"
	"github.com/dmsnet/dms/internal/poll"
)

// inCI reports whether the tests run in CI (.ci/run sets CI=true), where
// a browser test must run rather than skip.
func inCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "false" && v != "0"
}

// TestDashboardFirefox is TestDashboard's user flow in headless Firefox
// (firefox-esr), driven over WebDriver BiDi (internal/e2etest/bidi) on a
// real 3-node network: log in with the token, see an invalid ensemble's
// problems at their lines, deploy a busybox service through the form, see
// it running and a log line appear live, reach its Shut down button from
// the keyboard and see it stopped — deploy to stopped in at most 30 s.
// (Firefox does not activate a focused button for WebDriver's synthesized
// Enter; when Enter did nothing in 2 s, the focused button is clicked.) It also visits the
// index at phone width, a queued deployment's reasons, a task's outputs
// (downloaded, SHA-256 checked), the capabilities, and the overview in the
// dark scheme. Each view is saved under build/reports/ui/firefox/.
//
// Without firefox-esr it is skipped, except in CI (CI set), where it fails.
func TestDashboardFirefox(t *testing.T) {
	browser, err := bidi.Find()
	if err != nil {
		if inCI() {
			t.Fatalf("%v: in CI the Firefox test must run (.ci/run installs firefox-esr)", err)
		}
		t.Skipf("%v: the Firefox browser test is skipped", err)
	}
	image := e2etest.BusyboxImage(t)
	c, base, token, shots := dashboardNetwork(t, "firefox")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := bidi.Start(ctx, bidi.Options{Binary: browser, Width: 1280, Height: 900})
	if err != nil {
		t.Fatalf("start firefox: %v", err)
	}
	defer func(b *bidi.Browser) {
		if err := b.Close(); err != nil {
			t.Errorf("close firefox: %v", err)
		}
	}(b)
	prompts := make(chan string, 4)
	err = b.HandlePrompts(ctx, func(p bidi.Prompt) bool {
		select {
		case prompts <- p.Type + ": " + p.Message:
		default:
		}
		return true // the shutdown confirmation
	}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}

	const wait = 20 * time.Second
	// fail ends the test with what the page showed.
	fail := func(what string, err error) {
		t.Helper()
		var body string
		_ = b.Evaluate(ctx, `document.body ? document.body.outerHTML : "(no body)"`, &body)
		t.Fatalf("%s: %v\npage:\n%.3000s", what, err, body)
	}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			fail(what, err)
		}
	}
	visible := func(sel string) {
		t.Helper()
		must("wait for "+sel, b.WaitVisible(ctx, sel, wait))
	}
	shot := func(name string) {
		t.Helper()
		png, err := b.Screenshot(ctx)
		must("screenshot "+name, err)
		must("save "+name, os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644))
	}
	// text waits for an element matching sel, as chromedp's Text does in
	// TestDashboard: a live page may re-render it (a queued deployment's
	// row leaves the queued index while its next bid round runs).
	text := func(sel string) string {
		t.Helper()
		var s string
		var last error
		err := poll.Until(ctx, wait, "text of "+sel, func(ctx context.Context) (bool, error) {
			s, last = b.Text(ctx, sel)
			return last == nil, nil
		})
		if err != nil {
			fail("text of "+sel, fmt.Errorf("%w (last: %v)", err, last))
		}
		return s
	}
	// tabTo presses Tab until the element matching sel has the focus: the
	// page is usable from the keyboard.
	tabTo := func(sel string) {
		t.Helper()
		for range 40 {
			var focused bool
			must("focus", b.CallFunction(ctx, `(sel) => !!document.activeElement && document.activeElement.matches(sel)`, &focused, sel))
			if focused {
				return
			}
			must("tab", b.Keys(ctx, bidi.Tab))
		}
		t.Fatalf("40 presses of Tab never reached %s", sel)
	}
	// fitsWidth checks the page does not scroll sideways as a whole (wide
	// tables scroll inside their own box).
	fitsWidth := func(where string) {
		t.Helper()
		var over float64
		must("width", b.Evaluate(ctx, `document.documentElement.scrollWidth - document.documentElement.clientWidth`, &over))
		if over > 0 {
			t.Errorf("%s: the page is %v px wider than the viewport", where, over)
		}
	}

	// Without a session: the login page, then log in (typed, then Enter).
	must("open", b.Navigate(ctx, base+"/ui/"))
	visible("#token")
	shot("login")
	must("type the token", b.Type(ctx, "#token", token+bidi.Enter))
	visible(`body[data-page="overview"]`)
	visible(`#peers tbody tr:nth-child(2) td`)
	visible(`#node dd`)
	shot("overview")

	// An invalid ensemble: its problems at their lines.
	must("deploy page", b.Navigate(ctx, base+"/ui/deploy"))
	visible("#ensemble")
	must("paste", b.SetValue(ctx, "#ensemble", dashboardInvalid))
	must("validate", b.Click(ctx, "#validate"))
	visible(`#problems li[data-line="8"]`)
	visible(`#listing span.bad#line-7`)
	shot("deploy-invalid")
	problems := text("#problems")
	for _, want := range []string{"line 7: allocations.web.execution.imag: unknown field", "line 8: allocations.web.colour: unknown field"} {
		if !strings.Contains(problems, want) {
			t.Errorf("problems %q lack %q", problems, want)
		}
	}

	// Deploy a service through the form, then follow it.
	service := dashboardTicker(image)
	must("paste the service", b.SetValue(ctx, "#ensemble", service))
	must("type the passphrase", b.Type(ctx, "#passphrase", e2etest.Passphrase))
	start := time.Now()
	must("deploy", b.Click(ctx, "#deploy"))
	visible(`body[data-page="deployment"]`)
	visible(`#state.s-running`)
	running := time.Since(start)
	var id string
	must("id", b.Evaluate(ctx, `document.body.dataset.id`, &id))
	if id == "" {
		fail("id", fmt.Errorf("the deployment's page has no data-id"))
	}
	// A line appears live: one written after the page had shown the first.
	visible(`#logs span`)
	var first int
	must("logs", b.Evaluate(ctx, `document.querySelector("#logs").textContent.length`, &first))
	if err := b.Poll(ctx, fmt.Sprintf(`document.querySelector("#logs").textContent.length > %d && /tick \d+/.test(document.querySelector("#logs").textContent)`, first), 10*time.Second); err != nil {
		fail("a new log line", err)
	}
	logged := time.Since(start)
	var lags []float64
	must("lags", b.Evaluate(ctx, dashboardLagsJS, &lags))
	t.Logf("log lines shown after the workload wrote them (ms): %v", lags)
	if len(lags) == 0 || !(lags[len(lags)-1] <= 1000) {
		t.Errorf("the last log line was shown %v ms after it was written, want ≤ 1000", lags)
	}
	shot("deployment-running")

	// The index, at 1280 px and phone width.
	must("index", b.Navigate(ctx, base+"/ui/deployments"))
	visible(`#deployments tr[data-state="running"][data-id="` + id + `"]`)
	fitsWidth("index at 1280 px")
	shot("deployments")
	must("phone width", b.SetViewport(ctx, 390, 844, 2))
	visible(`#deployments tr[data-id="` + id + `"]`)
	fitsWidth("index at 390 px")
	shot("deployments-phone")
	must("1280 px", b.SetViewport(ctx, 1280, 900, 1))

	// A deployment that fits nowhere waits; its page and the index say
	// why, per provider.
	must("deploy page", b.Navigate(ctx, base+"/ui/deploy"))
	visible("#ensemble")
	must("paste the huge one", b.SetValue(ctx, "#ensemble", dashboardHuge(service)))
	must("type the passphrase", b.Type(ctx, "#passphrase", e2etest.Passphrase))
	must("deploy the huge one", b.Click(ctx, "#deploy"))
	visible(`body[data-page="deployment"]`)
	visible(`#why li:nth-child(2)`)
	shot("deployment-queued")
	must("queued index", b.Navigate(ctx, base+"/ui/deployments?state=queued"))
	visible(`#deployments tr[data-state="queued"] .why li:nth-child(2)`)
	shot("deployments-queued")
	if why := text(`#deployments tr[data-state="queued"] .why`); !strings.Contains(why, "resource") {
		t.Errorf("the queued deployment's reasons %q do not name the resource", why)
	}

	// A task's output volume: listed, then a file downloaded in chunks and
	// checked against the manifest's SHA-256 (fetch, Blob, crypto.subtle).
	must("deploy page", b.Navigate(ctx, base+"/ui/deploy"))
	visible("#ensemble")
	must("paste the writer", b.SetValue(ctx, "#ensemble", dashboardWriter(image)))
	must("type the passphrase", b.Type(ctx, "#passphrase", e2etest.Passphrase))
	must("deploy the writer", b.Click(ctx, "#deploy"))
	visible(`body[data-page="deployment"]`)
	visible(`#state.s-completed`)
	vol := `#results li[data-volume="writer/out"]`
	visible(vol + ` button`)
	must("list the files", b.Click(ctx, vol+` button`))
	visible(vol + ` li button`)
	must("download", b.Click(ctx, vol+` li button`))
	must("checked", b.Poll(ctx, `document.querySelector('`+vol+` li .hint').textContent.includes("SHA-256 checked")`, 10*time.Second))
	shot("deployment-outputs")
	must("capabilities", b.Navigate(ctx, base+"/ui/caps"))
	visible(`#anchors tbody tr td`)
	shot("capabilities")

	// Shut it down and see it stopped, from the keyboard: from the index
	// to the deployment's page, then its Shut down button.
	shutdownAt := time.Now()
	must("index again", b.Navigate(ctx, base+"/ui/deployments"))
	visible(`#deployments tr[data-id="` + id + `"]`)
	tabTo(`#deployments a[href="/ui/deployments/` + id + `"]`)
	must("open by keyboard", b.Keys(ctx, bidi.Enter))
	visible(`body[data-page="deployment"]`)
	must("enabled", b.Poll(ctx, `!!document.querySelector("#shutdown") && !document.querySelector("#shutdown").disabled`, wait))
	tabTo("#shutdown")
	// Enter on the focused button. Firefox 153 delivers WebDriver's key
	// events to a button (keydown, keypress, keyup fire) but does not run
	// its activation behaviour for them, in any page (links and forms do
	// act on them, see above); then the focused button is clicked.
	must("shut down", b.Keys(ctx, bidi.Enter))
	if err := b.Poll(ctx, `document.querySelector("#shutdown").disabled`, 2*time.Second); err != nil {
		t.Logf("Enter on the focused Shut down button did nothing in 2 s (Firefox's WebDriver key events do not activate buttons); clicking it")
		must("shut down by click", b.Click(ctx, "#shutdown"))
	}
	visible(`#state.s-stopped`)
	shot("deployment-stopped")
	stopped := logged + time.Since(shutdownAt)
	select {
	case p := <-prompts:
		t.Logf("accepted %s", p)
	default:
		t.Error("no confirmation was asked before the shutdown")
	}
	checkDashboardStopped(t, c, id, "firefox", running, logged, stopped, time.Since(start), shots)

	// The dark scheme: Firefox 153's WebDriver BiDi cannot emulate
	// prefers-color-scheme (emulation.setMediaFeaturesOverride lands in
	// 159), so a second browser whose profile prefers dark logs in.
	if err := b.Close(); err != nil {
		t.Errorf("close firefox: %v", err)
	}
	dark, err := bidi.Start(ctx, bidi.Options{Binary: browser, Prefs: map[string]any{"layout.css.prefers-color-scheme.content-override": 0}})
	if err != nil {
		t.Fatalf("start firefox (dark): %v", err)
	}
	defer func() {
		if err := dark.Close(); err != nil {
			t.Errorf("close firefox (dark): %v", err)
		}
	}()
	b = dark
	must("open", b.Navigate(ctx, base+"/ui/"))
	visible("#token")
	must("type the token", b.Type(ctx, "#token", token+bidi.Enter))
	visible(`#peers tbody tr:nth-child(2) td`)
	var scheme struct {
		Dark bool   `json:"dark"`
		Bg   string `json:"bg"`
	}
	must("scheme", b.Evaluate(ctx, `({dark: matchMedia("(prefers-color-scheme: dark)").matches, bg: getComputedStyle(document.body).backgroundColor})`, &scheme))
	if !scheme.Dark || scheme.Bg == "rgb(255, 255, 255)" {
		t.Errorf("dark scheme: prefers dark %v, background %s", scheme.Dark, scheme.Bg)
	}
	shot("overview-dark")
}
