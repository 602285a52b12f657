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
	srv := web.New(svc, log, []string{"localhost", "127.0.0.1"})
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
	from := issued.Cert.NotAfter.Add(-portal.DefaultRenewWindow).UTC().Format("2 January 2006")
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
	from = current.NotAfter.Add(-portal.DefaultRenewWindow).UTC().Format("2 January 2006")
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
