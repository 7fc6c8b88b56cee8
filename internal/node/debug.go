package node

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime/debug"
	"time"
)

// startDebug applies the memory limit and serves pprof on loopback when the
// configuration asks for it. The returned function stops the server.
func (n *Node) startDebug() (stop func() error, err error) {
	c := n.cfg.Config.Debug
	if c.MemoryLimit > 0 {
		debug.SetMemoryLimit(int64(c.MemoryLimit))
	}
	if c.Pprof == "" {
		return func() error { return nil }, nil
	}
	ln, err := net.Listen("tcp", c.Pprof)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	n.log.Info("pprof serving", "addr", ln.Addr().String())
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, nil
}
