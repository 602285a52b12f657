package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/certportal/certportal"
)

// The group commit's tests. Commits are counted by SQLite's commit hook on
// the writer connection (db.w.hooks.commits), which also counts a
// statement that ran outside a transaction.

// member is one Update of a test: what it writes (an account and an audit
// record) and, optionally, what it does then.
func member(ctx context.Context, id string, then func(tx certportal.Tx) error) func(certportal.Tx) error {
	return func(tx certportal.Tx) error {
		now := time.Now().UTC()
		if err := tx.CreateAccount(ctx, &certportal.Account{ID: id, Email: id + "@example.com",
			Method: certportal.MethodPassword, Status: certportal.StatusActive, Created: now, Updated: now}); err != nil {
			return err
		}
		if err := tx.AppendAudit(ctx, &certportal.AuditEvent{Time: now, Actor: "admin", AccountID: id,
			Action: certportal.ActionAccountCreated, Remote: "test"}); err != nil {
			return err
		}
		if then != nil {
			return then(tx)
		}
		return nil
	}
}

// exists reports whether the account id is committed, read on a read
// connection.
func exists(t *testing.T, db *DB, id string) bool {
	t.Helper()
	ctx := context.Background()
	var found bool
	err := db.View(ctx, func(tx certportal.Tx) error {
		_, err := tx.Account(ctx, id)
		if certportal.ErrorCodeOf(err) == certportal.NotFound {
			return nil
		}
		found = err == nil
		return err
	})
	if err != nil {
		t.Fatalf("View: %v", err)
	}
	return found
}

// checkChain verifies the whole audit chain and returns its length.
func checkChain(t *testing.T, db *DB) int {
	t.Helper()
	ctx := context.Background()
	var n int
	err := db.View(ctx, func(tx certportal.Tx) error {
		events, err := tx.ListAudit(ctx, certportal.AuditFilter{})
		if err != nil {
			return err
		}
		n = len(events)
		if bad, err := certportal.VerifyAuditChain(events); err != nil {
			t.Errorf("audit chain broken at %d: %v", bad, err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("View: %v", err)
	}
	return n
}

// waitQueued waits until n Updates wait for the turn.
func waitQueued(t *testing.T, db *DB, n int32) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for db.w.waiting.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d Updates wait for the turn, want %d", db.w.waiting.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// gate starts an Update (the account id) whose fn holds the turn
// until release is closed, so that the Updates started meanwhile queue
// behind it in the order they start and join its transaction. It returns
// the first Update's result channel.
func gate(t *testing.T, db *DB, id string, release <-chan struct{}) <-chan error {
	t.Helper()
	return gateCtx(t, context.Background(), db, id, release)
}

// gateCtx is gate with the first Update's ctx.
func gateCtx(t *testing.T, ctx context.Context, db *DB, id string, release <-chan struct{}) <-chan error {
	t.Helper()
	started := make(chan struct{})
	res := make(chan error, 1)
	go func() {
		res <- db.Update(ctx, member(ctx, id, func(certportal.Tx) error {
			close(started)
			<-release
			return nil
		}))
	}()
	<-started
	return res
}

// TestGroupCommitParallel runs 64 goroutines of 10 Updates each: every
// Update commits and is visible to a reader once it has returned, the
// audit chain holds all 640 records, and fewer commits than Updates ran
// (grouping), but no fewer than maxBatch members each allow.
func TestGroupCommitParallel(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	const goroutines, each = 64, 10
	before := db.w.hooks.commits.Load()
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("g%02d-%02d", g, i)
				if err := db.Update(ctx, member(ctx, id, nil)); err != nil {
					t.Errorf("Update %s: %v", id, err)
					return
				}
				if !exists(t, db, id) {
					t.Errorf("Update %s returned before its commit: a reader does not see it", id)
				}
			}
		})
	}
	wg.Wait()
	commits := db.w.hooks.commits.Load() - before
	t.Logf("%d Updates, %d commits", goroutines*each, commits)
	if commits >= goroutines*each {
		t.Errorf("%d commits for %d Updates: none were grouped", commits, goroutines*each)
	}
	if min := int64((goroutines*each + maxBatch - 1) / maxBatch); commits < min {
		t.Errorf("%d commits for %d Updates: some batch had more than %d members", commits, goroutines*each, maxBatch)
	}
	if n := checkChain(t, db); n != goroutines*each {
		t.Errorf("%d audit records, want %d", n, goroutines*each)
	}
	// The statements the batches prepared for themselves were cached for
	// the next transactions.
	if _, ok := db.writeStmts.lookup(`SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`); !ok {
		t.Error("the audit append's statement was not cached after the batches")
	}
}

// TestGroupCommitBatches pins how batches form: 64 Updates, a first one
// and 63 queued behind it, make two commits of maxBatch (32) members, and
// 65 make three; then Updates one after the other commit each at once.
func TestGroupCommitBatches(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	records := 0
	// 64 Updates (the gated first and the queued) fill two batches of 32
	// exactly; one more needs a third: the cap is 32, not one more or one
	// less (literal numbers, so that changing maxBatch fails here).
	for round, want := range map[int]int64{64: 2, 65: 3} {
		before := db.w.hooks.commits.Load()
		release := make(chan struct{})
		first := gate(t, db, fmt.Sprintf("first%d", round), release)
		var wg sync.WaitGroup
		for i := range round - 1 {
			wg.Go(func() {
				if err := db.Update(ctx, member(ctx, fmt.Sprintf("q%d-%02d", round, i), nil)); err != nil {
					t.Errorf("Update: %v", err)
				}
			})
		}
		waitQueued(t, db, int32(round-1))
		close(release)
		if err := <-first; err != nil {
			t.Fatalf("first Update: %v", err)
		}
		wg.Wait()
		if got := db.w.hooks.commits.Load() - before; got != want {
			t.Errorf("%d queued Updates made %d commits, want %d (batches of %d)", round, got, want, maxBatch)
		}
		records += round
	}
	before := db.w.hooks.commits.Load()
	for i := range 5 {
		if err := db.Update(ctx, member(ctx, fmt.Sprintf("alone%d", i), nil)); err != nil {
			t.Fatal(err)
		}
	}
	if got := db.w.hooks.commits.Load() - before; got != 5 {
		t.Errorf("5 Updates one after the other made %d commits, want 5", got)
	}
	if n := checkChain(t, db); n != records+5 {
		t.Errorf("%d audit records, want %d", n, records+5)
	}
}

// TestGroupCommitFailingMembers puts, in one batch behind the first
// Update, a member that succeeds, one that fails after writing, one that
// panics after writing and one more that succeeds: the failing and the
// panicking members leave nothing, the others commit together (one
// commit), and the audit chain skips nothing.
func TestGroupCommitFailingMembers(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	before := db.w.hooks.commits.Load()
	release := make(chan struct{})
	first := gate(t, db, "first", release)
	errStop := errors.New("stop")
	type result struct {
		err       error
		recovered any
	}
	fns := []struct {
		id string
		fn func(certportal.Tx) error
	}{
		{"a", member(ctx, "a", nil)},
		{"b", member(ctx, "b", func(certportal.Tx) error { return errStop })},
		{"c", member(ctx, "c", func(certportal.Tx) error { panic("boom") })},
		{"d", member(ctx, "d", nil)},
	}
	results := make([]chan result, len(fns))
	for i, f := range fns {
		results[i] = make(chan result, 1)
		go func() {
			var err error
			defer func() { results[i] <- result{err, recover()} }()
			err = db.Update(ctx, f.fn)
		}()
		waitQueued(t, db, int32(i+1))
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("first: %v", err)
	}
	got := make([]result, len(fns))
	for i := range fns {
		got[i] = <-results[i]
	}
	if got[0].err != nil || got[0].recovered != nil || got[3].err != nil || got[3].recovered != nil {
		t.Errorf("a: %+v, d: %+v; want both committed", got[0], got[3])
	}
	if !errors.Is(got[1].err, errStop) {
		t.Errorf("b returned %v, want its own error", got[1].err)
	}
	if got[2].recovered != "boom" {
		t.Errorf("c: recovered %v, want its panic passed on", got[2].recovered)
	}
	for id, want := range map[string]bool{"first": true, "a": true, "b": false, "c": false, "d": true} {
		if exists(t, db, id) != want {
			t.Errorf("account %s committed: %v, want %v", id, !want, want)
		}
	}
	if n := db.w.hooks.commits.Load() - before; n != 1 {
		t.Errorf("%d commits, want 1: the members were not in one batch", n)
	}
	if n := checkChain(t, db); n != 3 {
		t.Errorf("%d audit records, want 3 (first, a, d)", n)
	}
}

// TestGroupCommitCancel: a member whose ctx ends while it waits for the
// turn returns at once with ctx's error, and one whose ctx ends between
// its statements gets ctx's error from the next one; neither leaves
// anything, and the members around them commit.
func TestGroupCommitCancel(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	release := make(chan struct{})
	first := gate(t, db, "first", release)

	xctx, cancelX := context.WithCancel(ctx)
	x := make(chan error, 1)
	go func() { x <- db.Update(xctx, member(xctx, "x", nil)) }()
	waitQueued(t, db, 1)
	zctx, cancelZ := context.WithCancel(ctx)
	z := make(chan error, 1)
	go func() {
		z <- db.Update(zctx, member(zctx, "z", func(tx certportal.Tx) error {
			cancelZ()
			return tx.CreateAccount(zctx, &certportal.Account{ID: "z2", Email: "z2@example.com",
				Method: certportal.MethodPassword, Status: certportal.StatusActive})
		}))
	}()
	waitQueued(t, db, 2)
	y := make(chan error, 1)
	go func() { y <- db.Update(ctx, member(ctx, "y", nil)) }()
	waitQueued(t, db, 3)

	cancelX()
	select {
	case err := <-x:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("x returned %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("x, cancelled while waiting for the turn, still waits")
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("first: %v", err)
	}
	if err := <-z; !errors.Is(err, context.Canceled) {
		t.Errorf("z returned %v, want context.Canceled", err)
	}
	if err := <-y; err != nil {
		t.Errorf("y: %v", err)
	}
	for id, want := range map[string]bool{"first": true, "x": false, "z": false, "z2": false, "y": true} {
		if exists(t, db, id) != want {
			t.Errorf("account %s committed: %v, want %v", id, !want, want)
		}
	}
	if n := checkChain(t, db); n != 2 {
		t.Errorf("%d audit records, want 2 (first, y)", n)
	}

	// The only Update queued behind the first gives up: the first's
	// transaction, which may have been left open for it, still commits.
	release = make(chan struct{})
	first = gate(t, db, "second", release)
	x = make(chan error, 1)
	xctx, cancelX = context.WithCancel(ctx)
	go func() { x <- db.Update(xctx, member(xctx, "x", nil)) }()
	waitQueued(t, db, 1)
	cancelX()
	if err := <-x; !errors.Is(err, context.Canceled) {
		t.Errorf("x returned %v, want context.Canceled", err)
	}
	close(release)
	select {
	case err := <-first:
		if err != nil {
			t.Errorf("first, with no one left behind it: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the first Update waits for a commit no one makes")
	}
}

// TestGroupCommitCancelDuringStatement: a member's ctx ends while one of
// its writes runs. Interrupting that write would roll back the whole
// shared transaction (sqlite3_interrupt); instead the write finishes, the
// member is undone alone with ctx's error, and the first member commits.
func TestGroupCommitCancelDuringStatement(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	release := make(chan struct{})
	first := gate(t, db, "first", release)
	lctx, cancel := context.WithCancel(ctx)
	l := make(chan error, 1)
	go func() {
		l <- db.Update(lctx, func(ltx certportal.Tx) error {
			if _, err := ltx.(*tx).exec(lctx, "CREATE TEMP TABLE big (x)"); err != nil {
				return err
			}
			time.AfterFunc(20*time.Millisecond, cancel)
			// Long enough (about a second) to be running when ctx ends.
			_, err := ltx.(*tx).exec(lctx, `INSERT INTO big WITH RECURSIVE c(x) AS
				(SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) SELECT x FROM c`)
			return err
		})
	}()
	waitQueued(t, db, 1)
	close(release)
	if err := <-first; err != nil {
		t.Errorf("first: %v", err)
	}
	if err := <-l; !errors.Is(err, context.Canceled) {
		t.Errorf("the cancelled member returned %v, want context.Canceled", err)
	}
	if !exists(t, db, "first") {
		t.Error("the first member's account was not kept")
	}
}

// TestGroupCommitFirstCtxEnds: the ctx of the Update that began the
// transaction ends after its fn, while later members still run in the
// transaction: database/sql would roll back a transaction whose BeginTx
// ctx ends, so that ctx must not be the transaction's; both commit.
func TestGroupCommitFirstCtxEnds(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	release := make(chan struct{})
	first := gateCtx(t, fctx, db, "first", release)
	a := make(chan error, 1)
	go func() {
		a <- db.Update(ctx, member(ctx, "a", func(certportal.Tx) error {
			cancel()
			time.Sleep(50 * time.Millisecond) // for database/sql to act on it
			return nil
		}))
	}()
	waitQueued(t, db, 1)
	close(release)
	if err := <-first; err != nil {
		t.Errorf("first: %v", err)
	}
	if err := <-a; err != nil {
		t.Errorf("a: %v", err)
	}
	if !exists(t, db, "first") || !exists(t, db, "a") {
		t.Error("want the accounts first and a")
	}
}

// TestGroupCommitLostTransaction: when SQLite ends the shared transaction
// by itself (here a member runs ROLLBACK, as SQLite does after some
// SQLITE_FULL or SQLITE_IOERR errors), the member's next statement is
// refused rather than run and committed on its own, every member of the
// batch gets an error and nothing of it is kept, and the next Update
// starts a transaction of its own and commits.
func TestGroupCommitLostTransaction(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	release := make(chan struct{})
	first := gate(t, db, "first", release)
	a := make(chan error, 1)
	go func() { a <- db.Update(ctx, member(ctx, "a", nil)) }()
	waitQueued(t, db, 1)
	var b2 error
	b := make(chan error, 1)
	c := make(chan error, 1)
	go func() {
		b <- db.Update(ctx, member(ctx, "b", func(btx certportal.Tx) error {
			// c queues now, behind this member: it comes after the
			// batch is lost.
			go func() { c <- db.Update(ctx, member(ctx, "c", nil)) }()
			for db.w.waiting.Load() < 1 {
				time.Sleep(time.Millisecond)
			}
			if _, err := btx.(*tx).exec(ctx, "ROLLBACK"); err != nil {
				return err
			}
			b2 = btx.CreateAccount(ctx, &certportal.Account{ID: "b2", Email: "b2@example.com",
				Method: certportal.MethodPassword, Status: certportal.StatusActive})
			return nil // the worst case: fn does not pass the error on
		}))
	}()
	waitQueued(t, db, 2)
	before := db.w.hooks.commits.Load()
	close(release)
	for name, ch := range map[string]<-chan error{"first": first, "a": a, "b": b} {
		if err := <-ch; certportal.ErrorCodeOf(err) != certportal.Unavailable {
			t.Errorf("%s returned %v, want Unavailable", name, err)
		}
	}
	if b2 == nil {
		t.Error("a statement ran after SQLite had ended the transaction")
	}
	if err := <-c; err != nil {
		t.Errorf("c, after the lost batch: %v", err)
	}
	for id, want := range map[string]bool{"first": false, "a": false, "b": false, "b2": false, "c": true} {
		if exists(t, db, id) != want {
			t.Errorf("account %s committed: %v, want %v", id, !want, want)
		}
	}
	if n := db.w.hooks.commits.Load() - before; n != 1 {
		t.Errorf("%d commits, want 1 (c's)", n)
	}
	if n := checkChain(t, db); n != 1 {
		t.Errorf("%d audit records, want 1 (c)", n)
	}
}

// TestGroupCommitSerial: 200 concurrent Updates take CRL numbers and
// append to the audit log; as if run one after the other, the numbers are
// 1 to 200 with none twice and the chain is whole.
func TestGroupCommitSerial(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	const n = 200
	nums := make(chan int64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var got int64
			err := db.Update(ctx, func(tx certportal.Tx) error {
				var err error
				if got, err = tx.NextCRLNumber(ctx, "SOP-ICA1"); err != nil {
					return err
				}
				return tx.AppendAudit(ctx, &certportal.AuditEvent{Time: time.Now(), Actor: "system",
					Action: certportal.ActionCRLSigned, Detail: fmt.Sprint(i)})
			})
			if err != nil {
				t.Errorf("Update %d: %v", i, err)
				return
			}
			nums <- got
		})
	}
	wg.Wait()
	close(nums)
	seen := map[int64]bool{}
	for v := range nums {
		if seen[v] || v < 1 || v > n {
			t.Errorf("CRL number %d handed out twice or out of 1..%d", v, n)
		}
		seen[v] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct CRL numbers, want %d", len(seen), n)
	}
	if got := checkChain(t, db); got != n {
		t.Errorf("%d audit records, want %d", got, n)
	}
}

// TestUpdateCancelledInBegin: while another handle (another process)
// holds the write lock, an Update waits in BEGIN IMMEDIATE; when its ctx
// ends it returns then, not after busy_timeout, and the store's next
// Update works.
func TestUpdateCancelledInBegin(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "locked.db")
	db, err := Open(ctx, path, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	other, err := Open(ctx, path, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	release := make(chan struct{})
	locked := make(chan struct{})
	otherDone := make(chan error, 1)
	go func() {
		otherDone <- other.Update(ctx, func(tx certportal.Tx) error {
			close(locked)
			<-release
			return nil
		})
	}()
	<-locked
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = db.Update(short, member(short, "late", nil))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Update returned %v, want the deadline's error", err)
	}
	if d := time.Since(start); d > busyTimeout/2 {
		t.Errorf("Update returned after %v: BEGIN waited past its ctx", d)
	}
	close(release)
	if err := <-otherDone; err != nil {
		t.Fatal(err)
	}
	if err := db.Update(ctx, member(ctx, "next", nil)); err != nil {
		t.Fatalf("the Update after: %v", err)
	}
	if exists(t, db, "late") || !exists(t, db, "next") {
		t.Error("want the account next and not late")
	}
}
