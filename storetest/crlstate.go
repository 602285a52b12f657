package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certportal/certportal"
)

// count reads an issuer's RevocationCount in a View.
func count(t *testing.T, s certportal.Store, issuer string) int64 {
	t.Helper()
	var n int64
	view(t, s, func(tx certportal.Tx) error {
		var err error
		n, err = tx.RevocationCount(context.Background(), issuer)
		return err
	})
	return n
}

// testRevocationCount: RevokeCertificate adds one to its issuer's count in
// its own transaction; a refused revocation or a rolled-back transaction
// adds nothing, and other issuers keep theirs.
func testRevocationCount(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	c1, c2, c3 := NewCert("ann", "SOP-ICA1", base), NewCert("bob", "SOP-ICA1", base), NewCert("cat", "SOP-ICA2", base)
	update(t, s, func(tx certportal.Tx) error {
		for _, c := range []*certportal.Certificate{c1, c2, c3} {
			if err := tx.CreateAccount(ctx, newAccount(c.AccountID)); err != nil {
				return err
			}
			if err := tx.InsertCertificate(ctx, c); err != nil {
				return err
			}
		}
		return nil
	})
	want := func(what string, ica1, ica2 int64) {
		t.Helper()
		if n := count(t, s, "SOP-ICA1"); n != ica1 {
			t.Errorf("%s: RevocationCount(SOP-ICA1) = %d, want %d", what, n, ica1)
		}
		if n := count(t, s, "SOP-ICA2"); n != ica2 {
			t.Errorf("%s: RevocationCount(SOP-ICA2) = %d, want %d", what, n, ica2)
		}
	}
	want("before any revocation", 0, 0)

	update(t, s, func(tx certportal.Tx) error {
		return tx.RevokeCertificate(ctx, c1.Serial, base, certportal.ReasonKeyCompromise)
	})
	want("one revocation", 1, 0)

	refused := []struct {
		name   string
		serial string
		at     time.Time
		code   certportal.ErrorCode
	}{
		{"revoked already", c1.Serial, base, certportal.Conflict},
		{"unknown serial", randomHex(16), base, certportal.NotFound},
		{"no time", c2.Serial, time.Time{}, certportal.Invalid},
	}
	for _, tt := range refused {
		err := s.Update(ctx, func(tx certportal.Tx) error {
			return tx.RevokeCertificate(ctx, tt.serial, tt.at, certportal.ReasonKeyCompromise)
		})
		wantCode(t, tt.name, err, tt.code)
		want(tt.name, 1, 0)
	}

	// Rolled back with the transaction that revoked; seen inside it.
	errAbort := errors.New("abort")
	err := s.Update(ctx, func(tx certportal.Tx) error {
		if err := tx.RevokeCertificate(ctx, c2.Serial, base, certportal.ReasonSuperseded); err != nil {
			return err
		}
		if n, err := tx.RevocationCount(ctx, "SOP-ICA1"); err != nil || n != 2 {
			t.Errorf("RevocationCount inside the revoking transaction = %d, %v; want 2", n, err)
		}
		return errAbort
	})
	if !errors.Is(err, errAbort) {
		t.Fatalf("Update: %v, want the abort", err)
	}
	want("rolled back", 1, 0)

	update(t, s, func(tx certportal.Tx) error {
		if err := tx.RevokeCertificate(ctx, c2.Serial, base, certportal.ReasonSuperseded); err != nil {
			return err
		}
		return tx.RevokeCertificate(ctx, c3.Serial, base, certportal.ReasonSuperseded)
	})
	want("three revocations", 2, 1)
}

// testRevocationCountConcurrent: concurrent revocations are each counted,
// and a reader that reads the count and then lists the revocations, as the
// CRL signing does, never sees a count above the list.
func testRevocationCountConcurrent(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	const workers = 20
	certs := make([]*certportal.Certificate, workers)
	update(t, s, func(tx certportal.Tx) error {
		for i := range certs {
			certs[i] = NewCert(fmt.Sprintf("user%02d", i), "SOP-ICA1", base)
			if err := tx.CreateAccount(ctx, newAccount(certs[i].AccountID)); err != nil {
				return err
			}
			if err := tx.InsertCertificate(ctx, certs[i]); err != nil {
				return err
			}
		}
		return nil
	})
	var done atomic.Bool
	var readers, writers sync.WaitGroup
	for range 3 {
		readers.Go(func() {
			for !done.Load() {
				err := s.View(ctx, func(tx certportal.Tx) error {
					n, err := tx.RevocationCount(ctx, "SOP-ICA1")
					if err != nil {
						return err
					}
					revs, err := tx.Revocations(ctx, "SOP-ICA1", base)
					if err != nil {
						return err
					}
					if int64(len(revs)) < n {
						t.Errorf("count %d read before a list of %d revocations", n, len(revs))
					}
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for _, c := range certs {
		writers.Go(func() {
			err := s.Update(ctx, func(tx certportal.Tx) error {
				return tx.RevokeCertificate(ctx, c.Serial, base, certportal.ReasonKeyCompromise)
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	writers.Wait()
	done.Store(true)
	readers.Wait()
	if n := count(t, s, "SOP-ICA1"); n != workers {
		t.Errorf("RevocationCount after %d concurrent revocations = %d", workers, n)
	}
}
