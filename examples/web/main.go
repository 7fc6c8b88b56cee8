// Command web is the container of examples/multi.yaml: a small HTTP
// service, built as a static binary into a one-file image (no registry
// needed; scripts/example-images.sh builds it).
//
//	web serve :8080 "text to serve"   answers every GET with the text
//	web fetch URL                     prints the body of URL, exits 1 on failure
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: web serve ADDR [TEXT] | web fetch URL")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		text := "hello from the web allocation\n"
		if len(os.Args) > 3 {
			text = os.Args[3] + "\n"
		}
		os.Exit(serve(os.Args[2], text))
	case "fetch":
		os.Exit(fetch(os.Args[2]))
	}
	fmt.Fprintf(os.Stderr, "web: unknown command %q\n", os.Args[1])
	os.Exit(2)
}

func serve(addr, text string) int {
	srv := &http.Server{Addr: addr, ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// An access log line with the client, as web servers write them: dms
		// leaves out the lines of its own health checks (their User-Agent).
		fmt.Printf("%s %s %q\n", r.Method, r.URL.Path, r.UserAgent())
		io.WriteString(w, text)
	})}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Shutdown(context.Background())
	}()
	fmt.Printf("serving on %s\n", addr)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func fetch(url string) int {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer resp.Body.Close()
	io.Copy(os.Stdout, resp.Body)
	if resp.StatusCode/100 != 2 {
		return 1
	}
	return 0
}
