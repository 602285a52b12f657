package portal

import (
	"context"
	"math/big"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
)

// maxCRLNumberSkip bounds how far SignRootCRL moves the database's CRL
// number to pass the root CRL in place (see there): farther than any
// yearly, or even daily, signing could have gone.
const maxCRLNumberSkip = 100000

// SignRootCRL signs the root CRL with the root key, which the caller has
// loaded into s.CA (init, ca rollover, ca root-crl; serve only on its
// first start after an upgrade), stores it in the database with the other
// CRLs, audits it, and writes it to DATA/ca/root.crl, where serve
// publishes it. lifetime is the time to nextUpdate.
//
// The CRL number comes from the database, as every CRL number does, so it
// is never reused. It must also pass the number of the root.crl in place,
// which the database may not know of (a database restored from an older
// backup): numbers are taken until one does.
func (s *Service) SignRootCRL(ctx context.Context, a Actor, lifetime time.Duration) (*ca.RootCRL, error) {
	issuer := s.CA.Root.Subject.CommonName
	floor := big.NewInt(0)
	if cur, err := s.CA.RootCRL(); err == nil {
		floor = cur.Number
	}
	var count int64
	var revs []certportal.Revocation
	err := s.Store.View(ctx, func(tx certportal.Tx) error {
		var err error
		if count, err = tx.RevocationCount(ctx, issuer); err != nil {
			return err
		}
		revs, err = tx.Revocations(ctx, issuer, s.now())
		return err
	})
	if err != nil {
		return nil, err
	}
	var n int64
	err = s.Store.Update(ctx, func(tx certportal.Tx) error {
		for range maxCRLNumberSkip {
			var err error
			if n, err = tx.NextCRLNumber(ctx, issuer); err != nil || big.NewInt(n).Cmp(floor) > 0 {
				return err
			}
		}
		return certportal.Errorf(certportal.Conflict, "the root CRL in place has the number %s, far beyond the database's; the database may not belong to this CA directory", floor)
	})
	if err != nil {
		return nil, err
	}
	crl, err := s.CA.SignRootCRL(n, revs, lifetime)
	if err != nil {
		return nil, err
	}
	err = s.Store.Update(ctx, func(tx certportal.Tx) error {
		err := tx.SaveCRL(ctx, &certportal.CRL{Issuer: issuer, Number: n, ThisUpdate: crl.ThisUpdate, NextUpdate: crl.NextUpdate, DER: crl.DER, Revocations: count})
		if err != nil {
			return err
		}
		return s.audit(ctx, tx, a, "", certportal.ActionCRLSigned, issuer)
	})
	if err != nil {
		return nil, err
	}
	if err := s.CA.SaveRootCRL(crl); err != nil {
		return nil, err
	}
	return crl, nil
}
