// Package bidi is a small WebDriver BiDi client for browser tests: it
// starts a headless Firefox (firefox-esr) with a throw-away profile,
// opens a session on the browser's built-in WebDriver BiDi endpoint, and
// drives the page as a user would — navigate, type, press Tab and Enter,
// click, read the DOM through scripts, resize the viewport, take PNG
// screenshots — then shuts everything down. Firefox no longer speaks the
// Chrome DevTools Protocol, so chromedp cannot drive it; this package is
// what e2e's TestDashboardFirefox uses instead.
//
// # Usage
//
//	b, err := bidi.Start(ctx, bidi.Options{})      // firefox-esr on PATH
//	defer b.Close()                                  // session, process group, profile
//	err = b.Navigate(ctx, "http://127.0.0.1:1234/ui/")
//	err = b.WaitVisible(ctx, "#token", 10*time.Second)
//	err = b.Type(ctx, "#token", token+bidi.Enter)
//	var n int
//	err = b.Evaluate(ctx, `document.querySelectorAll("tr").length`, &n)
//	png, err := b.Screenshot(ctx)
//
// # Protocol
//
// One JSON message per WebSocket frame: commands {id, method, params};
// answers {type: "success", id, result} or {type: "error", id, error,
// message}; events {type: "event", method, params}. A browser error becomes
// an *Error that names the command; a script that throws a *ScriptError.
// A message outside the protocol ends the connection with an error, so no
// command waits for an answer that cannot come. Every command has a
// deadline (the context's, else DefaultTimeout) and every wait (Poll,
// WaitVisible, start, shutdown) polls against one.
//
// # Concurrency
//
// A Browser and its Conn may be used from several goroutines; event
// handlers run on goroutines of their own and may send commands.
package bidi
