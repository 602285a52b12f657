package web_test

import (
	"context"
	"fmt"
	"html"
	"strings"
	"testing"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/portal"
)

// state sums up what a console action could change: every account, every
// certificate and the length of the audit log.
func (e *env) state() string {
	e.t.Helper()
	accs, err := e.svc.Accounts(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	var b strings.Builder
	for _, a := range accs {
		fmt.Fprintf(&b, "%s %s %s %s %s %v|", a.ID, a.Email, a.Status, a.Method, a.RoleOf(), a.PasswordExpires)
	}
	for _, c := range e.certificates("") {
		fmt.Fprintf(&b, "%s %v|", c.Serial, c.Revoked)
	}
	fmt.Fprintf(&b, "audit %d mails %d", len(e.audit()), len(e.mails()))
	return b.String()
}

// TestConsoleBadInput sends every console form something wrong: each
// answer has the status of the mistake and a sentence that says what is
// wrong, and nothing changes.
func TestConsoleBadInput(t *testing.T) {
	e := newConsoleEnv(t)
	tina := e.current("tina").Serial
	revoked := e.certificates("uma")[0].Serial
	e.svc.Revoke(context.Background(), portal.Admin, revoked, certportal.ReasonSuperseded) //nolint:errcheck
	e.addUser("gone", "gone@example.com", "gone password 1")
	if err := e.svc.CancelUser(context.Background(), portal.Admin, "gone"); err != nil {
		t.Fatal(err)
	}
	post := func(path string, kv ...string) func() *response {
		return func() *response { return e.post(e.adminCert, path, form(kv...)) }
	}
	get := func(path string) func() *response { return func() *response { return e.get(e.adminCert, path) } }
	upload := func(field, content string) func() *response {
		return func() *response {
			ct, body := multipartCSV(t, field, "x.csv", content)
			return e.postRaw(e.adminCert, "/admin/import", ct, body)
		}
	}
	long := strings.Repeat("a", 300)
	cases := []struct {
		name string
		do   func() *response
		code int
		want string
	}{
		{"search: page not a number", get("/admin/accounts?q=t&page=two"), 400, "The page number must be a whole number"},
		{"search: page 0", get("/admin/accounts?q=t&page=0"), 400, "The page number must be a whole number"},
		{"search: page too deep", get("/admin/accounts?q=t&page=5000"), 400, "narrow the search"},
		{"search: too long", get("/admin/accounts?q=" + long), 400, "longer than any ID"},
		{"add: bad ID", post("/admin/accounts", "id", "no spaces", "email", "a@example.com", "role", "user"), 400, "may contain only"},
		{"add: bad e-mail", post("/admin/accounts", "id", "newbie", "email", "newbie@", "role", "user"), 400, "is not an e-mail address"},
		{"add: bad role", post("/admin/accounts", "id", "newbie", "email", "n@example.com", "role", "boss"), 400, `unknown role "boss"`},
		{"add: taken ID", post("/admin/accounts", "id", "TINA", "email", "t2@example.com", "role", "user"), 409, `the user ID "TINA" is taken`},
		{"add: field missing", post("/admin/accounts", "id", "newbie", "email", "n@example.com"), 400, "The form could not be read"},
		{"import: no file", upload("", ""), 400, "Choose a CSV file to upload"},
		{"import: other field", upload("file", "a,a@example.com\n"), 400, "Choose a CSV file to upload"},
		{"import: not multipart", post("/admin/import", "csv", "a,a@example.com"), 400, "Choose a CSV file to upload"},
		{"import: bad e-mail on line 3", upload("csv", "id,email\nok1,ok1@example.com\nok2,nope\n"), 400, "Line 3: "},
		{"import: duplicate", upload("csv", "ok1,ok1@example.com\nOK1,x@example.com\n"), 400, `line 2: the user ID "OK1" is on line 1 already`},
		{"import: unknown role", upload("csv", "ok1,ok1@example.com,root\n"), 400, `line 1: unknown role "root"`},
		{"import: formula", upload("csv", "ok1,ok1@example.com\n\"=HYPERLINK(\"\"http://x.example/\"\",\"\"y\"\")\",x@example.com\n"), 400, "which a spreadsheet would run as a formula"},
		{"import: taken ID", upload("csv", "ok1,ok1@example.com\ntina,t@example.com\n"), 409, `line 2: the user ID "tina" is taken`},
		{"import: empty", upload("csv", ""), 400, "holds no accounts"},
		{"role: unknown role", post("/admin/accounts/tina/role", "role", "god"), 400, `unknown role "god"`},
		{"role: own role", post("/admin/accounts/ada/role", "role", "user", "confirm", "1"), 403, "you cannot change your own role"},
		{"role: same role", post("/admin/accounts/tina/role", "role", "user"), 409, "has the role user already"},
		{"role: unknown account", post("/admin/accounts/nobody/role", "role", "admin"), 404, `no user with ID "nobody"`},
		{"role: cancelled account", post("/admin/accounts/gone/role", "role", "admin"), 409, "is cancelled"},
		{"role: confirm not 1", post("/admin/accounts/tina/role", "role", "admin", "confirm", "yes"), 400, "The form could not be read"},
		{"revoke: unknown serial", post("/admin/certificates/0A0B0C/revoke", "reason", "keyCompromise"), 404, "no certificate with serial 0A0B0C"},
		{"revoke: not a serial", post("/admin/certificates/xyz/revoke", "reason", "keyCompromise"), 400, "is not a hexadecimal serial number"},
		{"revoke: unknown reason", post("/admin/certificates/"+tina+"/revoke", "reason", "certificateHold", "confirm", "1"), 400, `unknown revocation reason "certificateHold"`},
		{"revoke: revoked already", post("/admin/certificates/"+revoked+"/revoke", "reason", "", "confirm", "1"), 409, "is revoked already"},
		{"revoke: no reason field", post("/admin/certificates/"+tina+"/revoke", "confirm", "1"), 400, "The form could not be read"},
		{"unlock: unknown account", post("/admin/accounts/nobody/unlock"), 404, `no user with ID "nobody"`},
		{"reset: unknown account", post("/admin/accounts/nobody/reset-password", "confirm", "1"), 404, `no user with ID "nobody"`},
		{"reset: cancelled account", post("/admin/accounts/gone/reset-password", "confirm", "1"), 409, "is cancelled"},
		{"cancel: own account", post("/admin/accounts/ada/cancel", "confirm", "1"), 403, "you cannot cancel your own account"},
		{"cancel: cancelled already", post("/admin/accounts/gone/cancel", "confirm", "1"), 409, "is cancelled"},
		{"account: unknown", get("/admin/accounts/nobody"), 404, `no user with ID "nobody"`},
		{"audit: bad time", get("/admin/audit?from=yesterday"), 400, `the time from "yesterday" is not a date`},
		{"audit: from after to", get("/admin/audit?from=2026-03-02&to=2026-03-01"), 400, "the time from must be before the time to"},
		{"audit: bad record number", get("/admin/audit?before=-4"), 400, "is not a whole number"},
		{"audit: account too long", get("/admin/audit?account=" + long), 400, "longer than any there is"},
	}
	before := e.state()
	for _, tc := range cases {
		r := tc.do()
		if r.StatusCode != tc.code {
			t.Errorf("%s: %d, want %d\n%.600s", tc.name, r.StatusCode, tc.code, r.body)
			continue
		}
		if !strings.Contains(strings.ToLower(html.UnescapeString(r.body)), strings.ToLower(tc.want)) {
			t.Errorf("%s: the page does not say %q:\n%.2000s", tc.name, tc.want, r.body)
		}
		if after := e.state(); after != before {
			t.Fatalf("%s changed something:\n%s\n%s", tc.name, before, after)
		}
	}
	// The add form keeps what was typed beside its message.
	r := e.post(e.adminCert, "/admin/accounts", form("id", "newbie", "email", "newbie@", "role", "helpdesk"))
	if !strings.Contains(r.body, `value="newbie"`) || !strings.Contains(r.body, `value="newbie@"`) || !strings.Contains(r.body, `<option value="helpdesk" selected>`) {
		t.Errorf("the add form did not keep what was typed:\n%.3000s", r.body)
	}
}
