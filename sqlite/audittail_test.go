package sqlite

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/certportal/certportal"
)

// appendN appends n audit records for id.
func appendN(ctx context.Context, tx certportal.Tx, id string, n int) error {
	for i := range n {
		if err := tx.AppendAudit(ctx, &certportal.AuditEvent{Time: time.Now(), Actor: "admin", AccountID: id,
			Action: certportal.ActionCertIssued, Detail: fmt.Sprintf("record %d", i), Remote: "test"}); err != nil {
			return err
		}
	}
	return nil
}

// TestAuditTailUndo: in one batch, members append several records each
// (an issuance appends three) and some are undone after appending: one
// fails, one panics, one's ctx ends after its fn. The batch keeps the
// chain's last record for the next append (batch.tail); undoing a member
// must take the cached tail back to where that member began, not one
// record back nor to the undone records, so the chain goes on from the
// last kept record without a gap. Then one store more, on the same file
// as another process would be, appends in transactions of its own between
// this store's batches: each batch reads the tail afresh.
func TestAuditTailUndo(t *testing.T) {
	dbs := openPair(t)
	db := dbs[0]
	ctx := context.Background()
	release := make(chan struct{})
	first := gate(t, db, "first", release)
	errStop := errors.New("stop")
	cctx, cancel := context.WithCancel(ctx)
	type step struct {
		ctx context.Context
		fn  func(certportal.Tx) error
	}
	steps := []step{
		{ctx, func(tx certportal.Tx) error { return appendN(ctx, tx, "a", 3) }},
		{ctx, func(tx certportal.Tx) error {
			if err := appendN(ctx, tx, "b", 3); err != nil {
				return err
			}
			return errStop
		}},
		{ctx, func(tx certportal.Tx) error {
			if err := appendN(ctx, tx, "c", 2); err != nil {
				return err
			}
			panic("boom")
		}},
		{cctx, func(tx certportal.Tx) error {
			if err := appendN(cctx, tx, "d", 2); err != nil {
				return err
			}
			cancel() // ended after the fn's writes: the member is undone
			return nil
		}},
		{ctx, func(tx certportal.Tx) error { return appendN(ctx, tx, "e", 3) }},
	}
	results := make([]chan error, len(steps))
	for i, s := range steps {
		results[i] = make(chan error, 1)
		go func() {
			defer func() {
				if r := recover(); r != nil {
					results[i] <- fmt.Errorf("panic: %v", r)
				}
			}()
			results[i] <- db.Update(s.ctx, s.fn)
		}()
		waitQueued(t, db, int32(i+1))
	}
	before := db.w.hooks.commits.Load()
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("first: %v", err)
	}
	errs := make([]error, len(results))
	for i, ch := range results {
		errs[i] = <-ch
	}
	if errs[0] != nil || errs[4] != nil {
		t.Errorf("a: %v, e: %v; want both committed", errs[0], errs[4])
	}
	if !errors.Is(errs[1], errStop) {
		t.Errorf("b returned %v, want its own error", errs[1])
	}
	if errs[2] == nil || errs[2].Error() != "panic: boom" {
		t.Errorf("c returned %v, want its panic passed on", errs[2])
	}
	if !errors.Is(errs[3], context.Canceled) {
		t.Errorf("d returned %v, want context.Canceled", errs[3])
	}
	if n := db.w.hooks.commits.Load() - before; n != 1 {
		t.Errorf("%d commits, want 1: the members were not in one batch", n)
	}
	// first's own record, a's three and e's three.
	if n := checkChain(t, db); n != 7 {
		t.Errorf("%d audit records, want 7", n)
	}

	// Another store on the file appends between this store's batches.
	for i := range 3 {
		if err := dbs[1].Update(ctx, func(tx certportal.Tx) error { return appendN(ctx, tx, "other", 1) }); err != nil {
			t.Fatalf("other store: %v", err)
		}
		if err := db.Update(ctx, func(tx certportal.Tx) error { return appendN(ctx, tx, "f", 2) }); err != nil {
			t.Fatalf("Update %d after the other store's: %v", i, err)
		}
	}
	if n := checkChain(t, db); n != 7+3*3 {
		t.Errorf("%d audit records, want %d", n, 7+3*3)
	}
}
