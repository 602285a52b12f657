package portal

import (
	"context"
	"runtime"
	"sync"

	"github.com/certportal/certportal"
)

// batcher lets concurrent requests share database reads without ever
// answering from a stale one: a read serves only the requests that arrived
// before it started. Up to batchReaders reads run at once, as many as there
// are cores: a request that finds fewer running starts one for itself at
// once (no wait, and reads in parallel, when the portal is not saturated);
// one that arrives while all are running joins the next read, which starts
// when a running one ends, with the keys of every request that joined it.
// So each request's answer comes from a statement that began after the
// request arrived, and sees every revocation committed before it arrived —
// on this replica, in another process or on another replica — exactly as a
// read of its own would, at the cost of one statement per batch instead of
// one per request.
//
// The zero value is ready to use. V is what one key reads to; keys absent
// from a read's result were not found.
type batcher[V any] struct {
	limit   int // reads at once; 0 means batchReaders
	mu      sync.Mutex
	running int       // reads running
	next    *batch[V] // the batch that starts when a running read ends
}

// batchReaders is how many reads a batcher runs at once when the store
// reads on this machine's CPU (sqlite): one per core; fewer would leave
// cores idle while requests wait.
var batchReaders = max(2, runtime.GOMAXPROCS(0))

// readsAtOnce is the batchers' limit for store. A store that keeps a cache
// (certportal.CachedStore: sqlite) reads on this machine's CPU, one read
// per core. One that reads over the network (postgres) mostly waits for
// the round trip: one statement in flight, and every request that arrives
// meanwhile joins the next. Fewer, larger statements are what saves the
// database server's CPU — about 30 µs per statement, as much as the rest
// of a kept-alive request — and that CPU is shared with the portal when
// both run on one machine.
func readsAtOnce(store certportal.Store) int {
	if _, ok := store.(certportal.CachedStore); ok {
		return batchReaders
	}
	return 1
}

// batch is one read and the requests that wait for it.
type batch[V any] struct {
	keys []string
	seen map[string]bool
	done chan struct{} // closed when got and err are set
	got  map[string]V
	err  error
}

// read is the per-request read of key through b: the store's own cache
// when it keeps one and can vouch for the row (certportal.CachedStore;
// cached picks Lookup's or Statuses' side of it), else a read shared with
// the requests that arrived meanwhile, readsAtOnce(store) at a time.
func read[V any](ctx context.Context, store certportal.Store, b *batcher[V], key string,
	cached func(certportal.CachedStore, string) (V, bool), fetch readFunc[V]) (V, bool, error) {
	if cs, ok := store.(certportal.CachedStore); ok {
		if v, hit := cached(cs, key); hit {
			return v, true, nil
		}
	}
	return b.get(ctx, key, readsAtOnce(store), fetch)
}

// readFunc reads the values of keys in one statement.
type readFunc[V any] func(ctx context.Context, keys []string) (map[string]V, error)

// get returns the value of key (ok false when the read did not find it)
// from a read that started after get was called. limit is how many reads
// may run at once (readsAtOnce); the batcher's own limit, when set, wins.
func (b *batcher[V]) get(ctx context.Context, key string, limit int, read readFunc[V]) (v V, ok bool, err error) {
	b.mu.Lock()
	if b.next == nil {
		b.next = &batch[V]{seen: map[string]bool{}, done: make(chan struct{})}
	}
	bt := b.next
	if !bt.seen[key] {
		bt.seen[key] = true
		bt.keys = append(bt.keys, key)
	}
	if b.limit != 0 {
		limit = b.limit
	}
	if limit <= 0 {
		limit = batchReaders
	}
	lead := b.running < limit
	if lead {
		b.running++
		if limit > 1 {
			b.next = nil
		}
	}
	b.mu.Unlock()
	if lead && limit == 1 {
		// One statement at a time, over the network: before taking the
		// batch, let the goroutines that are ready to run (requests on
		// their way here, when the portal is busy) join it. When nothing
		// else is runnable this returns at once; when much is, the
		// statement waits for CPU time that those requests take anyway,
		// and serves them too. Every key in it still arrived before the
		// read starts.
		runtime.Gosched()
		b.mu.Lock()
		bt = b.next
		b.next = nil
		b.mu.Unlock()
	}
	if lead {
		// The read serves other requests too: one that goes away must
		// not cancel it for the rest.
		b.run(context.WithoutCancel(ctx), bt, read)
	} else {
		select {
		case <-bt.done:
		case <-ctx.Done():
			return v, false, ctx.Err()
		}
	}
	if bt.err != nil {
		return v, false, bt.err
	}
	v, ok = bt.got[key]
	return v, ok, nil
}

// run reads bt, then starts the batch that gathered meanwhile, if any, in
// this read's place among the batchReaders and on a goroutine of its own,
// so this request is answered without waiting for that read too. A read that panics still ends its batch (with an error)
// and hands over to the next, so no request waits for it forever.
func (b *batcher[V]) run(ctx context.Context, bt *batch[V], read readFunc[V]) {
	finished := false
	defer func() {
		if !finished {
			bt.err = errReadPanicked
		}
		close(bt.done)
		b.mu.Lock()
		next := b.next
		b.next = nil
		if next == nil {
			b.running--
		}
		b.mu.Unlock()
		if next != nil {
			// Not the request's context: the next batch is not its read.
			go b.run(context.Background(), next, read)
		}
	}()
	bt.got, bt.err = read(ctx, bt.keys)
	finished = true
}

var errReadPanicked = &certportal.Error{Code: certportal.Internal, Op: "portal", Message: "the database read failed unexpectedly"}
