package web_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/web"
)

// concretePath turns a route pattern into a path a client can ask for.
func concretePath(p string) string {
	p = strings.ReplaceAll(p, "{$}", "")
	p = strings.ReplaceAll(p, "{file}", "root.crt")
	if strings.HasSuffix(p, "/static/") {
		p += "style.css"
	}
	return p
}

// TestRouteTable checks every row of the route table for what its row
// says: JSON routes live under /api/, EST routes under /.well-known/est/;
// every route with a body refuses a
// cross-origin request (403) and an oversized body (413); a session route
// without a session leads GET to /login and refuses anything else (401); a
// certificate route without a certificate is 401; a Basic route without
// credentials is 401 with a Basic challenge, whatever the session; a
// console route (under /admin/) refuses a user and a password session
// (403) and is otherwise a session route; a route with its own body limit
// is held to it. A new route is checked by being a row.
func TestRouteTable(t *testing.T) {
	e := newEnv(t)
	e.addUser("tess", "tess@example.com", "tess password 1")
	withSession := e.client(nil)
	e.login(withSession, "tess", "tess password 1")
	e.addUser("uma", "uma@example.com", "uma password 1")
	u := e.client(nil)
	e.login(u, "uma", "uma password 1")
	cert, _ := e.getCertificate(u, "uma")
	withCert := e.client(cert)
	if r := e.get(withCert, "/"); r.StatusCode != http.StatusOK {
		t.Fatalf("certificate sign-in: %d", r.StatusCode)
	}
	anonymous := e.client(nil)
	admin, _ := e.certClient("ada", certportal.RoleAdmin)

	routes := e.web.Routes()
	if len(routes) < 20 {
		t.Fatalf("the route table has %d rows", len(routes))
	}
	for _, rt := range routes {
		limit := int64(web.DefaultMaxBody)
		if rt.MaxBody > 0 {
			limit = rt.MaxBody
		}
		big := "p12_password=" + strings.Repeat("x", int(limit)+1)
		path := concretePath(rt.Path)
		name := rt.Method + " " + rt.Path
		if rt.JSON != strings.HasPrefix(path, "/api/") {
			t.Errorf("%s: JSON %v, but JSON routes are exactly those under /api/", name, rt.JSON)
		}
		if rt.EST != strings.HasPrefix(path, "/.well-known/est/") {
			t.Errorf("%s: EST %v, but EST routes are exactly those under /.well-known/est/", name, rt.EST)
		}
		console := rt.Access == web.Helpdesk || rt.Access == web.Admin
		if console != strings.HasPrefix(path, "/admin/") {
			t.Errorf("%s: access %v, but the console's routes are exactly those under /admin/", name, rt.Access)
		}
		if console {
			// Never for a password session or a user, whatever the method.
			for _, c := range []*http.Client{withSession, withCert} {
				req, _ := http.NewRequest(rt.Method, e.srv.URL+path, strings.NewReader("x=1"))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				if r := e.do(c, req); r.StatusCode != http.StatusForbidden {
					t.Errorf("%s by a user (password or certificate): %d, want 403", name, r.StatusCode)
				}
			}
		}
		if rt.Method == http.MethodGet {
			if rt.Access == web.Session || console {
				if r := e.get(anonymous, path); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/login" {
					t.Errorf("%s without a session: %d to %q, want 303 to /login", name, r.StatusCode, r.Header.Get("Location"))
				}
			}
			continue
		}
		// Cross-origin: refused before the handler, whoever asks.
		for _, c := range []*http.Client{withSession, withCert} {
			req, _ := http.NewRequest(rt.Method, e.srv.URL+path, strings.NewReader("x=1"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Sec-Fetch-Site", "cross-site")
			if r := e.do(c, req); r.StatusCode != http.StatusForbidden {
				t.Errorf("%s cross-site: %d, want 403", name, r.StatusCode)
			}
		}
		// Oversized: 413, by a caller the route lets in.
		c := withSession
		switch rt.Access {
		case web.Certificate, web.CertSession:
			c = withCert
		case web.Helpdesk, web.Admin:
			c = admin
		}
		if r := e.postRaw(c, path, "application/x-www-form-urlencoded", big); r.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("%s with a body over the limit: %d, want 413", name, r.StatusCode)
		}
		switch rt.Access {
		case web.CertSession:
			if r := e.postRaw(withSession, path, "application/x-www-form-urlencoded", "x=1"); r.StatusCode != http.StatusForbidden {
				t.Errorf("%s with a password session: %d, want 403", name, r.StatusCode)
			}
			fallthrough
		case web.Session, web.Helpdesk, web.Admin:
			if r := e.postRaw(anonymous, path, "application/x-www-form-urlencoded", "x=1"); r.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s without a session: %d, want 401", name, r.StatusCode)
			}
		case web.Certificate:
			if r := e.postRaw(withSession, path, "application/x-www-form-urlencoded", "x=1"); r.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s with a session but no certificate: %d, want 401", name, r.StatusCode)
			}
		case web.Basic:
			for _, c := range []*http.Client{withSession, withCert} {
				r := e.postRaw(c, path, "application/x-www-form-urlencoded", "x=1")
				if r.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Basic ") {
					t.Errorf("%s without credentials: %d, WWW-Authenticate %q; want 401 with a Basic challenge", name, r.StatusCode, r.Header.Get("WWW-Authenticate"))
				}
			}
		}
	}
}
