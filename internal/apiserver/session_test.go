package apiserver

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// request builds a loopback request with the given headers.
func request(method, path, body string, headers map[string]string, cookie *http.Cookie) *http.Request {
	r := httptest.NewRequest(method, "http://127.0.0.1:7000"+path, strings.NewReader(body))
	r.RemoteAddr = "127.0.0.1:5555"
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	if cookie != nil {
		r.AddCookie(cookie)
	}
	return r
}

func serveReq(s *Server, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

// login posts the token to the login form as the login page does.
func login(t *testing.T, s *Server, tok string) *httptest.ResponseRecorder {
	t.Helper()
	return serveReq(s, request("POST", "/ui/login", url.Values{"token": {tok}}.Encode(),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1:7000"}, nil))
}

func sessionCookie(t *testing.T, w *httptest.ResponseRecorder) *http.Cookie {
	t.Helper()
	for _, c := range w.Result().Cookies() {
		if c.Name == SessionCookie {
			return c
		}
	}
	t.Fatalf("no %s cookie in %v", SessionCookie, w.Header()["Set-Cookie"])
	return nil
}

func TestLoginCookie(t *testing.T) {
	s := newBoardServer(t, newBoard(sampleDeployments()...), nil)
	w := login(t, s, token)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/ui/" {
		t.Fatalf("login = %d %q, want 303 to /ui/", w.Code, w.Header().Get("Location"))
	}
	c := sessionCookie(t, w)
	raw := w.Header().Get("Set-Cookie")
	for _, flag := range []string{"HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"} {
		if !strings.Contains(raw, flag) {
			t.Errorf("Set-Cookie %q lacks %s", raw, flag)
		}
	}
	if strings.Contains(c.Value, token) {
		t.Errorf("the cookie holds the token: %q", c.Value)
	}

	for _, tc := range []struct {
		name, tok, site, origin string
		wantStatus              int
	}{
		{"wrong token", "0123456789abcdef0123456789abcdeX", "same-origin", "", http.StatusUnauthorized},
		{"empty token", "", "same-origin", "", http.StatusUnauthorized},
		{"cross-site form", token, "cross-site", "https://evil.example", http.StatusForbidden},
		{"other origin, no fetch metadata", token, "", "https://evil.example", http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
			if tc.site != "" {
				h["Sec-Fetch-Site"] = tc.site
			}
			if tc.origin != "" {
				h["Origin"] = tc.origin
			}
			w := serveReq(s, request("POST", "/ui/login", url.Values{"token": {tc.tok}}.Encode(), h, nil))
			if w.Code != tc.wantStatus {
				t.Errorf("login = %d, want %d", w.Code, tc.wantStatus)
			}
			if len(w.Result().Cookies()) != 0 {
				t.Errorf("a refused login set %v", w.Header()["Set-Cookie"])
			}
		})
	}
}

func TestSessionAccess(t *testing.T) {
	s := newBoardServer(t, newBoard(sampleDeployments()...), nil)
	good := sessionCookie(t, login(t, s, token))
	other, _ := New(Config{Addr: "127.0.0.1:0", Token: "another-token-of-32-characters!!"})
	expired := &http.Cookie{Name: SessionCookie, Value: s.session(time.Now().Add(-time.Minute))}
	forged := &http.Cookie{Name: SessionCookie, Value: other.session(time.Now().Add(time.Hour))}
	tampered := &http.Cookie{Name: SessionCookie, Value: "99999999999" + good.Value[strings.Index(good.Value, "."):]}
	bearer := map[string]string{"Authorization": "Bearer " + token}
	tests := []struct {
		name, method, path string
		headers            map[string]string
		cookie             *http.Cookie
		wantStatus         int
		wantInBody         string
	}{
		{"page without auth: login form", "GET", "/ui/", nil, nil, 401, `id="token"`},
		{"deployments page without auth", "GET", "/ui/deployments", nil, nil, 401, `action="/ui/login"`},
		{"API without auth", "GET", "/api/v1/dashboard/deployments", nil, nil, 401, "unauthorized"},
		{"login page", "GET", "/ui/login", nil, nil, 200, `type="password"`},
		{"static asset without auth", "GET", "/ui/static/app.css", nil, nil, 200, "prefers-color-scheme"},
		{"page with cookie", "GET", "/ui/", nil, good, 200, `data-page="overview"`},
		{"page with bearer", "GET", "/ui/deployments", bearer, nil, 200, "drunning"},
		{"API with cookie", "GET", "/api/v1/dashboard/deployments", nil, good, 200, "dqueued"},
		{"expired cookie", "GET", "/api/v1/dashboard/deployments", nil, expired, 401, ""},
		{"cookie of another token", "GET", "/ui/", nil, forged, 401, ""},
		{"tampered expiry", "GET", "/ui/", nil, tampered, 401, ""},
		{"unknown page", "GET", "/ui/nowhere", nil, good, 404, "Not found"},
		{"health needs nothing", "GET", "/api/v1/health", nil, nil, 200, "ok"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := serveReq(s, request(tc.method, tc.path, "", tc.headers, tc.cookie))
			if w.Code != tc.wantStatus || !strings.Contains(w.Body.String(), tc.wantInBody) {
				t.Errorf("%s %s = %d, want %d with %q:\n%.300s", tc.method, tc.path, w.Code, tc.wantStatus, tc.wantInBody, w.Body)
			}
		})
	}
}

func TestCrossSiteRefused(t *testing.T) {
	s := newBoardServer(t, newBoard(sampleDeployments()...), fakeUserKey{"pw"})
	good := sessionCookie(t, login(t, s, token))
	same := map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1:7000", CSRFHeader: "1"}
	tests := []struct {
		name       string
		headers    map[string]string
		cookie     *http.Cookie
		wantStatus int
	}{
		{"same origin with the header", same, good, 200},
		{"cross-site fetch", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example", CSRFHeader: "1"}, good, 403},
		{"same-site subdomain", map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "http://evil.127.0.0.1.nip.io", CSRFHeader: "1"}, good, 403},
		{"other origin, old browser", map[string]string{"Origin": "https://evil.example", CSRFHeader: "1"}, good, 403},
		{"form post: no header", map[string]string{"Sec-Fetch-Site": "same-origin"}, good, 403},
		{"no header, no metadata", nil, good, 403},
		{"bearer needs no header", map[string]string{"Authorization": "Bearer " + token}, nil, 200},
		{"nothing", nil, nil, 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := serveReq(s, request("POST", "/api/v1/deployments/drunning/shutdown", "", tc.headers, tc.cookie))
			if w.Code != tc.wantStatus {
				t.Errorf("shutdown = %d, want %d: %s", w.Code, tc.wantStatus, w.Body)
			}
		})
	}
	// A GET with the cookie from another site reads nothing either: the
	// browser does not send a SameSite=Strict cookie; and no CORS header
	// lets another origin's script read an answer.
	w := serveReq(s, request("OPTIONS", "/api/v1/dashboard/deploy", "", map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}, nil))
	if got := w.Header().Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("preflight answered Access-Control-Allow-Origin: %q", got)
	}
	w = serveReq(s, request("GET", "/api/v1/dashboard/deployments", "", map[string]string{"Origin": "https://evil.example"}, good))
	if got := w.Header().Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("GET answered Access-Control-Allow-Origin: %q", got)
	}
	// Logout is a same-origin form too.
	w = serveReq(s, request("POST", "/ui/logout", "", map[string]string{"Sec-Fetch-Site": "cross-site"}, good))
	if w.Code != 403 {
		t.Errorf("cross-site logout = %d, want 403", w.Code)
	}
	w = serveReq(s, request("POST", "/ui/logout", "", map[string]string{"Sec-Fetch-Site": "same-origin"}, good))
	if c := sessionCookie(t, w); w.Code != http.StatusSeeOther || c.MaxAge >= 0 {
		t.Errorf("logout = %d, cookie %+v, want 303 and the cookie removed", w.Code, c)
	}
}

var inlineScript = regexp.MustCompile(`(?i)<script(?:\s+[^>]*)?>\s*[^<\s]|\son[a-z]+\s*=|javascript:|style="`)

func TestDashboardHost(t *testing.T) {
	s := newBoardServer(t, newBoard(), nil)
	for _, tc := range []struct {
		host string
		want int
	}{
		{"127.0.0.1:7000", 200}, {"localhost:7000", 200}, {"[::1]:7000", 200}, {"LOCALHOST", 200}, {"127.0.0.2", 200},
		{"evil.example:7000", http.StatusMisdirectedRequest}, {"127.0.0.1.nip.io:7000", http.StatusMisdirectedRequest}, {"", http.StatusMisdirectedRequest},
	} {
		r := request("GET", "/ui/login", "", nil, nil)
		r.Host = tc.host
		if w := serveReq(s, r); w.Code != tc.want {
			t.Errorf("GET /ui/login with Host %q = %d, want %d", tc.host, w.Code, tc.want)
		}
	}
}

func TestContentSecurityPolicy(t *testing.T) {
	s := newBoardServer(t, newBoard(sampleDeployments()...), nil)
	good := sessionCookie(t, login(t, s, token))
	for _, path := range []string{"/ui/login", "/ui/", "/ui/deployments", "/ui/deployments/drunning", "/ui/deploy", "/ui/caps", "/ui/nowhere"} {
		t.Run(path, func(t *testing.T) {
			w := serveReq(s, request("GET", path, "", nil, good))
			csp := w.Header().Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "connect-src 'self'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %s", csp, want)
				}
			}
			if strings.Contains(csp, "unsafe") || strings.Contains(csp, "*") {
				t.Errorf("CSP %q is not strict", csp)
			}
			if w.Header().Get("X-Content-Type-Options") != "nosniff" || w.Header().Get("X-Frame-Options") != "DENY" {
				t.Errorf("headers %v", w.Header())
			}
			if m := inlineScript.FindString(w.Body.String()); m != "" {
				t.Errorf("page has inline script or style the CSP would block: %q", m)
			}
		})
	}
}
