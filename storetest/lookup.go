package storetest

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/certportal/certportal"
)

// lookupOne is Store.Lookup of one fingerprint, NotFound when no
// certificate has it.
func lookupOne(ctx context.Context, s certportal.Store, fingerprint string) (*certportal.Certificate, *certportal.Account, error) {
	got, err := s.Lookup(ctx, []string{fingerprint})
	if err != nil {
		return nil, nil, err
	}
	f, ok := got[strings.ToUpper(fingerprint)]
	if !ok {
		return nil, nil, &certportal.Error{Code: certportal.NotFound, Message: "no certificate has " + fingerprint}
	}
	return f.Cert, f.Account, nil
}

// testLookup: Lookup returns what a View of the certificate and its
// account returns, sees a revocation and a cancellation at once, and
// leaves an unknown fingerprint out.
func testLookup(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	c := NewCert("Lena", "SOP-ICA1", base)
	update(t, s, func(tx certportal.Tx) error {
		if err := tx.CreateAccount(ctx, newAccount("Lena")); err != nil {
			return err
		}
		return tx.InsertCertificate(ctx, c)
	})
	var want *certportal.Certificate
	var wantAcc *certportal.Account
	view(t, s, func(tx certportal.Tx) error {
		var err error
		if want, err = tx.CertificateBySHA256(ctx, c.SHA256); err != nil {
			return err
		}
		wantAcc, err = tx.Account(ctx, "lena")
		return err
	})
	got, acc, err := lookupOne(ctx, s, strings.ToLower(c.SHA256))
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(acc, wantAcc) {
		t.Errorf("Lookup = %+v, %+v\nwant %+v, %+v", got, acc, want, wantAcc)
	}
	update(t, s, func(tx certportal.Tx) error {
		return tx.RevokeCertificate(ctx, c.Serial, base, certportal.ReasonKeyCompromise)
	})
	if got, _, err := lookupOne(ctx, s, c.SHA256); err != nil || !got.IsRevoked() || got.Reason != certportal.ReasonKeyCompromise {
		t.Errorf("Lookup after a revocation: %+v, %v", got, err)
	}
	update(t, s, func(tx certportal.Tx) error {
		a, err := tx.LockAccount(ctx, "lena")
		if err != nil {
			return err
		}
		a.Status = certportal.StatusCancelled
		return tx.UpdateAccount(ctx, a)
	})
	if _, acc, err := lookupOne(ctx, s, c.SHA256); err != nil || acc.Status != certportal.StatusCancelled {
		t.Errorf("Lookup after a cancellation: %+v, %v", acc, err)
	}
	_, _, err = lookupOne(ctx, s, certportal.Fingerprint256([]byte("nothing")))
	wantCode(t, "Lookup(unknown)", err, certportal.NotFound)
}

// testLookupMany: one Lookup or Statuses call reads several certificates
// (in any case, repeated, mixed with unknown ones), each with its own
// account, and an empty list reads nothing.
func testLookupMany(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	a, b := NewCert("Mia", "SOP-ICA1", base), NewCert("Noor", "SOP-ICA2", base)
	update(t, s, func(tx certportal.Tx) error {
		for _, c := range []*certportal.Certificate{a, b} {
			if err := tx.CreateAccount(ctx, newAccount(c.AccountID)); err != nil {
				return err
			}
			if err := tx.InsertCertificate(ctx, c); err != nil {
				return err
			}
		}
		return tx.RevokeCertificate(ctx, b.Serial, base, certportal.ReasonSuperseded)
	})
	unknown := certportal.Fingerprint256([]byte("nobody"))
	got, err := s.Lookup(ctx, []string{strings.ToLower(a.SHA256), b.SHA256, unknown, a.SHA256})
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	fa, fb := got[a.SHA256], got[b.SHA256]
	switch {
	case len(got) != 2:
		t.Errorf("Lookup found %d certificates, want 2: %v", len(got), got)
	case fa.Cert == nil || fa.Cert.Serial != a.Serial || fa.Account.ID != "Mia" || fa.Cert.IsRevoked():
		t.Errorf("Lookup of Mia's certificate: %+v", fa)
	case fb.Cert == nil || fb.Cert.Serial != b.Serial || fb.Account.ID != "Noor" || !fb.Cert.IsRevoked():
		t.Errorf("Lookup of Noor's revoked certificate: %+v", fb)
	}
	st, err := s.Statuses(ctx, []string{strings.ToLower(a.Serial), b.Serial, "0BADC0DE"})
	if err != nil {
		t.Fatalf("Statuses: %v", err)
	}
	switch {
	case len(st) != 2:
		t.Errorf("Statuses found %d certificates, want 2: %v", len(st), st)
	case st[a.Serial] == nil || st[a.Serial].Issuer != "SOP-ICA1" || st[a.Serial].IsRevoked():
		t.Errorf("Statuses of Mia's certificate: %+v", st[a.Serial])
	case st[b.Serial] == nil || st[b.Serial].Issuer != "SOP-ICA2" || st[b.Serial].Reason != certportal.ReasonSuperseded:
		t.Errorf("Statuses of Noor's revoked certificate: %+v", st[b.Serial])
	}
	if got, err := s.Lookup(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("Lookup(nothing) = %v, %v", got, err)
	}
}

// testLookupSession: LookupSession returns the session and account a View
// returns, the bound certificate's status (seeing a revocation at once),
// nil for a password session, and NotFound for an unknown session.
func testLookupSession(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	c := NewCert("Sami", "SOP-ICA1", base)
	pw := &certportal.Session{ID: "ls-pw", AccountID: "sami", Remote: "192.0.2.9", Created: base, LastSeen: base.Add(time.Minute), Expires: base.Add(time.Hour)}
	bound := *pw
	bound.ID, bound.CertSerial = "ls-cert", c.Serial
	update(t, s, func(tx certportal.Tx) error {
		if err := tx.CreateAccount(ctx, newAccount("Sami")); err != nil {
			return err
		}
		if err := tx.InsertCertificate(ctx, c); err != nil {
			return err
		}
		if err := tx.CreateSession(ctx, pw); err != nil {
			return err
		}
		return tx.CreateSession(ctx, &bound)
	})
	for _, id := range []string{"ls-pw", "ls-cert"} {
		var want *certportal.Session
		var wantAcc *certportal.Account
		view(t, s, func(tx certportal.Tx) error {
			var err error
			if want, err = tx.Session(ctx, id); err != nil {
				return err
			}
			wantAcc, err = tx.Account(ctx, want.AccountID)
			return err
		})
		sess, acc, cert, err := s.LookupSession(ctx, id)
		if err != nil {
			t.Fatalf("LookupSession(%s): %v", id, err)
		}
		if !reflect.DeepEqual(sess, want) || !reflect.DeepEqual(acc, wantAcc) {
			t.Errorf("LookupSession(%s) = %+v, %+v\nwant %+v, %+v", id, sess, acc, want, wantAcc)
		}
		switch {
		case id == "ls-pw" && cert != nil:
			t.Errorf("a password session came with a certificate: %+v", cert)
		case id == "ls-cert" && (cert == nil || cert.Serial != c.Serial || cert.IsRevoked() || !cert.NotAfter.Equal(c.NotAfter)):
			t.Errorf("the bound certificate: %+v, want serial %s valid until %v", cert, c.Serial, c.NotAfter)
		}
	}
	update(t, s, func(tx certportal.Tx) error {
		return tx.RevokeCertificate(ctx, c.Serial, base, certportal.ReasonSuperseded)
	})
	if _, _, cert, err := s.LookupSession(ctx, "ls-cert"); err != nil || cert == nil || !cert.IsRevoked() || cert.Reason != certportal.ReasonSuperseded {
		t.Errorf("after a revocation: %+v, %v", cert, err)
	}
	_, _, _, err := s.LookupSession(ctx, "no-such-session")
	wantCode(t, "LookupSession(unknown)", err, certportal.NotFound)
}

// LookupSeesOtherStore checks, for two stores on one database (two
// processes on one SQLite file, two PostgreSQL replicas), that Lookup and
// Statuses of a see every change b commits at their very next call, however
// often they read the same rows before (a store may cache them only while
// it can tell that nothing committed since): a revocation, then a
// cancellation, then a new certificate.
func LookupSeesOtherStore(t *testing.T, a, b certportal.Store) {
	ctx := context.Background()
	c := NewCert("Omar", "SOP-ICA1", base)
	update(t, b, func(tx certportal.Tx) error {
		if err := tx.CreateAccount(ctx, newAccount("Omar")); err != nil {
			return err
		}
		return tx.InsertCertificate(ctx, c)
	})
	warm := func(what string) {
		t.Helper()
		for range 3 {
			got, acc, err := lookupOne(ctx, a, c.SHA256)
			st, err2 := a.Statuses(ctx, []string{c.Serial})
			if err != nil || err2 != nil || got.IsRevoked() || acc.Status != certportal.StatusActive || st[c.Serial] == nil || st[c.Serial].IsRevoked() {
				t.Fatalf("%s: Lookup %+v %+v %v, Statuses %+v %v", what, got, acc, err, st, err2)
			}
		}
	}
	warm("before the revocation")
	// A store that caches (certportal.CachedStore) may answer from its
	// cache now, but must not vouch for a row read before the revocation.
	cs, cached := a.(certportal.CachedStore)
	update(t, b, func(tx certportal.Tx) error {
		return tx.RevokeCertificate(ctx, c.Serial, base, certportal.ReasonKeyCompromise)
	})
	if cached {
		if f, hit := cs.CachedLookup(strings.ToUpper(c.SHA256)); hit && !f.Cert.IsRevoked() {
			t.Errorf("CachedLookup after another store's revocation: %+v; want a miss or revoked", f.Cert)
		}
		if st, hit := cs.CachedStatus(strings.ToUpper(c.Serial)); hit && !st.IsRevoked() {
			t.Errorf("CachedStatus after another store's revocation: %+v; want a miss or revoked", st)
		}
	}
	if got, _, err := lookupOne(ctx, a, c.SHA256); err != nil || !got.IsRevoked() {
		t.Errorf("Lookup at the next call after another store's revocation: %+v, %v; want revoked", got, err)
	}
	if st, err := a.Statuses(ctx, []string{c.Serial}); err != nil || st[c.Serial] == nil || st[c.Serial].Reason != certportal.ReasonKeyCompromise {
		t.Errorf("Statuses at the next call after another store's revocation: %+v, %v; want revoked", st, err)
	}

	d := NewCert("Omar", "SOP-ICA1", base)
	update(t, b, func(tx certportal.Tx) error { return tx.InsertCertificate(ctx, d) })
	c = d
	warm("a new certificate")
	update(t, b, func(tx certportal.Tx) error {
		acc, err := tx.LockAccount(ctx, "omar")
		if err != nil {
			return err
		}
		acc.Status = certportal.StatusCancelled
		return tx.UpdateAccount(ctx, acc)
	})
	if _, acc, err := lookupOne(ctx, a, d.SHA256); err != nil || acc.Status != certportal.StatusCancelled {
		t.Errorf("Lookup at the next call after another store's cancellation: %+v, %v; want cancelled", acc, err)
	}
}
