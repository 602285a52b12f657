package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/certportal/certportal"
)

func testAudit(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	var appended []certportal.AuditEvent
	add := func(account, action string, at time.Time) {
		t.Helper()
		update(t, s, func(tx certportal.Tx) error {
			e := &certportal.AuditEvent{Time: at, Actor: "user:" + account, AccountID: account, Action: action,
				Detail: "serial 7A01", Remote: "192.0.2.1"}
			if err := tx.AppendAudit(ctx, e); err != nil {
				return err
			}
			if want := int64(len(appended) + 1); e.Seq != want {
				t.Errorf("Seq = %d, want %d", e.Seq, want)
			}
			if len(appended) > 0 && e.PrevHash != appended[len(appended)-1].Hash {
				t.Errorf("record %d: PrevHash %q, want the previous hash", e.Seq, e.PrevHash)
			}
			if e.Hash == "" || e.Hash != certportal.AuditHash(e) {
				t.Errorf("record %d: Hash %q is not AuditHash", e.Seq, e.Hash)
			}
			appended = append(appended, *e)
			return nil
		})
	}
	add("Rita", certportal.ActionSignInFailed, base)
	add("rita", certportal.ActionSignInFailed, base.Add(time.Minute))
	add("sam", certportal.ActionSignInOK, base.Add(2*time.Minute))
	// A time with nanoseconds: the store keeps what it hashed.
	add("RITA", certportal.ActionRecovery, base.Add(3*time.Minute+789*time.Nanosecond))
	add("", certportal.ActionCRLSigned, base.Add(4*time.Minute))
	// Several appends in one transaction chain too.
	update(t, s, func(tx certportal.Tx) error {
		for i := range 3 {
			e := &certportal.AuditEvent{Time: base.Add(5 * time.Minute), Actor: "system", AccountID: "sam",
				Action: certportal.ActionMailSent, Detail: fmt.Sprint(i)}
			if err := tx.AppendAudit(ctx, e); err != nil {
				return err
			}
			appended = append(appended, *e)
		}
		return nil
	})
	if appended[1].Seq != 2 || appended[0].PrevHash != "" {
		t.Errorf("the chain does not start at 1 with an empty PrevHash: %+v", appended[:2])
	}

	var all []certportal.AuditEvent
	view(t, s, func(tx certportal.Tx) error {
		var err error
		all, err = tx.ListAudit(ctx, certportal.AuditFilter{})
		return err
	})
	if len(all) != len(appended) {
		t.Fatalf("ListAudit: %d records, want %d", len(all), len(appended))
	}
	if bad, err := certportal.VerifyAuditChain(all); err != nil {
		t.Fatalf("VerifyAuditChain: record %d: %v", bad, err)
	}
	for i := range all {
		if all[i].Hash != appended[i].Hash || all[i].AccountID != appended[i].AccountID || all[i].Detail != appended[i].Detail {
			t.Errorf("record %d: read %+v, appended %+v", i+1, all[i], appended[i])
		}
		sameTime(t, "audit Time", all[i].Time, appended[i].Time)
	}
	// The chain detects a change.
	tampered := append([]certportal.AuditEvent(nil), all...)
	tampered[2].Detail = "changed"
	if bad, err := certportal.VerifyAuditChain(tampered); err == nil || bad != 3 {
		t.Errorf("VerifyAuditChain missed a change (bad=%d, err=%v)", bad, err)
	}

	seqs := func(f certportal.AuditFilter) []int64 {
		var out []int64
		view(t, s, func(tx certportal.Tx) error {
			es, err := tx.ListAudit(ctx, f)
			for _, e := range es {
				out = append(out, e.Seq)
			}
			return err
		})
		return out
	}
	for _, tc := range []struct {
		f    certportal.AuditFilter
		want string
	}{
		{certportal.AuditFilter{AccountID: "rita"}, "[1 2 4]"},
		{certportal.AuditFilter{AccountID: "RITA", AfterSeq: 1}, "[2 4]"},
		{certportal.AuditFilter{AccountID: "Rita", Limit: 2}, "[1 2]"},
		{certportal.AuditFilter{AfterSeq: 5, Limit: 2}, "[6 7]"},
		{certportal.AuditFilter{AccountID: "nobody"}, "[]"},
	} {
		if got := fmt.Sprint(seqs(tc.f)); got != tc.want {
			t.Errorf("ListAudit(%+v) = %s, want %s", tc.f, got, tc.want)
		}
	}
	for _, tc := range []struct {
		account, action string
		since           time.Time
		want            int
	}{
		{"RITA", certportal.ActionSignInFailed, base, 2},
		{"rita", certportal.ActionSignInFailed, base.Add(30 * time.Second), 1},
		{"rita", certportal.ActionRecovery, base, 1},
		{"sam", certportal.ActionMailSent, base, 3},
		{"sam", certportal.ActionSignInFailed, base, 0},
	} {
		var n int
		view(t, s, func(tx certportal.Tx) error {
			var err error
			n, err = tx.CountAudit(ctx, tc.account, tc.action, tc.since)
			return err
		})
		if n != tc.want {
			t.Errorf("CountAudit(%s, %s, %v) = %d, want %d", tc.account, tc.action, tc.since, n, tc.want)
		}
	}
}

func testCRLNumbers(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	next := func(issuer string) int64 {
		var n int64
		update(t, s, func(tx certportal.Tx) error {
			var err error
			n, err = tx.NextCRLNumber(ctx, issuer)
			return err
		})
		return n
	}
	var last int64
	for i := range 5 {
		n := next("SOP-ICA1")
		if n <= last {
			t.Fatalf("NextCRLNumber call %d = %d, not above %d", i, n, last)
		}
		last = n
	}
	if n := next("SOP-RCA"); n <= 0 {
		t.Errorf("first NextCRLNumber of another issuer = %d, want a positive number", n)
	}

	const workers = 20
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			var n int64
			err := s.Update(ctx, func(tx certportal.Tx) error {
				var err error
				n, err = tx.NextCRLNumber(ctx, "SOP-ICA1")
				return err
			})
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[n] || n <= last {
				errs <- fmt.Errorf("CRL number %d handed out twice", n)
			}
			seen[n] = true
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(seen) != workers {
		t.Errorf("%d distinct numbers from %d concurrent calls", len(seen), workers)
	}
}

func testCRLs(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	err := s.View(ctx, func(tx certportal.Tx) error { _, err := tx.LatestCRL(ctx, "SOP-ICA1"); return err })
	wantCode(t, "LatestCRL before any", err, certportal.NotFound)
	mk := func(issuer string, n int64) *certportal.CRL {
		return &certportal.CRL{Issuer: issuer, Number: n, ThisUpdate: base.Add(time.Duration(n) * time.Hour),
			NextUpdate: base.Add(time.Duration(n)*time.Hour + 7*24*time.Hour), DER: []byte(fmt.Sprintf("crl %s %d", issuer, n)),
			Revocations: 1000 + n}
	}
	// Out of order: the highest number wins, not the last saved.
	for _, c := range []*certportal.CRL{mk("SOP-ICA1", 1), mk("SOP-ICA1", 3), mk("SOP-ICA1", 2), mk("SOP-RCA", 9)} {
		update(t, s, func(tx certportal.Tx) error { return tx.SaveCRL(ctx, c) })
	}
	err = s.Update(ctx, func(tx certportal.Tx) error { return tx.SaveCRL(ctx, mk("SOP-ICA1", 3)) })
	wantCode(t, "SaveCRL of a stored number", err, certportal.Conflict)
	for _, want := range []*certportal.CRL{mk("SOP-ICA1", 3), mk("SOP-RCA", 9)} {
		view(t, s, func(tx certportal.Tx) error {
			got, err := tx.LatestCRL(ctx, want.Issuer)
			if err != nil {
				return err
			}
			if got.Issuer != want.Issuer || got.Number != want.Number || string(got.DER) != string(want.DER) || got.Revocations != want.Revocations {
				t.Errorf("LatestCRL(%s) = %+v, want %+v", want.Issuer, got, want)
			}
			sameTime(t, "ThisUpdate", got.ThisUpdate, want.ThisUpdate)
			sameTime(t, "NextUpdate", got.NextUpdate, want.NextUpdate)
			return nil
		})
	}
	// Many CRLs later the latest is still the highest.
	for n := int64(4); n <= 20; n++ {
		update(t, s, func(tx certportal.Tx) error { return tx.SaveCRL(ctx, mk("SOP-ICA1", n)) })
	}
	view(t, s, func(tx certportal.Tx) error {
		got, err := tx.LatestCRL(ctx, "SOP-ICA1")
		if err == nil && got.Number != 20 {
			t.Errorf("LatestCRL after 20 = %d", got.Number)
		}
		return err
	})
}
