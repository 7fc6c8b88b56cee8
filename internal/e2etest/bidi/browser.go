package bidi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Keys for Keys and Type, as WebDriver spells them.
const (
	Backspace = "\uE003"
	Tab       = "\uE004"
	Enter     = "\uE007"
	Escape    = "\uE00C"
)

// Options configures Start. The zero value starts firefox-esr (else
// firefox) from PATH with a 1280×900 viewport.
type Options struct {
	Binary string // the Firefox binary; default: firefox-esr, else firefox, on PATH
	// Prefs are written to the profile's user.js over the defaults
	// (Prefs); a nil value removes a default.
	Prefs         map[string]any
	Width, Height int           // the viewport; default 1280×900
	StartTimeout  time.Duration // from exec to a session; default 90 s
	// Logf receives the browser's output, line by line; nil drops it (the
	// last lines are kept for errors either way).
	Logf func(format string, args ...any)
	// Trace sends every protocol frame to Logf too (truncated).
	Trace bool
}

// Prefs are the profile preferences Start writes by default: no first-run
// pages, no default-browser check, no telemetry, no updates, WebDriver BiDi
// only.
var Prefs = map[string]any{
	"remote.active-protocols":                           1, // WebDriver BiDi, no CDP
	"browser.shell.checkDefaultBrowser":                 false,
	"browser.startup.homepage_override.mstone":          "ignore",
	"browser.startup.page":                              0,
	"browser.aboutwelcome.enabled":                      false,
	"datareporting.policy.dataSubmissionEnabled":        false,
	"datareporting.healthreport.uploadEnabled":          false,
	"toolkit.telemetry.reportingpolicy.firstRun":        false,
	"toolkit.telemetry.enabled":                         false,
	"app.update.disabledForTesting":                     true,
	"browser.tabs.warnOnClose":                          false,
	"browser.sessionstore.resume_from_crash":            false,
	"signon.rememberSignons":                            false, // no "save password?" panel after the login form
	"browser.translations.automaticallyPopup":           false,
	"extensions.getAddons.cache.enabled":                false,
	"network.captive-portal-service.enabled":            false,
	"browser.safebrowsing.update.enabled":               false,
	"browser.newtabpage.activity-stream.feeds.topsites": false,
	// Nothing to fetch from Mozilla's services at start-up (there may be
	// no network, and waiting for it slows the first window).
	"app.normandy.enabled":                        false,
	"messaging-system.rsexperimentloader.enabled": false,
	"services.settings.server":                    "data:,#remote-settings-dummy/v1",
	"browser.backup.enabled":                      false,
	"browser.backup.scheduled.enabled":            false,
	"browser.newtabpage.enabled":                  false,
	"browser.startup.homepage":                    "about:blank",
	"extensions.update.enabled":                   false,
	"browser.region.network.url":                  "",
	"browser.search.geoip.url":                    "",
	"network.connectivity-service.enabled":        false,
	"browser.ping-centre.telemetry":               false,
}

// Find returns the path of the Firefox binary: firefox-esr, else firefox,
// on PATH.
func Find() (string, error) {
	for _, name := range []string{"firefox-esr", "firefox"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no firefox-esr or firefox on PATH (apt-get install firefox-esr)")
}

// Browser is a running Firefox with one WebDriver BiDi session and its
// top-level browsing context (the tab the commands act on).
type Browser struct {
	*Conn
	Context string // the top-level browsing context's id

	cmd     *exec.Cmd
	profile string
	exited  chan struct{} // closed when the process has exited
	output  *os.File      // the read end of the process's stdout and stderr
	outDone chan struct{} // closed when the reader of output has returned
	out     *tail
	close   sync.Once
	errc    error
}

var listening = regexp.MustCompile(`WebDriver BiDi listening on (ws://\S+)`)

// Start starts Firefox headless in its own process group with a new
// profile, opens a session (session.new) and sets the viewport. On error
// nothing is left running. Close the Browser when done.
func Start(ctx context.Context, opts Options) (b *Browser, err error) {
	if opts.Binary == "" {
		if opts.Binary, err = Find(); err != nil {
			return nil, err
		}
	}
	if opts.Width, opts.Height, err = viewport(opts.Width, opts.Height); err != nil {
		return nil, err
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 90 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()

	profile, err := os.MkdirTemp("", "dms-firefox-")
	if err != nil {
		return nil, fmt.Errorf("bidi: profile: %w", err)
	}
	prefs := maps.Clone(Prefs)
	for k, v := range opts.Prefs {
		if v == nil {
			delete(prefs, k)
		} else {
			prefs[k] = v
		}
	}
	userJS, err := formatPrefs(prefs)
	if err != nil {
		os.RemoveAll(profile)
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(profile, "user.js"), userJS, 0o600); err != nil {
		os.RemoveAll(profile)
		return nil, fmt.Errorf("bidi: profile: %w", err)
	}

	cmd := exec.Command(opts.Binary, "--headless", "--no-remote", "--profile", profile, "--remote-debugging-port", "0")
	cmd.Env = append(os.Environ(), "MOZ_HEADLESS=1", "MOZ_CRASHREPORTER_DISABLE=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	pr, pw, err := os.Pipe()
	if err != nil {
		os.RemoveAll(profile)
		return nil, fmt.Errorf("bidi: pipe: %w", err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		os.RemoveAll(profile)
		return nil, fmt.Errorf("bidi: start %s: %w", opts.Binary, err)
	}
	pw.Close()
	b = &Browser{cmd: cmd, profile: profile, exited: make(chan struct{}), output: pr, outDone: make(chan struct{}), out: &tail{max: 40}}
	go func() {
		cmd.Wait()
		close(b.exited)
	}()
	defer func() {
		if err != nil {
			b.Close()
		}
	}()

	urls := make(chan string, 1)
	go func() {
		defer close(b.outDone)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			b.out.add(line)
			if opts.Logf != nil {
				opts.Logf("firefox: %s", line)
			}
			if m := listening.FindStringSubmatch(line); m != nil {
				select {
				case urls <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	began := time.Now()
	logf := func(format string, args ...any) {
		if opts.Logf != nil {
			opts.Logf("bidi: %v: "+format, append([]any{time.Since(began).Round(time.Millisecond)}, args...)...)
		}
	}
	var url string
	select {
	case url = <-urls:
	case <-b.exited:
		return nil, fmt.Errorf("bidi: %s exited before it listened (%v); its output:\n%s", opts.Binary, cmd.ProcessState, b.out)
	case <-ctx.Done():
		return nil, fmt.Errorf("bidi: %s did not say where it listens within %v; its output:\n%s", opts.Binary, opts.StartTimeout, b.out)
	}

	logf("listening on %s", url)
	if b.Conn, err = Dial(ctx, url+"/session"); err != nil {
		return nil, err
	}
	if opts.Trace && opts.Logf != nil {
		b.Conn.Trace(func(dir string, data []byte) { opts.Logf("bidi %s %.600s", dir, data) })
	}
	var sess struct {
		SessionID    string `json:"sessionId"`
		Capabilities struct {
			BrowserName    string `json:"browserName"`
			BrowserVersion string `json:"browserVersion"`
		} `json:"capabilities"`
	}
	// Prompts (alert, confirm) stay open until HandlePrompts answers them.
	caps := map[string]any{"alwaysMatch": map[string]any{"unhandledPromptBehavior": map[string]any{"default": "ignore"}}}
	if err = b.Call(ctx, "session.new", map[string]any{"capabilities": caps}, &sess); err != nil {
		return nil, err
	}
	logf("session %s with %s %s", sess.SessionID, sess.Capabilities.BrowserName, sess.Capabilities.BrowserVersion)
	var tree struct {
		Contexts []struct {
			Context string `json:"context"`
		} `json:"contexts"`
	}
	if err = b.Call(ctx, "browsingContext.getTree", map[string]any{"maxDepth": 0}, &tree); err != nil {
		return nil, err
	}
	if len(tree.Contexts) == 0 {
		return nil, errors.New("bidi browsingContext.getTree: the browser has no top-level browsing context")
	}
	b.Context = tree.Contexts[0].Context
	if err = b.SetViewport(ctx, opts.Width, opts.Height, 1); err != nil {
		return nil, err
	}
	return b, nil
}

// viewport returns the viewport Start sets: width and height, each
// defaulting to 1280×900's when 0; a negative one is an error.
func viewport(width, height int) (int, int, error) {
	if width < 0 || height < 0 {
		return 0, 0, fmt.Errorf("bidi: viewport %d×%d", width, height)
	}
	if width == 0 {
		width = 1280
	}
	if height == 0 {
		height = 900
	}
	return width, height, nil
}

// formatPrefs writes prefs as user.js lines, sorted by name.
func formatPrefs(prefs map[string]any) ([]byte, error) {
	var buf bytes.Buffer
	for _, k := range slices.Sorted(maps.Keys(prefs)) {
		switch prefs[k].(type) {
		case bool, string, int:
		default:
			return nil, fmt.Errorf("bidi: pref %s: a %T (want bool, string or int)", k, prefs[k])
		}
		name, _ := json.Marshal(k)
		val, _ := json.Marshal(prefs[k])
		fmt.Fprintf(&buf, "user_pref(%s, %s);\n", name, val)
	}
	return buf.Bytes(), nil
}

// Close ends the session and the browser (browser.close, else
// session.end), kills what is left of its process group, and removes the
// profile. It waits for each step against a deadline and is safe to call
// more than once.
func (b *Browser) Close() error {
	b.close.Do(func() {
		var errs []error
		if b.Conn != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := b.Call(ctx, "browser.close", nil, nil); err != nil && !errors.Is(err, ErrClosed) {
				if err := b.Call(ctx, "session.end", nil, nil); err != nil && !errors.Is(err, ErrClosed) {
					errs = append(errs, err)
				}
			}
			cancel()
			if err := b.Conn.Close(); err != nil {
				errs = append(errs, err)
			}
			// Firefox exits by itself after browser.close.
			select {
			case <-b.exited:
			case <-time.After(10 * time.Second):
			}
		}
		// Whatever is left of the group (content processes, or all of it).
		if err := syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("bidi: kill process group %d: %w", b.cmd.Process.Pid, err))
		}
		select {
		case <-b.exited:
		case <-time.After(10 * time.Second):
			errs = append(errs, fmt.Errorf("bidi: firefox (pid %d) still running 10 s after SIGKILL", b.cmd.Process.Pid))
		}
		// The reader of the output ends at its end of file, once the
		// group is gone (a process that left the group may hold it open:
		// then closing it ends the read). After Close, Options.Logf is
		// not called again (a test's t.Logf would panic).
		select {
		case <-b.outDone:
		case <-time.After(5 * time.Second):
		}
		b.output.Close()
		<-b.outDone
		// A child that was still writing may briefly refill it.
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := os.RemoveAll(b.profile)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("bidi: remove profile: %w", err))
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		b.errc = errors.Join(errs...)
	})
	return b.errc
}

// Output returns the browser's last lines of output.
func (b *Browser) Output() string { return b.out.String() }

// Navigate loads url in the tab and waits until the document is complete
// (browsingContext.navigate, wait "complete").
func (b *Browser) Navigate(ctx context.Context, url string) error {
	return b.Call(ctx, "browsingContext.navigate", map[string]any{"context": b.Context, "url": url, "wait": "complete"}, nil)
}

// SetViewport sets the tab's viewport in CSS pixels and its device pixel
// ratio (browsingContext.setViewport).
func (b *Browser) SetViewport(ctx context.Context, width, height int, devicePixelRatio float64) error {
	if width <= 0 || height <= 0 || devicePixelRatio <= 0 {
		return fmt.Errorf("bidi: viewport %d×%d at %v", width, height, devicePixelRatio)
	}
	return b.Call(ctx, "browsingContext.setViewport", map[string]any{
		"context":          b.Context,
		"viewport":         map[string]int{"width": width, "height": height},
		"devicePixelRatio": devicePixelRatio,
	}, nil)
}

// Screenshot returns a PNG of the whole document, not only the viewport
// (browsingContext.captureScreenshot, origin "document").
func (b *Browser) Screenshot(ctx context.Context) ([]byte, error) {
	var r struct {
		Data string `json:"data"`
	}
	err := b.Call(ctx, "browsingContext.captureScreenshot", map[string]any{
		"context": b.Context,
		"origin":  "document",
		"format":  map[string]string{"type": "image/png"},
	}, &r)
	if err != nil {
		return nil, err
	}
	return decodePNG(r.Data)
}

var pngMagic = []byte("\x89PNG\r\n\x1a\n")

// decodePNG decodes a screenshot's base64 and checks it is a PNG.
func decodePNG(data string) ([]byte, error) {
	png, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return nil, fmt.Errorf("bidi browsingContext.captureScreenshot: base64: %w", err)
	}
	if !bytes.HasPrefix(png, pngMagic) {
		return nil, fmt.Errorf("bidi browsingContext.captureScreenshot: not a PNG (%d bytes starting %.8q)", len(png), png)
	}
	return png, nil
}

// Evaluate runs a JavaScript expression in the tab's page, waits for it
// when it is a promise, and stores its value in out (see Decode; nil
// discards it). A script that throws is a *ScriptError.
func (b *Browser) Evaluate(ctx context.Context, expr string, out any) error {
	return b.runScript(ctx, "script.evaluate", map[string]any{"expression": expr}, out)
}

// CallFunction calls a JavaScript function declaration, e.g.
// `(sel, text) => ...`, with args (Go values: see encodeLocal) in the tab's
// page, waits for it when it returns a promise, and stores its value in out.
func (b *Browser) CallFunction(ctx context.Context, fn string, out any, args ...any) error {
	const method = "script.callFunction"
	locals := make([]localValue, len(args))
	for i, a := range args {
		l, err := encodeLocal(a)
		if err != nil {
			return fmt.Errorf("bidi %s: argument %d: %w", method, i, err)
		}
		locals[i] = l
	}
	return b.runScript(ctx, method, map[string]any{"functionDeclaration": fn, "arguments": locals}, out)
}

// runScript calls method (script.evaluate or script.callFunction) with
// params and the parameters both share: the tab as target, await a
// promise, keep no handle, run as a user gesture. It stores the script's
// value in out (nil discards it), or returns its exception as a
// *ScriptError.
func (b *Browser) runScript(ctx context.Context, method string, params map[string]any, out any) error {
	params["target"] = map[string]string{"context": b.Context}
	params["awaitPromise"] = true
	params["resultOwnership"] = "none"
	params["userActivation"] = true
	var raw json.RawMessage
	if err := b.Call(ctx, method, params, &raw); err != nil {
		return err
	}
	val, err := scriptResult(method, raw)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	v, err := decodeRemote(val)
	if err != nil {
		return fmt.Errorf("bidi %s: %w", method, err)
	}
	if err := assign(v, out); err != nil {
		return fmt.Errorf("bidi %s: %w", method, err)
	}
	return nil
}

// Poll evaluates the JavaScript expression cond every 50 ms until it is
// true, for at most timeout. Errors in between (the page navigating, an
// element not there yet) are retried; at the deadline the error says what
// the last evaluation gave.
func (b *Browser) Poll(ctx context.Context, cond string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		var ok any
		err := b.Evaluate(ctx, cond, &ok)
		switch {
		case err == nil && ok == true:
			return nil
		case err != nil:
			last = err.Error()
		default:
			last = fmt.Sprintf("%v", ok)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bidi: %s not true within %v (last: %s)", cond, timeout, last)
		case <-tick.C:
		}
	}
}

// visibleJS is true when the first element matching the selector (the
// function's argument) is rendered: it has a box and is not hidden.
const visibleJS = `(sel) => { const e = document.querySelector(sel); if (!e) return false; const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== "hidden"; }`

// Visible reports whether an element matching the CSS selector is rendered.
func (b *Browser) Visible(ctx context.Context, sel string) (bool, error) {
	var ok bool
	err := b.CallFunction(ctx, visibleJS, &ok, sel)
	return ok, err
}

// WaitVisible waits, for at most timeout, until an element matching the
// CSS selector is rendered.
func (b *Browser) WaitVisible(ctx context.Context, sel string, timeout time.Duration) error {
	enc, _ := json.Marshal(sel)
	return b.Poll(ctx, fmt.Sprintf("(%s)(%s)", visibleJS, enc), timeout)
}

// Text returns the text content of the first element matching the CSS
// selector; no such element is an error.
func (b *Browser) Text(ctx context.Context, sel string) (string, error) {
	var s string
	err := b.CallFunction(ctx, `(sel) => { const e = document.querySelector(sel); if (!e) throw new Error("no element matches " + sel); return e.textContent; }`, &s, sel)
	return s, err
}

// SetValue sets a form field's value as a paste would, firing input and
// change events.
func (b *Browser) SetValue(ctx context.Context, sel, value string) error {
	return b.CallFunction(ctx, `(sel, v) => { const e = document.querySelector(sel); if (!e) throw new Error("no element matches " + sel); e.focus(); e.value = v; e.dispatchEvent(new Event("input", {bubbles: true})); e.dispatchEvent(new Event("change", {bubbles: true})); }`, nil, sel, value)
}

// Focus gives the first element matching the CSS selector the focus.
func (b *Browser) Focus(ctx context.Context, sel string) error {
	return b.CallFunction(ctx, `(sel) => { const e = document.querySelector(sel); if (!e) throw new Error("no element matches " + sel); e.focus(); if (document.activeElement !== e) throw new Error(sel + " cannot take the focus"); }`, nil, sel)
}

// Type focuses the element matching the CSS selector and types text into
// it, key by key (input.performActions); "\n" and Enter press Enter, Tab
// presses Tab.
func (b *Browser) Type(ctx context.Context, sel, text string) error {
	if err := b.Focus(ctx, sel); err != nil {
		return err
	}
	return b.Keys(ctx, text)
}

// Keys presses and releases each key of keys in turn, as the keyboard
// would (input.performActions): characters, or the named keys Tab, Enter,
// Backspace, Escape.
func (b *Browser) Keys(ctx context.Context, keys string) error {
	actions, err := keyActions(keys)
	if err != nil {
		return err
	}
	return b.Call(ctx, "input.performActions", map[string]any{
		"context": b.Context,
		"actions": []any{map[string]any{"type": "key", "id": "keyboard", "actions": actions}},
	}, nil)
}

// keyActions turns text into keyDown/keyUp pairs, one per character ("\n"
// is Enter).
func keyActions(keys string) ([]map[string]string, error) {
	if keys == "" {
		return nil, errors.New("bidi input.performActions: no keys")
	}
	var actions []map[string]string
	for _, r := range keys {
		k := string(r)
		switch r {
		case '\n':
			k = Enter
		case '\r':
			continue
		case '\uFFFD':
			return nil, errors.New("bidi input.performActions: keys are not valid UTF-8")
		}
		actions = append(actions, map[string]string{"type": "keyDown", "value": k}, map[string]string{"type": "keyUp", "value": k})
	}
	return actions, nil
}

// Click scrolls the first element matching the CSS selector into view and
// clicks its centre with the mouse (input.performActions: move, press,
// release).
func (b *Browser) Click(ctx context.Context, sel string) error {
	var node struct {
		SharedID string `json:"sharedId"`
	}
	raw := json.RawMessage{}
	err := b.Call(ctx, "script.callFunction", map[string]any{
		"functionDeclaration": `(sel) => { const e = document.querySelector(sel); if (!e) throw new Error("no element matches " + sel); e.scrollIntoView({block: "center", inline: "center"}); return e; }`,
		"arguments":           []localValue{{Type: "string", Value: sel}},
		"target":              map[string]string{"context": b.Context},
		"awaitPromise":        true,
		"resultOwnership":     "none",
	}, &raw)
	if err != nil {
		return err
	}
	val, err := scriptResult("script.callFunction", raw)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(val, &node); err != nil || node.SharedID == "" {
		return fmt.Errorf("bidi: %s is not an element the browser can point at (%.200s)", sel, val)
	}
	origin := map[string]any{"type": "element", "element": map[string]string{"sharedId": node.SharedID}}
	return b.Call(ctx, "input.performActions", map[string]any{
		"context": b.Context,
		"actions": []any{map[string]any{"type": "pointer", "id": "mouse", "parameters": map[string]string{"pointerType": "mouse"}, "actions": []any{
			map[string]any{"type": "pointerMove", "x": 0, "y": 0, "origin": origin},
			map[string]any{"type": "pointerDown", "button": 0},
			map[string]any{"type": "pointerUp", "button": 0},
		}}},
	}, nil)
}

// Prompt is a user prompt (alert, confirm, prompt, beforeunload) a page
// opened.
type Prompt struct {
	Context string `json:"context"`
	Type    string `json:"type"`
	Message string `json:"message"`
}

// HandlePrompts subscribes to the prompts pages open
// (browsingContext.userPromptOpened) and answers each with decide's
// verdict (browsingContext.handleUserPrompt: accept or dismiss). An answer
// that fails goes to logf.
func (b *Browser) HandlePrompts(ctx context.Context, decide func(Prompt) bool, logf func(string, ...any)) error {
	b.OnEvent("browsingContext.userPromptOpened", func(params json.RawMessage) {
		var p Prompt
		if err := json.Unmarshal(params, &p); err != nil {
			logf("bidi: browsingContext.userPromptOpened: %v", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := b.Call(ctx, "browsingContext.handleUserPrompt", map[string]any{"context": p.Context, "accept": decide(p)}, nil)
		if err != nil {
			logf("bidi: %s %q: %v", p.Type, p.Message, err)
		}
	})
	return b.Subscribe(ctx, "browsingContext.userPromptOpened")
}

// tail keeps the last lines of the browser's output for error messages.
type tail struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func (t *tail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
	if len(t.lines) > t.max {
		t.lines = t.lines[len(t.lines)-t.max:]
	}
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}
