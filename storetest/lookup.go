package storetest

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/certportal/certportal"
)

// testLookup: Lookup returns what a View of the certificate and its
// account returns, sees a revocation and a cancellation at once, and is
// NotFound for an unknown fingerprint.
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
	got, acc, err := s.Lookup(ctx, strings.ToLower(c.SHA256))
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(acc, wantAcc) {
		t.Errorf("Lookup = %+v, %+v\nwant %+v, %+v", got, acc, want, wantAcc)
	}
	update(t, s, func(tx certportal.Tx) error {
		return tx.RevokeCertificate(ctx, c.Serial, base, certportal.ReasonKeyCompromise)
	})
	if got, _, err := s.Lookup(ctx, c.SHA256); err != nil || !got.IsRevoked() || got.Reason != certportal.ReasonKeyCompromise {
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
	if _, acc, err := s.Lookup(ctx, c.SHA256); err != nil || acc.Status != certportal.StatusCancelled {
		t.Errorf("Lookup after a cancellation: %+v, %v", acc, err)
	}
	_, _, err = s.Lookup(ctx, certportal.Fingerprint256([]byte("nothing")))
	wantCode(t, "Lookup(unknown)", err, certportal.NotFound)
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
