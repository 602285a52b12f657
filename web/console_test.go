package web_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/portal"
	"github.com/certportal/certportal/web"
)

// consoleEnv is a portal with the callers SPEC.md's console rules name:
// a user signed in by certificate, a helpdesk account signed in by
// password, a helpdesk account and an admin signed in by certificate, and
// nobody; tina is the account they work on.
type consoleEnv struct {
	*env
	anonymous, userCert, helpPassword, helpCert, adminCert *http.Client
	tinaCert                                               *tls.Certificate
	tinaClient                                             *http.Client
}

// certClient makes an account that signs in by certificate, with role,
// and returns its browser, signed in, and its certificate.
func (e *env) certClient(id string, role certportal.Role) (*http.Client, *tls.Certificate) {
	e.t.Helper()
	pw := id + " password 1"
	e.addUser(id, id+"@example.com", pw)
	if role != certportal.RoleUser {
		if _, err := e.svc.SetRole(context.Background(), portal.Admin, id, role); err != nil {
			e.t.Fatal(err)
		}
	}
	c := e.client(nil)
	e.login(c, id, pw)
	cert, _ := e.getCertificate(c, id)
	withCert := e.client(cert)
	if r := e.get(withCert, "/"); r.StatusCode != http.StatusOK {
		e.t.Fatalf("%s: certificate sign-in: %d", id, r.StatusCode)
	}
	return withCert, cert
}

func newConsoleEnv(t *testing.T) *consoleEnv {
	e := &consoleEnv{env: newEnv(t)}
	e.anonymous = e.client(nil)
	e.userCert, _ = e.certClient("uma", certportal.RoleUser)
	e.helpCert, _ = e.certClient("hank", certportal.RoleHelpdesk)
	e.adminCert, _ = e.certClient("ada", certportal.RoleAdmin)
	e.tinaClient, e.tinaCert = e.certClient("tina", certportal.RoleUser)
	// A helpdesk account that has no certificate yet: its session is a
	// password session, whatever its role.
	e.addUser("hope", "hope@example.com", "hope password 1")
	if _, err := e.svc.SetRole(context.Background(), portal.Admin, "hope", certportal.RoleHelpdesk); err != nil {
		t.Fatal(err)
	}
	e.helpPassword = e.client(nil)
	e.login(e.helpPassword, "hope", "hope password 1")
	return e
}

// consolePath turns a console route into a path about tina.
func (e *consoleEnv) consolePath(p string) string {
	p = strings.ReplaceAll(p, "{$}", "")
	p = strings.ReplaceAll(p, "{id}", "tina")
	return strings.ReplaceAll(p, "{serial}", e.current("tina").Serial)
}

func (e *env) current(id string) *certportal.Certificate {
	e.t.Helper()
	c, err := e.svc.CurrentCertificate(context.Background(), id)
	if err != nil || c == nil {
		e.t.Fatalf("the current certificate of %s: %v, %v", id, c, err)
	}
	return c
}

func isConsole(rt web.Route) bool { return rt.Access == web.Helpdesk || rt.Access == web.Admin }

// consoleRequest sends a console route's request as a browser would, with
// a body that names no action's fields.
func (e *consoleEnv) consoleRequest(c *http.Client, rt web.Route) *response {
	e.t.Helper()
	path := e.consolePath(rt.Path)
	if rt.Method == http.MethodGet {
		return e.get(c, path)
	}
	return e.postRaw(c, path, "application/x-www-form-urlencoded", "x=1")
}

// allowedStatus is what each console route answers a caller it lets in,
// for the request consoleRequest sends: pages 200, unlock acts (303), the
// actions that cannot be undone ask first (200, nothing changes), and the
// forms that need fields refuse the empty one (400).
var allowedStatus = map[string]int{
	"GET /admin/{$}":                           http.StatusOK,
	"GET /admin/accounts":                      http.StatusOK,
	"GET /admin/accounts/{id}":                 http.StatusOK,
	"POST /admin/accounts/{id}/unlock":         http.StatusSeeOther,
	"POST /admin/accounts/{id}/reset-password": http.StatusOK,
	"POST /admin/accounts":                     http.StatusBadRequest,
	"POST /admin/accounts/{id}/cancel":         http.StatusOK,
	"POST /admin/accounts/{id}/role":           http.StatusBadRequest,
	"POST /admin/certificates/{serial}/revoke": http.StatusBadRequest,
	"POST /admin/import":                       http.StatusBadRequest,
	"GET /admin/audit":                         http.StatusOK,
	"GET /admin/cas":                           http.StatusOK,
	"GET /admin/certificates.csv":              http.StatusOK,
}

// TestConsoleAccess is SPEC.md's role rules, for every console route and
// each caller: anonymous (GET to /login, anything else 401), a user by
// certificate (403), a helpdesk account by password (403: the console
// opens to certificate sessions only), a helpdesk account by certificate
// (its routes; 403 on the admin's), an admin by certificate (every
// route). The requests that reach a handler change nothing that matters:
// tina stays active with her certificate.
func TestConsoleAccess(t *testing.T) {
	e := newConsoleEnv(t)
	var n int
	for _, rt := range e.web.Routes() {
		if !isConsole(rt) {
			if strings.HasPrefix(rt.Path, "/admin") {
				t.Errorf("%s %s is under /admin/ but is no console route", rt.Method, rt.Path)
			}
			continue
		}
		n++
		name := rt.Method + " " + rt.Path
		allowed, ok := allowedStatus[name]
		if !ok {
			t.Errorf("%s: a console route this test does not know; add it to allowedStatus", name)
			continue
		}
		anon := http.StatusUnauthorized
		if rt.Method == http.MethodGet {
			anon = http.StatusSeeOther
		}
		helpdesk := allowed
		if rt.Access == web.Admin {
			helpdesk = http.StatusForbidden
		}
		for _, caller := range []struct {
			name string
			c    *http.Client
			want int
		}{
			{"anonymous", e.anonymous, anon},
			{"user by certificate", e.userCert, http.StatusForbidden},
			{"helpdesk by password", e.helpPassword, http.StatusForbidden},
			{"helpdesk by certificate", e.helpCert, helpdesk},
			{"admin by certificate", e.adminCert, allowed},
		} {
			r := e.consoleRequest(caller.c, rt)
			if r.StatusCode != caller.want {
				t.Errorf("%s by %s: %d, want %d (%.200s)", name, caller.name, r.StatusCode, caller.want, r.body)
			}
			if caller.want == http.StatusSeeOther && rt.Method == http.MethodGet && r.Header.Get("Location") != "/login" {
				t.Errorf("%s by %s: to %q, want /login", name, caller.name, r.Header.Get("Location"))
			}
			if caller.want == http.StatusForbidden && strings.Contains(r.body, "Admin console</h1>") {
				t.Errorf("%s by %s: the 403 shows the console", name, caller.name)
			}
		}
	}
	if n != len(allowedStatus) {
		t.Errorf("%d console routes in the table, %d in this test", n, len(allowedStatus))
	}
	if acc := e.account("tina"); acc.Status != certportal.StatusActive || acc.Method != certportal.MethodCertificate {
		t.Errorf("tina after the access test: %+v", acc)
	}
	if r := e.get(e.tinaClient, "/"); r.StatusCode != http.StatusOK {
		t.Errorf("tina's certificate after the access test: %d", r.StatusCode)
	}
	// A role taken away takes the console away at the next request.
	if _, err := e.svc.SetRole(context.Background(), portal.Admin, "hank", certportal.RoleUser); err != nil {
		t.Fatal(err)
	}
	if r := e.get(e.helpCert, "/admin/"); r.StatusCode != http.StatusForbidden {
		t.Errorf("after hank's role went back to user: GET /admin/ %d, want 403", r.StatusCode)
	}
}

// multipartCSV is a browser's upload of the console's import form.
func multipartCSV(t *testing.T, field, name, content string) (string, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	if field != "" {
		fw, err := mw.CreateFormFile(field, name)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(fw, content)
	}
	mw.Close()
	return mw.FormDataContentType(), b.String()
}

func form(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}
