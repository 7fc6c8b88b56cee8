// Package apiserver is the node's local REST API (under /api/v1/, described
// by api/openapi.yaml): it listens on loopback only, refuses requests whose
// remote address is not loopback (403), and needs the node's token on every
// endpoint but GET /api/v1/health (401 without), or the session cookie of
// the dashboard it serves under /ui (internal/ui; session.go). Errors are
// JSON with a stable code (api.ErrorBody) and the HTTP status that fits
// it. GET /metrics serves the node's Prometheus metrics (Config.Metrics) on
// the same listener, behind the same token.
//
// The server knows nothing of the node's internals: each area (node, peers,
// actor relay, and what later issues add) is a small interface declared here
// and implemented by internal/node. An area left nil answers 503.
package apiserver

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/config"
	"github.com/dmsnet/dms/internal/ui"
)

// Config configures a Server.
type Config struct {
	Addr    string // loopback host:port; port 0 picks one
	Token   string
	Version string
	Logger  *slog.Logger

	Node      NodeService
	Peers     PeerService
	Actors    RelayService
	Resources ResourceService
	Caps      CapService
	// Deployments is nil on a node that orchestrates nothing.
	Deployments DeploymentService
	// Plans is nil on a node that orchestrates nothing.
	Plans PlanService
	// Results is nil on a node that orchestrates nothing.
	Results ResultService
	// Contracts is nil on a node that keeps no contracts.
	Contracts ContractService
	// Traces is nil on a node that orchestrates nothing.
	Traces TraceService
	// Metrics serves GET /metrics (Prometheus) behind the token like
	// every endpoint; nil: 404 (telemetry.metrics is off).
	Metrics http.Handler
	// UserKey, when set, lets the dashboard deploy: it signs the user's
	// delegations with the passphrase typed in the deploy form.
	UserKey UserKeyService
}

// Server is the REST API.
type Server struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux
	ln  net.Listener
	srv *http.Server
	// routes lists "METHOD /path" of every registered endpoint (for the
	// OpenAPI consistency test).
	routes []string
	// ui is the dashboard under /ui (session.go); origins refuses
	// cross-origin requests that change state with the session cookie.
	ui      *ui.UI
	origins *http.CrossOriginProtection
}

// maxBody bounds request bodies.
const maxBody = 16 << 20

// New checks cfg and builds the server; it does not listen yet.
func New(cfg Config) (*Server, error) {
	if err := config.CheckLoopback(cfg.Addr); err != nil {
		return nil, fmt.Errorf("refusing to start the API: %w", err)
	}
	if len(cfg.Token) < 16 {
		return nil, errors.New("refusing to start the API without a token of at least 16 characters (run `dms init`)")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "api"), mux: http.NewServeMux(), origins: http.NewCrossOriginProtection()}
	s.routesV1()
	s.ui = ui.New(ui.Config{Version: cfg.Version, Index: s.index})
	return s, nil
}

// Listen binds the address and returns the bound address (with the port
// chosen when the configured port is 0).
func (s *Server) Listen() (net.Addr, error) {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("api listen %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	return ln.Addr(), nil
}

// Serve answers requests until ctx is done, then shuts down, letting
// requests in flight finish for up to 10 s.
func (s *Server) Serve(ctx context.Context) error {
	if s.ln == nil {
		if _, err := s.Listen(); err != nil {
			return err
		}
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	<-errc
	return err
}

// ServeHTTP applies the loopback and token checks, then routes. The
// dashboard's session cookie stands for the token, with a check against
// cross-site requests (session.go).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !fromLoopback(r.RemoteAddr) {
		writeError(w, http.StatusForbidden, api.CodeForbidden, "the API answers loopback clients only")
		return
	}
	if r.URL.Path == "/ui" || strings.HasPrefix(r.URL.Path, "/ui/") {
		s.serveUI(w, r)
		return
	}
	if r.URL.Path != "/api/v1/health" {
		switch s.authOf(r, time.Now()) {
		case authNone:
			writeError(w, http.StatusUnauthorized, api.CodeUnauthorized, "missing or wrong token (Authorization: Bearer <token from <home>/api.token>)")
			return
		case authCookie:
			if err := s.crossSite(r); err != nil {
				writeError(w, http.StatusForbidden, api.CodeForbidden, "cross-site request refused: "+err.Error())
				return
			}
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	s.mux.ServeHTTP(w, r)
}

func fromLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) tokenOK(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(s.cfg.Token)) == 1
}

// handle registers an endpoint. Under /api/v1/deployments/{id} the ID (and
// an allocation name) are resolved from unique prefixes first (resolve.go).
func (s *Server) handle(pattern string, h http.HandlerFunc) {
	s.routes = append(s.routes, pattern)
	if strings.Contains(pattern, deploymentPath) {
		h = s.resolving(h) // every handler taking a deployment ID takes a prefix
	}
	s.mux.HandleFunc(pattern, h)
}

// Routes lists the registered endpoints as "METHOD /path".
func (s *Server) Routes() []string { return append([]string(nil), s.routes...) }

// writeJSON writes v with status 200.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(api.ErrorResponse{Error: api.ErrorBody{Code: code, Message: msg}})
}

// decode reads a JSON body into v, refusing unknown fields; on failure it
// answers 400 and returns false.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("body exceeds %d bytes", mbe.Limit))
			return false
		}
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, "malformed JSON body: "+err.Error())
		return false
	}
	return true
}

func unavailable(w http.ResponseWriter, what string) {
	writeError(w, http.StatusServiceUnavailable, api.CodeUnavailable, what+" is not available on this node")
}
