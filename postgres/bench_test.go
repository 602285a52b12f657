package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certportal/certportal"
)

// benchCert returns a certificate of account with random DER (the store
// does not parse it) and a 16-byte serial, like the CA's.
func benchCert(account string, at time.Time) *certportal.Certificate {
	der := make([]byte, 600) // about the size of a P-256 client certificate
	rand.Read(der)
	serial := make([]byte, 16)
	rand.Read(serial)
	serial[0] = serial[0]&0x7f | 0x10
	return &certportal.Certificate{
		Serial: strings.ToUpper(hex.EncodeToString(serial)), AccountID: account, Issuer: "SOP-ICA1",
		NotBefore: at.Add(-5 * time.Minute), NotAfter: at.AddDate(1, 0, 0),
		Thumbprint: certportal.Thumbprint(der), SHA256: certportal.Fingerprint256(der), DER: der,
		Issued: at, Reason: certportal.ReasonNone,
	}
}

// fill creates n accounts with one certificate each and returns the
// certificates' SHA-256 fingerprints.
func fill(b *testing.B, db *DB, n int) []string {
	ctx := context.Background()
	sums := make([]string, 0, n)
	now := time.Now()
	err := db.Update(ctx, func(tx certportal.Tx) error {
		for i := range n {
			id := fmt.Sprintf("user%05d", i)
			if err := tx.CreateAccount(ctx, &certportal.Account{ID: id, Email: id + "@example.com",
				Method: certportal.MethodCertificate, Status: certportal.StatusActive, Created: now}); err != nil {
				return err
			}
			c := benchCert(id, now)
			if err := tx.InsertCertificate(ctx, c); err != nil {
				return err
			}
			sums = append(sums, c.SHA256)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return sums
}

// Figures (go test -run XXX -bench . -benchtime=2s -benchmem ./postgres/,
// 2-core AMD EPYC VM shared with other builds, Go 1.26, PostgreSQL 15 on
// the same machine over TCP 127.0.0.1, fsync on), 2026-11-25, load
// average about 2.5; the sqlite figures of the same machine
// (sqlite/bench_test.go) next to them:
//
//	                                        postgres                 sqlite
//	BenchmarkCertificateBySHA256/serial-2     152 µs/op  2.3 KB  39 allocs   15.6 µs/op
//	BenchmarkCertificateBySHA256/parallel-2   121 µs/op                      13.5 µs/op
//	BenchmarkUpdateIssue-2                   1.08 ms/op  9.2 KB 134 allocs    520 µs/op
//
// A View is three round trips (BEGIN, the query, COMMIT); an issuing
// Update is seven (BEGIN, lock, list, revoke, insert, two for the audit
// record) plus COMMIT, which waits for the WAL flush.

// BenchmarkCertificateBySHA256 is the check every request with a client
// certificate makes: a View that finds the certificate by fingerprint.
func BenchmarkCertificateBySHA256(b *testing.B) {
	db, _ := openFresh(b)
	sums := fill(b, db, 10000)
	ctx := context.Background()
	lookup := func(sum string) {
		err := db.View(ctx, func(tx certportal.Tx) error {
			c, err := tx.CertificateBySHA256(ctx, sum)
			if err == nil && c.SHA256 != sum {
				err = fmt.Errorf("found %s for %s", c.SHA256, sum)
			}
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Run("serial", func(b *testing.B) {
		i := 0
		for b.Loop() {
			lookup(sums[i%len(sums)])
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				lookup(sums[next.Add(1)%int64(len(sums))])
			}
		})
	})
}

// BenchmarkUpdateIssue is what issuing a certificate costs the database:
// lock the account, revoke its valid certificate, insert the new one and
// append the audit record, in one committed transaction.
func BenchmarkUpdateIssue(b *testing.B) {
	db, _ := openFresh(b)
	fill(b, db, 1000)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		id := fmt.Sprintf("user%05d", i%1000)
		now := time.Now()
		err := db.Update(ctx, func(tx certportal.Tx) error {
			if _, err := tx.LockAccount(ctx, id); err != nil {
				return err
			}
			valid, err := tx.ListCertificates(ctx, certportal.CertFilter{AccountID: id, Unrevoked: true})
			if err != nil {
				return err
			}
			for _, c := range valid {
				if err := tx.RevokeCertificate(ctx, c.Serial, now, certportal.ReasonSuperseded); err != nil {
					return err
				}
			}
			if err := tx.InsertCertificate(ctx, benchCert(id, now)); err != nil {
				return err
			}
			return tx.AppendAudit(ctx, &certportal.AuditEvent{Time: now, Actor: "user:" + id, AccountID: id,
				Action: certportal.ActionCertIssued, Remote: "192.0.2.1"})
		})
		if err != nil {
			b.Fatal(err)
		}
		i++
	}
}
