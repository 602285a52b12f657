package storetest

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certportal/certportal"
)

// Bench runs the storage benchmarks of the hot paths against stores made
// by open (a fresh empty store each call), so SQLite and PostgreSQL are
// measured by the same code:
//
//   - CertificateBySHA256: the check every request with a client
//     certificate makes, a View that finds the certificate by fingerprint
//     (10,000 certificates in the store), serially and in parallel;
//   - UpdateIssue: what issuing costs the database — lock the account,
//     revoke its valid certificate, insert the new one, append the audit
//     record, in one committed transaction; UpdateIssueParallel, the same
//     from 16 goroutines at once, each on accounts of its own, where a
//     store may share one commit's flush among transactions;
//   - Revocations: listing one issuer's revocations for its CRL, with
//     200,000 revoked certificates (half expired long ago, a tenth of the
//     rest from another issuer).
func Bench(b *testing.B, open func(b *testing.B) certportal.Store) {
	b.Run("CertificateBySHA256", func(b *testing.B) { benchLookup(b, open(b)) })
	b.Run("Lookup", func(b *testing.B) { benchStoreLookup(b, open(b)) })
	b.Run("UpdateIssue", func(b *testing.B) { benchUpdateIssue(b, open(b)) })
	b.Run("UpdateIssueParallel", func(b *testing.B) { benchUpdateIssueParallel(b, open(b)) })
	b.Run("Revocations", func(b *testing.B) { benchRevocations(b, open(b)) })
}

// fill creates n accounts with one certificate each and returns the
// certificates' SHA-256 fingerprints.
func fill(b *testing.B, s certportal.Store, n int) []string {
	ctx := context.Background()
	sums := make([]string, 0, n)
	now := time.Now()
	err := s.Update(ctx, func(tx certportal.Tx) error {
		for i := range n {
			id := fmt.Sprintf("user%05d", i)
			acc := newAccount(id)
			acc.Method = certportal.MethodCertificate
			if err := tx.CreateAccount(ctx, acc); err != nil {
				return err
			}
			c := NewCert(id, "SOP-ICA1", now)
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

func benchLookup(b *testing.B, s certportal.Store) {
	sums := fill(b, s, 10000)
	ctx := context.Background()
	lookup := func(sum string) {
		err := s.View(ctx, func(tx certportal.Tx) error {
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

func benchUpdateIssue(b *testing.B, s certportal.Store) {
	fill(b, s, 1000)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		id := fmt.Sprintf("user%05d", i%1000)
		now := time.Now()
		err := s.Update(ctx, func(tx certportal.Tx) error {
			return Supersede(ctx, tx, NewCert(id, "SOP-ICA1", now), "192.0.2.1")
		})
		if err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// benchUpdateIssueParallel is benchUpdateIssue on 16 goroutines (a
// multiple of GOMAXPROCS), goroutine g issuing for its own share of the
// 1000 accounts, so that transactions never wait for each other's rows.
func benchUpdateIssueParallel(b *testing.B, s certportal.Store) {
	fill(b, s, 1000)
	ctx := context.Background()
	par := (16 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0)
	share := 1000 / (par * runtime.GOMAXPROCS(0))
	var next atomic.Int32
	b.SetParallelism(par)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		g := int(next.Add(1) - 1)
		for i := 0; pb.Next(); i++ {
			id := fmt.Sprintf("user%05d", g*share+i%share)
			now := time.Now()
			err := s.Update(ctx, func(tx certportal.Tx) error {
				return Supersede(ctx, tx, NewCert(id, "SOP-ICA1", now), "192.0.2.1")
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func benchRevocations(b *testing.B, s certportal.Store) {
	const n = 200000
	ctx := context.Background()
	now := time.Now()
	start := time.Now()
	err := s.Update(ctx, func(tx certportal.Tx) error {
		if err := tx.CreateAccount(ctx, newAccount("many")); err != nil {
			return err
		}
		for i := range n {
			issuer := "SOP-ICA1"
			if i%10 == 0 {
				issuer = "SOP-ICA2"
			}
			c := NewCert("many", issuer, now)
			c.DER = c.DER[:64]
			c.SHA256 = certportal.Fingerprint256(c.DER)
			c.Revoked, c.Reason = now, certportal.ReasonSuperseded
			if i%2 == 0 {
				c.NotAfter = now.AddDate(-2, 0, 0)
			}
			if err := tx.InsertCertificate(ctx, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("filled %d revoked certificates in %v", n, time.Since(start).Round(time.Millisecond))
	for b.Loop() {
		var got []certportal.Revocation
		err := s.View(ctx, func(tx certportal.Tx) error {
			var err error
			got, err = tx.Revocations(ctx, "SOP-ICA1", now)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != n/2 {
			b.Fatalf("%d revocations, want %d", len(got), n/2)
		}
	}
}

// benchStoreLookup measures Store.Lookup, the per-request check's one
// statement, serially and from parallel goroutines.
func benchStoreLookup(b *testing.B, s certportal.Store) {
	sums := fill(b, s, 10000)
	ctx := context.Background()
	lookup := func(sum string) {
		c, a, err := lookupOne(ctx, s, sum)
		if err == nil && (c.SHA256 != sum || a.ID != c.AccountID) {
			err = fmt.Errorf("found %s of %s for %s", c.SHA256, a.ID, sum)
		}
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
