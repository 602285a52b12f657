package web_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/csv"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/crypto/ocsp"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/portal"
)

// auditBy returns the records of an account with action by actor.
func (e *env) auditBy(account, action, actor string) []certportal.AuditEvent {
	e.t.Helper()
	var out []certportal.AuditEvent
	for _, ev := range e.audit() {
		if certportal.IDKey(ev.AccountID) == certportal.IDKey(account) && ev.Action == action && ev.Actor == actor {
			out = append(out, ev)
		}
	}
	return out
}

// ocspStatus asks the plain-HTTP OCSP responder about a certificate.
func (e *env) ocspStatus(leaf *x509.Certificate) *ocsp.Response {
	e.t.Helper()
	der, err := ocsp.CreateRequest(leaf, e.pki.Issuing, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := http.Post(e.caSrv.URL+"/ocsp", "application/ocsp-request", bytes.NewReader(der))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	// With issuer nil, the signature is checked against the certificate
	// in the response, which must be the issuing CA.
	or, err := ocsp.ParseResponse(b, nil)
	if err != nil {
		e.t.Fatalf("OCSP response: %v", err)
	}
	if or.Certificate == nil || !or.Certificate.Equal(e.pki.Issuing) {
		e.t.Fatal("the OCSP response is not signed by the issuing CA")
	}
	return or
}

// TestConsoleRevoke: an admin finds tina, asks to revoke her certificate
// (a confirmation page; nothing changes), confirms (303); her next
// request is refused as revoked, OCSP says revoked with the reason, and
// the audit log names the admin and the address.
func TestConsoleRevoke(t *testing.T) {
	e := newConsoleEnv(t)
	r := e.get(e.adminCert, "/admin/accounts?q=TI")
	if r.StatusCode != http.StatusOK || !strings.Contains(r.body, `href="/admin/accounts/tina"`) {
		t.Fatalf("search for TI: %d, no link to tina:\n%.500s", r.StatusCode, r.body)
	}
	cert := e.current("tina")
	r = e.get(e.adminCert, "/admin/accounts/tina")
	for _, want := range []string{cert.Serial, cert.Thumbprint, "valid", `action="/admin/certificates/` + cert.Serial + `/revoke"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("tina's page lacks %q", want)
		}
	}
	path := "/admin/certificates/" + strings.ToLower(cert.Serial) + "/revoke"
	r = e.post(e.adminCert, path, form("reason", "keyCompromise"))
	if r.StatusCode != http.StatusOK || !strings.Contains(r.body, `name="confirm" value="1"`) || !strings.Contains(r.body, "keyCompromise") {
		t.Fatalf("revoke without confirm: %d, want the confirmation page:\n%.800s", r.StatusCode, r.body)
	}
	if c := e.current("tina"); c.IsRevoked() {
		t.Fatal("the confirmation page revoked the certificate")
	}
	if got := e.get(e.tinaClient, "/"); got.StatusCode != http.StatusOK {
		t.Fatalf("tina before the confirmation: %d", got.StatusCode)
	}
	r = e.post(e.adminCert, path, form("reason", "keyCompromise", "confirm", "1"))
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/admin/accounts/tina?done=revoke" {
		t.Fatalf("confirmed revoke: %d to %q", r.StatusCode, r.Header.Get("Location"))
	}
	list := e.certificates("tina")
	if len(list) != 1 || !list[0].IsRevoked() || list[0].Reason != certportal.ReasonKeyCompromise {
		t.Fatalf("tina's certificate after the revocation: %+v", list)
	}
	if got := e.get(e.tinaClient, "/"); got.StatusCode != http.StatusForbidden || !strings.Contains(got.body, "Your certificate has been revoked") {
		t.Errorf("tina's next request: %d, want 403 revoked:\n%.300s", got.StatusCode, got.body)
	}
	if or := e.ocspStatus(e.tinaCert.Leaf); or.Status != ocsp.Revoked || or.RevocationReason != ocsp.KeyCompromise {
		t.Errorf("OCSP status %d reason %d, want revoked, keyCompromise", or.Status, or.RevocationReason)
	}
	if ev := e.auditBy("tina", certportal.ActionCertRevoked, "admin:ada"); len(ev) != 1 || ev[0].Remote != "127.0.0.1" ||
		ev[0].Detail != "serial "+cert.Serial+" reason keyCompromise" {
		t.Errorf("revocation audit: %+v", ev)
	}
	r = e.get(e.adminCert, "/admin/accounts/tina?done=revoke")
	if !strings.Contains(r.body, "The certificate is revoked") || !strings.Contains(r.body, "revoked (keyCompromise") {
		t.Errorf("the account page after the revocation:\n%.2000s", r.body)
	}
}

// lockOut makes five wrong password sign-ins for id from the test's
// address, which locks it.
func (e *env) lockOut(id string) {
	e.t.Helper()
	c := e.client(nil)
	for range 5 {
		e.post(c, "/login", form("id", id, "password", "wrong password!!"))
	}
}

// TestConsoleHelpdesk: a helpdesk account sees a locked account, unlocks
// it (at once: it can be undone), resets its password (after a
// confirmation that changes nothing) and the mail arrives; both actions
// are audited with the helpdesk account as actor, and the admin's audit
// page shows them.
func TestConsoleHelpdesk(t *testing.T) {
	e := newConsoleEnv(t)
	e.addUser("lou", "lou@example.com", "lou password 1")
	e.lockOut("lou")
	r := e.get(e.helpCert, "/admin/accounts/lou")
	if !strings.Contains(r.body, `<table id="lockouts">`) || !strings.Contains(r.body, "127.0.0.1") {
		t.Fatalf("lou's page does not show the lockout:\n%.1500s", r.body)
	}
	r = e.post(e.helpCert, "/admin/accounts/lou/unlock", url.Values{})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/admin/accounts/lou?done=unlock" {
		t.Fatalf("unlock: %d to %q", r.StatusCode, r.Header.Get("Location"))
	}
	if r := e.get(e.helpCert, "/admin/accounts/lou?done=unlock"); !strings.Contains(r.body, "Password sign-in is not locked") || !strings.Contains(r.body, "The account is unlocked") {
		t.Errorf("lou's page after the unlock:\n%.1500s", r.body)
	}
	e.login(e.client(nil), "lou", "lou password 1")

	mails := len(e.mails())
	r = e.post(e.helpCert, "/admin/accounts/lou/reset-password", url.Values{})
	if r.StatusCode != http.StatusOK || !strings.Contains(r.body, "lou@example.com") || !strings.Contains(r.body, `name="confirm" value="1"`) {
		t.Fatalf("reset without confirm: %d, want the confirmation page", r.StatusCode)
	}
	if len(e.mails()) != mails || e.account("lou").PasswordExpires.IsZero() == false {
		t.Fatal("the confirmation page reset the password")
	}
	r = e.post(e.helpCert, "/admin/accounts/lou/reset-password", form("confirm", "1"))
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirmed reset: %d", r.StatusCode)
	}
	temp := e.lastTempPassword("lou@example.com")
	e.login(e.client(nil), "lou", temp)
	for _, action := range []string{certportal.ActionUnlock, certportal.ActionRecovery} {
		if ev := e.auditBy("lou", action, "helpdesk:hank"); len(ev) != 1 || ev[0].Remote != "127.0.0.1" {
			t.Errorf("%s by helpdesk:hank: %+v", action, ev)
		}
	}
	r = e.get(e.adminCert, "/admin/audit?account=lou")
	for _, want := range []string{"helpdesk:hank", certportal.ActionUnlock, certportal.ActionRecovery, "The hash chain of all"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("the audit page lacks %q", want)
		}
	}
	r = e.get(e.adminCert, "/admin/audit?account=lou&action=signin.unlock")
	if strings.Count(r.body, "<td>signin.unlock</td>") != 1 || strings.Contains(r.body, "<td>recovery</td>") {
		t.Errorf("the action filter:\n%.3000s", r.body)
	}
}

// TestConsoleAdminActions: role change and cancellation ask first, then
// act, audited with the admin; an admin cannot change their own role or
// cancel themselves.
func TestConsoleAdminActions(t *testing.T) {
	e := newConsoleEnv(t)
	r := e.post(e.adminCert, "/admin/accounts/tina/role", form("role", "helpdesk"))
	if r.StatusCode != http.StatusOK || !strings.Contains(r.body, "user → helpdesk") {
		t.Fatalf("role without confirm: %d", r.StatusCode)
	}
	if e.account("tina").RoleOf() != certportal.RoleUser {
		t.Fatal("the confirmation page changed the role")
	}
	r = e.post(e.adminCert, "/admin/accounts/tina/role", form("role", "helpdesk", "confirm", "1"))
	if r.StatusCode != http.StatusSeeOther || e.account("tina").RoleOf() != certportal.RoleHelpdesk {
		t.Fatalf("confirmed role change: %d, role %s", r.StatusCode, e.account("tina").RoleOf())
	}
	if r := e.get(e.tinaClient, "/admin/"); r.StatusCode != http.StatusOK {
		t.Errorf("tina as helpdesk: GET /admin/ %d", r.StatusCode)
	}
	if ev := e.auditBy("tina", certportal.ActionRoleChanged, "admin:ada"); len(ev) != 1 || ev[0].Detail != "from user to helpdesk" {
		t.Errorf("role audit: %+v", ev)
	}
	r = e.post(e.adminCert, "/admin/accounts/tina/cancel", url.Values{})
	if r.StatusCode != http.StatusOK || e.account("tina").Status != certportal.StatusActive {
		t.Fatalf("cancel without confirm: %d, status %s", r.StatusCode, e.account("tina").Status)
	}
	r = e.post(e.adminCert, "/admin/accounts/tina/cancel", form("confirm", "1"))
	if r.StatusCode != http.StatusSeeOther || e.account("tina").Status != certportal.StatusCancelled {
		t.Fatalf("confirmed cancel: %d, status %s", r.StatusCode, e.account("tina").Status)
	}
	if ev := e.auditBy("tina", certportal.ActionAccountCanceled, "admin:ada"); len(ev) != 1 {
		t.Errorf("cancel audit: %+v", ev)
	}
	if got := e.get(e.tinaClient, "/admin/"); got.StatusCode == http.StatusOK {
		t.Error("a cancelled account still reaches the console")
	}
}

// TestConsoleAddImportExport: an account added by the form and a CSV
// uploaded are created and mailed (by the sender, after the commit);
// the inventory export lists every certificate and neutralises cells a
// spreadsheet would run.
func TestConsoleAddImportExport(t *testing.T) {
	e := newConsoleEnv(t)
	ctx := context.Background()
	// The notices of the certificates the setup issued go out first.
	if _, err := e.svc.SendQueuedMail(ctx); err != nil {
		t.Fatal(err)
	}
	r := e.post(e.adminCert, "/admin/accounts", form("id", "newbie", "email", "newbie@example.com", "role", "user"))
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/admin/accounts/newbie?done=added" {
		t.Fatalf("add: %d to %q\n%.500s", r.StatusCode, r.Header.Get("Location"), r.body)
	}
	ct, body := multipartCSV(t, "csv", "staff.csv", "id,email,role\nbulk1,bulk1@example.com\nbulk2,bulk2@example.com,helpdesk\n")
	r = e.postRaw(e.adminCert, "/admin/import", ct, body)
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/admin/?done=imported&n=2" {
		t.Fatalf("import: %d to %q\n%.800s", r.StatusCode, r.Header.Get("Location"), r.body)
	}
	if r := e.get(e.adminCert, "/admin/?done=imported&n=2"); !strings.Contains(r.body, "2 accounts were added.") {
		t.Errorf("the overview after the import does not say so")
	}
	if e.account("bulk2").RoleOf() != certportal.RoleHelpdesk {
		t.Error("bulk2's role from the CSV was not kept")
	}
	if n, err := e.svc.SendQueuedMail(ctx); err != nil || n != 3 {
		t.Fatalf("the sender sent %d, %v; want 3", n, err)
	}
	for _, id := range []string{"newbie", "bulk1", "bulk2"} {
		e.login(e.client(nil), id, e.lastTempPasswordTo(id+"@example.com"))
	}
	if ev := e.auditBy("bulk1", certportal.ActionAccountCreated, "admin:ada"); len(ev) != 1 {
		t.Errorf("bulk1's creation audit: %+v", ev)
	}

	// An ID may begin with - or @, which a spreadsheet reads as a formula.
	e.addUser("-cmd", "dash@example.com", "dash password 1")
	e.addUser("@SUM", "at@example.com", "at password 12")
	for _, id := range []string{"-cmd", "@SUM"} {
		if _, err := e.svc.Issue(ctx, portal.Admin, portal.IssueRequest{ID: id, P12Password: p12Password}); err != nil {
			t.Fatal(err)
		}
	}
	r = e.get(e.adminCert, "/admin/certificates.csv")
	if r.StatusCode != http.StatusOK || r.Header.Get("Content-Type") != "text/csv; charset=utf-8" ||
		!strings.Contains(r.Header.Get("Content-Disposition"), "attachment") || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("export: %d %v", r.StatusCode, r.Header)
	}
	rows, err := csv.NewReader(strings.NewReader(r.body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	all := e.certificates("")
	if len(rows) != len(all)+1 || strings.Join(rows[0], ",") != "serial,id,not_after,status,thumbprint" {
		t.Fatalf("export: %d rows for %d certificates, header %v", len(rows), len(all), rows[0])
	}
	byID := map[string][]string{}
	for _, row := range rows[1:] {
		byID[row[1]] = row
		for _, cell := range row {
			if portal.IsFormula(cell) {
				t.Errorf("the cell %q would run as a formula", cell)
			}
		}
	}
	if byID["'-cmd"] == nil || byID["'@SUM"] == nil {
		t.Errorf("the IDs beginning with - and @ are not neutralised: %v", byID)
	}
	tina := e.current("tina")
	if row := byID["tina"]; row == nil || row[0] != tina.Serial || row[3] != "valid" || row[4] != tina.Thumbprint ||
		row[2] != tina.NotAfter.UTC().Format("2006-01-02T15:04:05Z07:00") {
		t.Errorf("tina's row %v, want %s valid %s", row, tina.Serial, tina.Thumbprint)
	}
	if ev := e.auditBy("", certportal.ActionInventoryExported, "admin:ada"); len(ev) != 1 {
		t.Errorf("the export is not audited: %+v", ev)
	}

	r = e.get(e.adminCert, "/admin/cas")
	for _, want := range []string{e.pki.Root.Subject.CommonName + " (root)", e.pki.Issuing.Subject.CommonName + " (issuing)", "CRL next update"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("the CAs page lacks %q", want)
		}
	}
}

// lastTempPasswordTo returns the temporary password of the last mail to
// addr.
func (e *env) lastTempPasswordTo(addr string) string {
	e.t.Helper()
	ms := e.mails()
	for i := len(ms) - 1; i >= 0; i-- {
		if m := tempLine.FindStringSubmatch(ms[i].body); m != nil && len(ms[i].to) == 1 && ms[i].to[0] == addr {
			return m[1]
		}
	}
	e.t.Fatalf("no temporary password mailed to %s", addr)
	return ""
}
