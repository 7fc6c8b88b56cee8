package apiserver

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dmsnet/dms/api"
)

// The dashboard (/ui) logs in with the API token once and then holds a
// session cookie:
//
//   - SessionCookie is HttpOnly (scripts cannot read it), SameSite=Strict
//     (no other site's page sends it) and Path=/; its value is
//     "<expiry>.<HMAC-SHA256 of the expiry keyed by the token>", so it is
//     not the token, a new token ends every session, and it expires after
//     sessionTTL. (Not Secure: the API is plain HTTP on loopback.)
//   - A request authenticated by the cookie that changes state (any method
//     but GET, HEAD, OPTIONS) must carry CSRFHeader and must not come from
//     another origin (http.CrossOriginProtection: Sec-Fetch-Site, else
//     Origin against Host). A form or an <img> of another site can set
//     neither; the API answers no CORS preflight, so no script of another
//     site can either.
//   - The bearer token works as before (scripts, the CLI); a browser never
//     sends it by itself, so those requests need no CSRF check.
const (
	SessionCookie = "dms_session"
	CSRFHeader    = "X-DMS-CSRF"
	sessionTTL    = 12 * time.Hour
)

// contentSecurityPolicy is sent with every /ui response: scripts, styles
// and connections from this origin only, no inline script, no framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

type auth int

const (
	authNone auth = iota
	authBearer
	authCookie
)

// authOf says how r is authenticated.
func (s *Server) authOf(r *http.Request, now time.Time) auth {
	if s.tokenOK(r) {
		return authBearer
	}
	if c, err := r.Cookie(SessionCookie); err == nil && s.sessionOK(c.Value, now) {
		return authCookie
	}
	return authNone
}

// session returns a session cookie value valid until expiry.
func (s *Server) session(expiry time.Time) string {
	exp := strconv.FormatInt(expiry.Unix(), 10)
	return exp + "." + hex.EncodeToString(s.sessionMAC(exp))
}

func (s *Server) sessionMAC(exp string) []byte {
	m := hmac.New(sha256.New, []byte(s.cfg.Token))
	m.Write([]byte("dms-ui-session/v1/" + exp))
	return m.Sum(nil)
}

// sessionOK checks a session cookie value: its MAC, then its expiry.
func (s *Server) sessionOK(v string, now time.Time) bool {
	exp, mac, ok := strings.Cut(v, ".")
	if !ok || len(exp) > 20 {
		return false
	}
	// One spelling only: the lower-case hex the server wrote.
	if subtle.ConstantTimeCompare([]byte(mac), []byte(hex.EncodeToString(s.sessionMAC(exp)))) != 1 {
		return false
	}
	sec, err := strconv.ParseInt(exp, 10, 64)
	return err == nil && now.Before(time.Unix(sec, 0))
}

// unsafeMethod reports whether m may change state.
func unsafeMethod(m string) bool {
	return m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions
}

// crossSite checks a request authenticated by the cookie: one that may
// change state needs CSRFHeader and the same origin.
func (s *Server) crossSite(r *http.Request) error {
	if !unsafeMethod(r.Method) {
		return nil
	}
	if err := s.origins.Check(r); err != nil {
		return err
	}
	if r.Header.Get(CSRFHeader) == "" {
		return errors.New("a request with the session cookie that changes state needs the " + CSRFHeader + " header")
	}
	return nil
}

// securityHeaders are set on every /ui answer.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
}

// serveUI answers /ui and everything under it: the static assets and the
// login page to anyone on loopback, the rest with a session (or the
// token); without one a page answers 401 with the login form.
func (s *Server) serveUI(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	if !loopbackHost(r.Host) {
		// DNS rebinding: a page of another site whose name now resolves
		// to 127.0.0.1 would be same-origin with what it loads.
		writeError(w, http.StatusMisdirectedRequest, api.CodeForbidden, "the dashboard answers under 127.0.0.1, [::1] or localhost only")
		return
	}
	now := time.Now()
	switch {
	case strings.HasPrefix(r.URL.Path, "/ui/static/"):
		w.Header().Del("Cache-Control")
		s.ui.ServeHTTP(w, r)
		return
	case r.URL.Path == "/ui/login":
		s.login(w, r, now)
		return
	case r.URL.Path == "/ui/logout" && r.Method == http.MethodPost:
		if err := s.origins.Check(r); err != nil {
			writeError(w, http.StatusForbidden, api.CodeForbidden, "cross-site request refused: "+err.Error())
			return
		}
		http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
		return
	}
	switch s.authOf(r, now) {
	case authNone:
		s.ui.Login(w, http.StatusUnauthorized, "")
		return
	case authCookie:
		if err := s.crossSite(r); err != nil {
			writeError(w, http.StatusForbidden, api.CodeForbidden, "cross-site request refused: "+err.Error())
			return
		}
	}
	s.ui.ServeHTTP(w, r)
}

// login shows the login form (GET) or checks the token it posts and sets
// the session cookie (POST).
func (s *Server) login(w http.ResponseWriter, r *http.Request, now time.Time) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.ui.Login(w, http.StatusOK, "")
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, POST")
		writeError(w, http.StatusMethodNotAllowed, api.CodeBadRequest, "GET or POST")
		return
	}
	if err := s.origins.Check(r); err != nil {
		writeError(w, http.StatusForbidden, api.CodeForbidden, "cross-site request refused: "+err.Error())
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	token := strings.TrimSpace(r.PostFormValue("token"))
	if subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.Token)) != 1 {
		s.log.Info("dashboard login refused", "remote", r.RemoteAddr)
		s.ui.Login(w, http.StatusUnauthorized, "Wrong token. It is in <home>/api.token.")
		return
	}
	expiry := now.Add(sessionTTL)
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: s.session(expiry), Path: "/",
		Expires: expiry, MaxAge: int(sessionTTL / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

// loopbackHost reports whether a Host header names this machine: a
// loopback IP or localhost, with or without a port.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
