package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/storetest"
)

// Two DBs opened on one database are two replicas: two pools, no shared
// memory, only the database between them. These tests run the operations
// whose rules must hold across replicas from both at once.

// replicas opens a fresh database and two stores on it.
func replicas(t *testing.T) [2]*DB {
	t.Helper()
	a, dsn := openFresh(t)
	return [2]*DB{a, openAgain(t, dsn)}
}

// TestReplicasIssue issues certificates for the same accounts from two
// replicas at once, the way portal does (lock the account, revoke its valid
// certificate, insert the new one, audit): every Update succeeds, each
// account ends with exactly one valid certificate, and the audit log is one
// unbroken chain.
func TestReplicasIssue(t *testing.T) {
	dbs := replicas(t)
	ctx := context.Background()
	const accounts, workers = 8, 120
	err := dbs[0].Update(ctx, func(tx certportal.Tx) error {
		for i := range accounts {
			id := fmt.Sprintf("Rep%02d", i)
			if err := tx.CreateAccount(ctx, &certportal.Account{ID: id, Email: id + "@example.com",
				Method: certportal.MethodPassword, Status: certportal.StatusActive}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	serials := make(chan string, workers)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			id := fmt.Sprintf("rep%02d", w%accounts)
			now := time.Now()
			c := storetest.NewCert(id, "SOP-ICA1", now)
			err := dbs[w%2].Update(ctx, func(tx certportal.Tx) error {
				return storetest.Supersede(ctx, tx, c, fmt.Sprint("replica ", w%2))
			})
			if err != nil {
				errs <- fmt.Errorf("worker %d (replica %d): %w", w, w%2, err)
				return
			}
			serials <- c.Serial
		})
	}
	wg.Wait()
	close(errs)
	close(serials)
	for err := range errs {
		t.Error(err)
	}
	issued := map[string]bool{}
	for s := range serials {
		issued[s] = true
	}
	err = dbs[1].View(ctx, func(tx certportal.Tx) error {
		all, err := tx.ListCertificates(ctx, certportal.CertFilter{})
		if err != nil {
			return err
		}
		if len(all) != workers || len(issued) != workers {
			t.Errorf("%d certificates stored, %d reported issued, want %d", len(all), len(issued), workers)
		}
		for _, c := range all {
			if !issued[c.Serial] {
				t.Errorf("certificate %s is stored but its Update failed", c.Serial)
			}
		}
		for i := range accounts {
			id := fmt.Sprintf("REP%02d", i)
			valid, err := tx.ListCertificates(ctx, certportal.CertFilter{AccountID: id, Unrevoked: true})
			if err != nil {
				return err
			}
			if len(valid) != 1 {
				t.Errorf("%s has %d valid certificates, want 1", id, len(valid))
			}
		}
		events, err := tx.ListAudit(ctx, certportal.AuditFilter{})
		if err != nil {
			return err
		}
		storetest.CheckIssueAudit(t, events, accounts, workers)
		if bad, err := certportal.VerifyAuditChain(events); err != nil {
			t.Errorf("audit chain broken at %d: %v", bad, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestReplicasSafetyNet checks the unique index under the one-valid rule
// across replicas: two replicas that insert for one account without
// revoking (a bug in a caller) cannot both commit.
func TestReplicasSafetyNet(t *testing.T) {
	dbs := replicas(t)
	ctx := context.Background()
	err := dbs[0].Update(ctx, func(tx certportal.Tx) error {
		return tx.CreateAccount(ctx, &certportal.Account{ID: "net", Email: "net@example.com",
			Method: certportal.MethodPassword, Status: certportal.StatusActive})
	})
	if err != nil {
		t.Fatal(err)
	}
	const n = 10
	var wg sync.WaitGroup
	results := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			results <- dbs[i%2].Update(ctx, func(tx certportal.Tx) error {
				return tx.InsertCertificate(ctx, storetest.NewCert("net", "SOP-ICA1", time.Now()))
			})
		})
	}
	wg.Wait()
	close(results)
	ok := 0
	for err := range results {
		switch certportal.ErrorCodeOf(err) {
		case "":
			ok++
		case certportal.Conflict:
		default:
			t.Errorf("insert: %v, want success or Conflict", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d of %d blind inserts for one account committed, want 1", ok, n)
	}
}

// TestReplicasCRLNumbers takes CRL numbers from two replicas at once: no
// number is handed out twice, and each replica sees them rise.
func TestReplicasCRLNumbers(t *testing.T) {
	dbs := replicas(t)
	ctx := context.Background()
	const perReplica = 40
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	errs := make(chan error, 2*perReplica)
	for r := range dbs {
		for range perReplica {
			wg.Go(func() {
				var n int64
				err := dbs[r].Update(ctx, func(tx certportal.Tx) error {
					var err error
					n, err = tx.NextCRLNumber(ctx, "SOP-ICA1")
					return err
				})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				seen[n]++
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for n, k := range seen {
		if k > 1 {
			t.Errorf("CRL number %d handed out %d times", n, k)
		}
	}
	if len(seen) != 2*perReplica {
		t.Errorf("%d distinct numbers from %d calls", len(seen), 2*perReplica)
	}
	for i := int64(1); i <= 2*perReplica; i++ {
		if seen[i] != 1 {
			t.Errorf("CRL number %d was not handed out exactly once (%d)", i, seen[i])
		}
	}
}

// TestReplicasAudit appends audit records from both replicas at once, some
// transactions with several records, some rolled back: the log stays one
// chain without gaps.
func TestReplicasAudit(t *testing.T) {
	dbs := replicas(t)
	ctx := context.Background()
	const workers = 60
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	var committed sync.Map
	for w := range workers {
		wg.Go(func() {
			records := 1 + w%3
			err := dbs[w%2].Update(ctx, func(tx certportal.Tx) error {
				for i := range records {
					e := &certportal.AuditEvent{Time: time.Now(), Actor: "system", AccountID: fmt.Sprint("acct", w),
						Action: certportal.ActionMailSent, Detail: fmt.Sprint(w, "/", i)}
					if err := tx.AppendAudit(ctx, e); err != nil {
						return err
					}
				}
				if w%7 == 0 {
					return errRollback
				}
				return nil
			})
			if err == errRollback {
				return
			}
			if err != nil {
				errs <- err
				return
			}
			committed.Store(w, records)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	want := 0
	committed.Range(func(_, v any) bool { want += v.(int); return true })
	for r, db := range dbs {
		err := db.View(ctx, func(tx certportal.Tx) error {
			events, err := tx.ListAudit(ctx, certportal.AuditFilter{})
			if err != nil {
				return err
			}
			if len(events) != want {
				t.Errorf("replica %d: %d audit records, want %d", r, len(events), want)
			}
			if bad, err := certportal.VerifyAuditChain(events); err != nil {
				t.Errorf("replica %d: audit chain broken at %d: %v", r, bad, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

var errRollback = fmt.Errorf("roll back on purpose")

// TestReplicasLookup: a change committed on one replica is seen by the
// other's Lookup and Statuses at the next call.
func TestReplicasLookup(t *testing.T) {
	r := replicas(t)
	storetest.LookupSeesOtherStore(t, r[0], r[1])
}
