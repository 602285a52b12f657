package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"sync/atomic"

	"modernc.org/sqlite"

	"github.com/certportal/certportal"
)

// Group commit.
//
// A commit costs one fsync (synchronous=FULL), which on a real disk takes
// about as long as the statements of an issuance (0.2-0.4 ms on the
// benchmarks' virtual disk, docs/BENCHMARKS.md). Concurrent Updates therefore
// share one transaction and its one commit: they take turns (one fn runs
// at a time, in its caller's goroutine, so members see each other's writes
// as if run one after the other), each member inside a savepoint of its
// own so that one that fails is undone alone. At the end of its turn a
// member leaves the transaction open when other Updates wait for the turn
// (they join it), and commits it when none does or the batch is full.
// Every member's Update returns after the commit, with its result: an
// acknowledged change is on disk, as before. A lone Update begins, runs
// and commits at once, the same three steps as without grouping; while a
// batch's fsync runs, the next Updates queue and form the next batch.

// maxBatch bounds the members of one transaction: the first member waits
// for every later one before its commit (some 0.3 ms each for an
// issuance), so 32 bound that wait near 10 ms, while 32 issuances a commit
// already make the fsync a small share of each.
const maxBatch = 32

// writer is the state of the group commit (see above).
type writer struct {
	// turn holds a value while an Update has the turn: sending takes it
	// (blocked senders wait in order), receiving gives it up.
	turn chan struct{}
	// waiting counts the Updates that want the turn; a member leaves the
	// transaction open only while it is not zero, since one of them will
	// end it. Each counted Update takes the turn in the end, itself or
	// through a stand-in (take).
	waiting atomic.Int32
	// open is the transaction left open for the next holder of the turn;
	// only the holder reads or writes it.
	open  *batch
	hooks *writeHooks
}

// batch is one transaction shared by Updates.
type batch struct {
	stx    *sql.Tx
	cancel context.CancelFunc // ends stx's context once it is over
	hooks  *writeHooks
	// rollbacks is hooks.rollbacks when the transaction began: when it
	// moves, SQLite rolled the transaction back.
	rollbacks int64
	local     map[string]*sql.Stmt // statements prepared in it (tx.local)
	bound     map[string]*sql.Stmt // cached statements bound to stx (tx.stmt)
	members   int                  // Updates whose fn succeeded in it
	// tail is the audit chain's last record as this transaction wrote
	// it (AppendAudit), so that an append reads it from here rather than
	// from the table; nil until it is known. The write lock, taken at
	// BEGIN, keeps every other writer out until the batch ends, so only
	// the batch's members move the tail: a member undone is undone here
	// too (memberTail, undo), and a batch lost or rolled back ends with
	// its cache.
	tail *auditTail
	// memberTail is tail as the running member began, what undoing it
	// restores.
	memberTail *auditTail
	lost       error         // why the transaction cannot commit, once known
	done       chan struct{} // closed when err is set
	err        error         // the batch's result: the commit's, or why it was lost
}

// writeHooks counts what SQLite reports through the commit and rollback
// hooks of the writer connection.
type writeHooks struct {
	// commits counts the transactions SQLite committed (tests count
	// batches with it; a statement run outside a transaction counts too).
	commits atomic.Int64
	// rollbacks counts the transactions rolled back, by ROLLBACK or by
	// SQLite itself: after SQLITE_FULL, SQLITE_IOERR, SQLITE_BUSY or
	// SQLITE_NOMEM it may end the transaction, and a statement run then
	// would commit on its own. Rolling back to a savepoint or one
	// statement is not counted.
	rollbacks atomic.Int64
}

// hookConnector opens the writer's connections with the hooks set.
type hookConnector struct {
	driver.Connector
	hooks *writeHooks
}

// Connect opens a connection and sets its hooks; the connection is not
// wrapped, so every interface of the driver's stays visible.
func (c hookConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	h, ok := conn.(interface {
		RegisterCommitHook(sqlite.CommitHookFn)
		RegisterRollbackHook(sqlite.RollbackHookFn)
	})
	if !ok {
		conn.Close()
		return nil, errors.New("the SQLite driver's connection has no commit and rollback hooks")
	}
	h.RegisterCommitHook(func() int32 {
		c.hooks.commits.Add(1)
		return 0 // go on with the commit
	})
	h.RegisterRollbackHook(func() { c.hooks.rollbacks.Add(1) })
	return conn, nil
}

// errLost is the error of the members of a transaction that SQLite rolled
// back by itself: none of its changes were kept.
var errLost = &certportal.Error{Code: certportal.Unavailable, Op: op,
	Message: "the database failed and the change was not saved; try again"}

// check returns why b cannot go on: an error recorded, or a rollback the
// hook saw since BEGIN.
func (b *batch) check() error {
	if b.lost == nil && b.hooks.rollbacks.Load() != b.rollbacks {
		b.lost = errLost
	}
	return b.lost
}

// lose records that b cannot commit, for err.
func (b *batch) lose(err error) {
	if b.lost == nil {
		b.lost = &certportal.Error{Code: certportal.Unavailable, Op: op, Err: err, Message: errLost.Message}
	}
}

// Update runs fn in a write transaction and commits when fn returns nil.
// Updates are serialised: one fn runs at a time, and sees what the fns
// before it wrote. Concurrent Updates share one transaction and its commit
// (group commit, above); each returns after that commit, with the commit's
// error if it fails. If fn returns an error or panics, nothing it wrote is
// kept and the other members go on; a panic is passed on after that. A
// failed fn that ran after other members returns its error once their
// commit is done, or the commit's error if that failed: fn may have
// decided on their writes.
//
// fn must not call Update on the same store (it holds the turn: it would
// wait for itself), and a View inside fn does not see fn's writes. Nor may
// fn wait for anything another Update's caller holds: that caller may be
// waiting for the commit that waits for fn. ctx is checked before each of
// fn's statements rather than interrupting one, since an interrupted write
// rolls back the whole transaction, every member's (SQLite docs,
// sqlite3_interrupt), and once more after fn: an Update whose ctx has
// ended then is undone, as a transaction whose context ends before its
// commit is. An Update whose ctx ends while it waits for its turn returns
// at once.
//
// A commit waits for the fns of the batch's later members: a long fn (an
// import of many accounts) delays the Updates that happened to go before
// it in its batch by its length, where alone they would have committed
// first.
func (db *DB) Update(ctx context.Context, fn func(certportal.Tx) error) error {
	if db.closed.Load() {
		return errClosed
	}
	if err := ctx.Err(); err != nil {
		return mapError(err, "", "")
	}
	w := &db.w
	if !db.take(ctx) {
		return mapError(ctx.Err(), "", "")
	}
	if err := ctx.Err(); err != nil {
		// Ended as the turn came: the turn's duty is done all the same.
		db.settle()
		<-w.turn
		return mapError(err, "", "")
	}
	b := w.open
	if b == nil {
		var err error
		if b, err = db.begin(ctx); err != nil {
			<-w.turn
			return err
		}
	}
	// The first member needs no savepoint: undoing it is rolling the
	// transaction back.
	nested := b.members > 0
	if nested {
		if _, err := b.stx.ExecContext(context.Background(), "SAVEPOINT m"); err != nil {
			b.lose(err)
			db.settle()
			<-w.turn
			<-b.done
			return b.err
		}
	}
	b.memberTail = b.tail
	t := &tx{tx: b.stx, stmts: &db.writeStmts, local: b.local, b: b, run: context.WithoutCancel(ctx)}
	finished := false
	defer func() {
		if !finished {
			// fn panicked (or called runtime.Goexit): undo it and end
			// the turn, so the batch is not left waiting; the panic
			// goes on.
			t.ended.Store(true)
			db.undo(b, nested)
			db.settle()
			<-w.turn
		}
	}()
	ferr := fn(t)
	if ferr == nil {
		ferr = mapError(ctx.Err(), "", "") // ended meanwhile: not committed
	}
	t.ended.Store(true)
	finished = true
	if ferr == nil && nested && b.check() == nil {
		if _, err := b.stx.ExecContext(context.Background(), "RELEASE m"); err != nil {
			b.lose(err)
		}
	}
	joined := ferr == nil && b.check() == nil
	if joined {
		b.members++
	} else {
		db.undo(b, nested)
	}
	db.settle()
	<-w.turn
	if joined {
		<-b.done
		return b.err
	}
	if nested {
		// fn may have decided on the writes of the members before it:
		// if those were not kept, its answer is void too.
		<-b.done
		if b.err != nil {
			return b.err
		}
	}
	if ferr == nil {
		ferr = b.lost
	}
	return ferr
}

// take waits for the turn and reports whether it got it before ctx ended.
// An Update counted in waiting may be what a finished member left the
// transaction open for, so one that gives up sends a stand-in, which waits
// for the turn in its place, ends or passes on the transaction as any
// holder does (settle), and leaves.
func (db *DB) take(ctx context.Context) bool {
	w := &db.w
	w.waiting.Add(1)
	select {
	case w.turn <- struct{}{}:
		w.waiting.Add(-1)
		return true
	case <-ctx.Done():
		go func() {
			w.turn <- struct{}{}
			w.waiting.Add(-1)
			db.settle()
			<-w.turn
		}()
		return false
	}
}

// begin starts a transaction (BEGIN IMMEDIATE, which may wait busy_timeout
// for another process's write lock) and makes it the open one. database/sql
// rolls a transaction back when the context of its BeginTx ends, which
// would undo the other members' writes, so the context given is not the
// caller's: it ends with the caller's only while BEGIN runs.
//
// A ctx that cannot end gives way to context.Background itself: the driver
// watches a context that can end with a goroutine for each BEGIN and
// COMMIT, which costs a lone Update on tmpfs some 40 us.
func (db *DB) begin(ctx context.Context) (*batch, error) {
	bctx, cancel := context.Background(), context.CancelFunc(func() {})
	stop := func() bool { return true }
	if ctx.Done() != nil {
		bctx, cancel = context.WithCancel(context.Background())
		stop = context.AfterFunc(ctx, cancel)
	}
	rollbacks := db.w.hooks.rollbacks.Load()
	stx, err := db.write.BeginTx(bctx, nil)
	if !stop() {
		// ctx ended during BEGIN: database/sql rolls back what began.
		err = errors.Join(ctx.Err(), err)
	}
	if err != nil {
		cancel()
		if stx != nil {
			stx.Rollback()
		}
		return nil, mapError(err, "", "")
	}
	b := &batch{stx: stx, cancel: cancel, hooks: db.w.hooks, rollbacks: rollbacks,
		local: map[string]*sql.Stmt{}, bound: map[string]*sql.Stmt{}, done: make(chan struct{})}
	db.w.open = b
	return b, nil
}

// undo removes the writes of the member that ran last, which did not
// succeed: the transaction for the first member, its savepoint for a later
// one. When that fails the batch is lost (settle rolls it all back).
func (db *DB) undo(b *batch, nested bool) {
	if !nested {
		b.stx.Rollback()
		db.end(b, nil)
		return
	}
	// The member's audit records are gone: so is the tail it cached.
	b.tail = b.memberTail
	if b.check() != nil {
		return
	}
	_, err := b.stx.ExecContext(context.Background(), "ROLLBACK TO m")
	if err == nil {
		_, err = b.stx.ExecContext(context.Background(), "RELEASE m")
	}
	if err != nil {
		b.lose(err)
	}
}

// settle is the last step of every turn: it rolls back a lost
// transaction, leaves a healthy one open while Updates wait for the turn
// and the batch has room, and else commits it and hands every member the
// result.
func (db *DB) settle() {
	w := &db.w
	b := w.open
	if b == nil {
		return
	}
	if b.check() != nil {
		b.stx.Rollback()
		db.end(b, b.lost)
		return
	}
	if w.waiting.Load() > 0 && b.members < maxBatch {
		return
	}
	err := b.stx.Commit()
	db.end(b, mapError(err, "", "the change conflicts with the data in the database"))
}

// end closes the open transaction b (committed or rolled back already)
// with the result err, then prepares for the next transactions the
// statements b had to prepare for itself: the writer connection is free.
func (db *DB) end(b *batch, err error) {
	db.w.open = nil
	b.cancel()
	b.err = err
	close(b.done)
	(&tx{stmts: &db.writeStmts, local: b.local}).fillCache(context.Background())
}
