// Package ui is the node's web dashboard, served by internal/apiserver under
// /ui on the loopback API listener. Everything it needs is embedded in the
// binary (assets/): html/template pages, one stylesheet and one hand-written
// script, no build step.
//
// # Pages
//
//   - /ui/                 overview: this node, its resources, its peers
//   - /ui/deployments      the deployments index, rendered here from one
//     aggregate call (Config.Index) with a state filter; the script keeps
//     it current from GET /api/v1/dashboard/deployments/stream (SSE)
//   - /ui/deployments/{id} one deployment: allocations, timeline, live logs
//     (the NDJSON stream of /api/v1/deployments/{id}/logs), usage, outputs,
//     trace; changes arrive from /api/v1/deployments/{id}/stream (SSE)
//   - /ui/deploy           an ensemble, validated by POST /api/v1/validate,
//     submitted by POST /api/v1/dashboard/deploy
//   - /ui/caps             trusted roots, grants, revocations (read-only)
//
// The script reads the REST API with the session cookie and sends the
// X-DMS-CSRF header on every request that changes state. Authentication,
// the cookie and the Content-Security-Policy are the API server's
// (internal/apiserver, session.go): this package renders and serves files.
//
// # Usage
//
//	u := ui.New(ui.Config{Version: v, Index: index})
//	u.ServeHTTP(w, r)            // a request under /ui, authenticated
//	u.Login(w, http.StatusUnauthorized, "")
package ui

import (
	"bytes"
	"context"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/dmsnet/dms/api"
)

//go:embed assets/static assets/templates
var assets embed.FS

// Config configures the dashboard.
type Config struct {
	Version string
	// Index returns the deployments index, only those in state when set
	// (an unknown state is an error the page shows).
	Index func(ctx context.Context, state string) (*api.DeploymentIndex, error)
}

// UI serves the dashboard's pages and assets.
type UI struct {
	cfg    Config
	pages  map[string]*template.Template
	static http.Handler
}

// pageNames are the templates beside layout.html.
var pageNames = []string{"login", "overview", "deployments", "deployment", "deploy", "caps", "notfound"}

var funcs = template.FuncMap{
	"short": Short,
	"clock": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Local().Format("2006-01-02 15:04:05")
	},
	"rfc3339": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
}

// New parses the embedded templates (they are part of the binary: a
// failure is a bug, caught by the package's tests).
func New(cfg Config) *UI {
	u := &UI{cfg: cfg, pages: map[string]*template.Template{}}
	for _, name := range pageNames {
		u.pages[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(assets, "assets/templates/layout.html", "assets/templates/"+name+".html"))
	}
	sub, _ := fs.Sub(assets, "assets/static")
	u.static = http.StripPrefix("/ui/static/", http.FileServerFS(sub))
	return u
}

// Short shortens an ID or a peer ID for a table cell: its first 12
// characters (the full one is in the link or the title).
func Short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// page is what every template gets.
type page struct {
	Page, Title, Version, ID string
	Error                    string
	State                    string
	Index                    *api.DeploymentIndex
	States                   []stateCount
}

type stateCount struct {
	Name  string
	Count int
}

// Login writes the login page with status and an error line.
func (u *UI) Login(w http.ResponseWriter, status int, msg string) {
	u.render(w, status, "login", page{Title: "Log in", Error: msg})
}

// ServeHTTP serves a page or an asset under /ui.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/ui/static/") {
		u.static.ServeHTTP(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case path == "/ui":
		u.render(w, http.StatusOK, "overview", page{Title: "Overview"})
	case path == "/ui/deployments":
		u.deployments(w, r)
	case strings.HasPrefix(path, "/ui/deployments/") && !strings.Contains(path[len("/ui/deployments/"):], "/"):
		id := path[len("/ui/deployments/"):]
		u.render(w, http.StatusOK, "deployment", page{Title: "Deployment " + Short(id), ID: id})
	case path == "/ui/deploy":
		u.render(w, http.StatusOK, "deploy", page{Title: "Deploy"})
	case path == "/ui/caps":
		u.render(w, http.StatusOK, "caps", page{Title: "Capabilities"})
	default:
		u.render(w, http.StatusNotFound, "notfound", page{Title: "Not found"})
	}
}

// states are listed in the filter in this order.
var states = []string{"queued", "bidding", "committing", "provisioning", "running", "shutting-down", "completed", "failed", "stopped"}

func (u *UI) deployments(w http.ResponseWriter, r *http.Request) {
	state := r.URL.Query().Get("state")
	p := page{Title: "Deployments", State: state}
	ix, err := u.cfg.Index(r.Context(), state)
	if err != nil {
		ix, p.Error = &api.DeploymentIndex{}, err.Error()
		p.State = ""
	}
	p.Index = ix
	for _, s := range states {
		p.States = append(p.States, stateCount{s, ix.States[s]})
	}
	u.render(w, http.StatusOK, "deployments", p)
}

func (u *UI) render(w http.ResponseWriter, status int, name string, p page) {
	p.Page, p.Version = name, u.cfg.Version
	if p.Version == "" {
		p.Version = "dev"
	}
	var b bytes.Buffer
	if err := u.pages[name].ExecuteTemplate(&b, "layout", p); err != nil {
		http.Error(w, "render "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}
