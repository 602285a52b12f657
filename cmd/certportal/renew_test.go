package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/internal/testpki"
	"github.com/certportal/certportal/mail"
	"github.com/certportal/certportal/portal"
	"github.com/certportal/certportal/sqlite"
	"github.com/certportal/certportal/web"
)

// clockPortal is a portal whose clock the test moves: the web handler over
// real TLS on a loopback port, an SQLite file and an outbox, in this
// process. The command under test runs as its own process against it.
type clockPortal struct {
	url   string
	pki   *testpki.PKI
	svc   *portal.Service
	store *sqlite.DB
}

func newClockPortal(t *testing.T) *clockPortal {
	t.Helper()
	dir := t.TempDir()
	pki := testpki.New(t)
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "portal.db"), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := portal.New(db, pki.Authority, &mail.Outbox{Dir: filepath.Join(dir, "outbox")}, portal.Config{}, log)
	svc.Now = pki.Clock.Now
	srv := web.New(svc, log)
	cert, err := pki.ServerCertificate()
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.TLS = srv.TLSConfig(cert)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return &clockPortal{url: ts.URL, pki: pki, svc: svc, store: db}
}

// storeEntries runs "store list --json" and returns the thumbprints per store.
func storeEntries(t *testing.T, storeDir string) map[string][]string {
	t.Helper()
	var list []entryJSON
	if err := json.Unmarshal([]byte(ok(t, "", "store", "list", "--store-dir", storeDir, "--json")), &list); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, e := range list {
		out[e.Store] = append(out[e.Store], e.Thumbprint)
	}
	return out
}

// TestStoreRenew runs "certportal store renew" against a portal whose
// certificate is 10 days from expiry: the renewal works over mutual TLS,
// the old serial is revoked (superseded), the store's personal entry is
// replaced while intermediate and root stay as they were, and a second
// renewal, outside the new certificate's window, is refused with the date
// it opens and changes nothing.
func TestStoreRenew(t *testing.T) {
	ctx := context.Background()
	p := newClockPortal(t)
	if _, _, err := p.svc.AddUser(ctx, portal.Admin, "rita", "rita@example.org", "account password 1"); err != nil {
		t.Fatal(err)
	}
	const p12pw = "a pkcs12 password"
	issued, err := p.svc.Issue(ctx, portal.Admin, portal.IssueRequest{ID: "rita", P12Password: p12pw})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p12 := filepath.Join(dir, "rita.p12")
	if err := os.WriteFile(p12, issued.P12, 0o600); err != nil {
		t.Fatal(err)
	}
	storeDir := filepath.Join(dir, "store")
	ok(t, "", "store", "import", p12, "--store-dir", storeDir, "--password-file", writeSecret(t, p12pw))
	before := storeEntries(t, storeDir)
	if len(before["personal"]) != 1 || before["personal"][0] != issued.Cert.Thumbprint || len(before["root"]) != 1 || len(before["intermediate"]) != 1 {
		t.Fatalf("store after import: %v", before)
	}

	// A year before expiry: refused, with the date, and nothing changes.
	from := issued.Cert.NotAfter.Add(-30 * 24 * time.Hour).UTC().Format("2 January 2006")
	snap := snapshot(t, storeDir)
	msg := fails(t, 1, "your certificate can be renewed from "+from, "", "store", "renew", "--url", p.url, "--store-dir", storeDir)
	t.Logf("early renewal: %s", msg)
	if snapshot(t, storeDir) != snap {
		t.Errorf("a refused renewal changed the store")
	}

	// Ten days before expiry.
	p.pki.Clock.Set(issued.Cert.NotAfter.Add(-10 * 24 * time.Hour))
	out := ok(t, "", "store", "renew", "--url", p.url, "--store-dir", storeDir)
	if !strings.Contains(out, "Renewed the certificate of rita") || !strings.Contains(out, issued.Cert.Thumbprint+") has been removed") {
		t.Errorf("store renew printed %q", out)
	}
	after := storeEntries(t, storeDir)
	if len(after["personal"]) != 1 || after["personal"][0] == issued.Cert.Thumbprint {
		t.Errorf("personal store after renewal: %v; want one certificate, not the old %s", after["personal"], issued.Cert.Thumbprint)
	}
	for _, st := range []string{"intermediate", "root"} {
		if strings.Join(after[st], ",") != strings.Join(before[st], ",") {
			t.Errorf("%s store changed: %v, was %v", st, after[st], before[st])
		}
	}
	if _, err := os.Stat(filepath.Join(storeDir, "personal", issued.Cert.Thumbprint+".key")); !os.IsNotExist(err) {
		t.Errorf("the old private key is still in the store (%v)", err)
	}
	certs, err := p.svc.Certificates(ctx, "rita")
	if err != nil {
		t.Fatal(err)
	}
	var current *certportal.Certificate
	for i, c := range certs {
		switch {
		case c.Serial == issued.Cert.Serial && (!c.IsRevoked() || c.Reason != certportal.ReasonSuperseded):
			t.Errorf("old certificate: revoked %v, reason %v; want superseded", c.Revoked, c.Reason)
		case !c.IsRevoked():
			current = &certs[i]
		}
	}
	if current == nil || current.Thumbprint != after["personal"][0] {
		t.Fatalf("the portal's current certificate %+v is not the one in the store (%v)", current, after["personal"])
	}
	// The new certificate signs in.
	if got := strings.TrimSpace(ok(t, "", "whoami", "--url", p.url, "--store-dir", storeDir)); got != "rita" {
		t.Errorf("whoami with the renewed certificate: %q, want rita", got)
	}

	// A second renewal is outside the new certificate's window.
	snap = snapshot(t, storeDir)
	from = current.NotAfter.Add(-30 * 24 * time.Hour).UTC().Format("2 January 2006")
	fails(t, 1, "your certificate can be renewed from "+from, "", "store", "renew", "--url", p.url, "--store-dir", storeDir, "--json")
	if snapshot(t, storeDir) != snap {
		t.Errorf("a refused second renewal changed the store")
	}

	// Wrong usage and a portal that cannot be reached.
	fails(t, 2, "url", "", "store", "renew", "--store-dir", storeDir)
	fails(t, 1, "https://", "", "store", "renew", "--url", "http://"+strings.TrimPrefix(p.url, "https://"), "--store-dir", storeDir)
	fails(t, 1, "connection refused", "", "store", "renew", "--url", "https://"+freeAddr(t), "--store-dir", storeDir)
	if n := len(storeEntries(t, storeDir)["personal"]); n != 1 {
		t.Errorf("%d personal certificates after the refusals, want 1", n)
	}
}

// setConfig changes keys of DATA/config.json as an administrator would.
func setConfig(t *testing.T, data string, values map[string]any) {
	t.Helper()
	path := filepath.Join(data, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	for k, v := range values {
		cfg[k] = v
	}
	if b, err = json.MarshalIndent(cfg, "", "  "); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestServeRemindsAndRenews runs the real "serve" with config.json's
// reminder_days and renew_window set so that a new certificate is already
// due for both: serve's housekeeping mails the reminder at start (once,
// audited), and "store renew" renews against that process.
func TestServeRemindsAndRenews(t *testing.T) {
	data := newData(t)
	init := map[string]any{}
	if err := json.Unmarshal([]byte(readText(t, filepath.Join(data, "config.json"))), &init); err != nil {
		t.Fatal(err)
	}
	if init["renew_window"] != "720h0m0s" || len(init["reminder_days"].([]any)) != 3 {
		t.Errorf("init wrote renew_window %v, reminder_days %v; want 720h0m0s and [30 7 1]", init["renew_window"], init["reminder_days"])
	}
	// A certificate lives a year (at most 366 days): 400 days puts it
	// inside the window and past the reminder threshold at once.
	setConfig(t, data, map[string]any{"renew_window": "9600h", "reminder_days": []int{400}})
	ok(t, "", "user", "add", "--data", data, "--id", "rita", "--email", "rita@example.com", "--password-file", writeSecret(t, "account password 1"))
	dir := t.TempDir()
	p12, pw := filepath.Join(dir, "rita.p12"), writeSecret(t, "a pkcs12 password")
	ok(t, "", "cert", "issue", "--data", data, "--id", "rita", "--out", p12, "--password-file", pw)
	base := startServe(t, data)

	var reminder string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline) && reminder == ""; time.Sleep(100 * time.Millisecond) {
		names, _ := filepath.Glob(filepath.Join(data, "outbox", "*.eml"))
		for _, n := range names {
			if b := readText(t, n); strings.Contains(b, "Subject: Your certificate for the portal expires") {
				reminder = b
			}
		}
	}
	if reminder == "" {
		t.Fatal("serve sent no reminder mail within 15 seconds of starting")
	}
	if !strings.Contains(reminder, "rita@example.com") || !strings.Contains(reminder, "certportal store renew --url https://localhost:8443") {
		t.Errorf("the reminder does not go to rita or does not say how to renew:\n%s", reminder)
	}
	var events []struct{ Action string }
	if err := json.Unmarshal([]byte(ok(t, "", "audit", "--data", data, "--id", "rita", "--json")), &events); err != nil {
		t.Fatal(err)
	}
	sent := 0
	for _, ev := range events {
		if ev.Action == certportal.ActionReminderSent {
			sent++
		}
	}
	if sent != 1 {
		t.Errorf("%d %s audit records, want 1", sent, certportal.ActionReminderSent)
	}

	storeDir := filepath.Join(dir, "store")
	ok(t, "", "store", "import", p12, "--store-dir", storeDir, "--password-file", pw)
	old := storeEntries(t, storeDir)["personal"]
	var res map[string]entryJSON
	if err := json.Unmarshal([]byte(ok(t, "", "store", "renew", "--url", base, "--store-dir", storeDir, "--json")), &res); err != nil {
		t.Fatal(err)
	}
	now := storeEntries(t, storeDir)["personal"]
	if len(old) != 1 || res["old"].Thumbprint != old[0] || len(now) != 1 || now[0] != res["new"].Thumbprint || now[0] == old[0] {
		t.Errorf("store renew --json: %+v; personal store before %v, after %v", res, old, now)
	}
	if got := strings.TrimSpace(ok(t, "", "whoami", "--url", base, "--store-dir", storeDir)); got != "rita" {
		t.Errorf("whoami after renewal: %q", got)
	}
}

// readText returns a file's content as a string.
func readText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
