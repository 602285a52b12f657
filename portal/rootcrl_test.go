package portal_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/portal"
)

// TestSignRootCRL: the portal publishes the root CRL an administrator
// signed and never signs one itself; SignRootCRL needs the root key, takes
// its number from the database, stores and audits it, writes root.crl,
// and never reuses a number, even when the root.crl in place is ahead of
// the database (one restored from an older backup).
func TestSignRootCRL(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	root := e.svc.CA.Root.Subject.CommonName
	for _, n := range e.svc.CRLIssuers() {
		if n == root {
			t.Errorf("CRLIssuers lists the root %s, whose CRL the portal cannot sign", n)
		}
	}
	if _, err := e.svc.CRL(ctx, root); certportal.ErrorCodeOf(err) != certportal.NotFound {
		t.Errorf("the root CRL before one was signed: %v, want NotFound", err)
	}
	e.svc.CA.DropRootKey() // as serve holds it: not at all
	if _, err := e.svc.SignRootCRL(ctx, portal.Admin, ca.DefaultRootCRLLifetime); certportal.ErrorCodeOf(err) != certportal.Unavailable {
		t.Errorf("SignRootCRL without the root key: %v, want Unavailable", err)
	}
	if err := e.svc.CA.LoadRootKey(); err != nil {
		t.Fatal(err)
	}
	first, err := e.svc.SignRootCRL(ctx, portal.Admin, ca.DefaultRootCRLLifetime)
	if err != nil {
		t.Fatal(err)
	}
	if first.NextUpdate.Sub(first.ThisUpdate) != ca.DefaultRootCRLLifetime {
		t.Errorf("the root CRL lasts %v, want a year", first.NextUpdate.Sub(first.ThisUpdate))
	}
	served, err := e.svc.CRL(ctx, root)
	if err != nil || !bytes.Equal(served, first.DER) {
		t.Fatalf("CRL(root) does not serve the root CRL just signed: %v", err)
	}
	var stored *certportal.CRL
	e.svc.Store.View(ctx, func(tx certportal.Tx) error {
		stored, err = tx.LatestCRL(ctx, root)
		return err
	})
	if err != nil || stored.Number != first.Number.Int64() || !bytes.Equal(stored.DER, first.DER) {
		t.Errorf("the database's latest root CRL: %+v, %v; want number %v with the same bytes", stored, err, first.Number)
	}
	if n := countAudit(t, e.svc, certportal.ActionCRLSigned); n != 1 {
		t.Errorf("%d crl.signed records, want 1", n)
	}

	// The root CRL the portal serves no longer goes stale by the day:
	// a day later it is still the same bytes, not re-signed.
	e.svc.Now = func() time.Time { return time.Now().Add(48 * time.Hour) }
	if again, err := e.svc.CRL(ctx, root); err != nil || !bytes.Equal(again, first.DER) {
		t.Errorf("two days later CRL(root) changed: %v", err)
	}
	e.svc.Now = time.Now

	ahead, err := e.svc.CA.SignRootCRL(first.Number.Int64()+50, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.CA.SaveRootCRL(ahead); err != nil {
		t.Fatal(err)
	}
	next, err := e.svc.SignRootCRL(ctx, portal.Admin, ca.DefaultRootCRLLifetime)
	if err != nil {
		t.Fatal(err)
	}
	if next.Number.Cmp(ahead.Number) <= 0 {
		t.Errorf("a root CRL numbered %v after one numbered %v", next.Number, ahead.Number)
	}
}
