package portal

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/sqlite"
)

// fakeReads is a readFunc whose reads block until released, and which
// answers every key with the "database state" (a version) at the moment
// the read started.
type fakeReads struct {
	state   atomic.Int64
	mu      sync.Mutex
	calls   [][]string
	started chan struct{}
	release chan struct{}
}

func newFakeReads() *fakeReads {
	return &fakeReads{started: make(chan struct{}, 100), release: make(chan struct{}, 100)}
}

func (f *fakeReads) read(ctx context.Context, keys []string) (map[string]int64, error) {
	v := f.state.Load()
	f.mu.Lock()
	f.calls = append(f.calls, slices.Clone(keys))
	f.mu.Unlock()
	f.started <- struct{}{}
	<-f.release
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	out := map[string]int64{}
	for _, k := range keys {
		if k != "unknown" {
			out[k] = v
		}
	}
	return out, nil
}

// TestBatcherNeverAnswersFromAReadThatStartedEarlier: a request that
// arrives while a read is running (after a "commit" that read cannot see)
// gets the state of a later read, shared with the others that arrived
// meanwhile, each key read once.
func TestBatcherNeverAnswersFromAReadThatStartedEarlier(t *testing.T) {
	b := batcher[int64]{limit: 3}
	f := newFakeReads()
	ctx := context.Background()
	first := make(chan int64, b.limit)
	for range b.limit {
		go func() {
			v, _, _ := b.get(ctx, "a", 0, f.read)
			first <- v
		}()
		<-f.started // reads 1 to limit run at once, with state 0
	}
	f.state.Store(1)
	type answer struct {
		key string
		v   int64
		ok  bool
		err error
	}
	answers := make(chan answer, 5)
	for _, k := range []string{"a", "b", "a", "unknown", "c"} {
		go func() {
			v, ok, err := b.get(ctx, k, 0, f.read)
			answers <- answer{k, v, ok, err}
		}()
	}
	// All five join the batch waiting for a running read to end.
	time.Sleep(50 * time.Millisecond)
	for range b.limit {
		f.release <- struct{}{}
		if v := <-first; v != 0 {
			t.Errorf("a first request got state %d, want 0 (its own read)", v)
		}
	}
	<-f.started
	f.release <- struct{}{}
	for range 5 {
		a := <-answers
		switch {
		case a.err != nil:
			t.Errorf("%s: %v", a.key, a.err)
		case a.key == "unknown" && a.ok:
			t.Errorf("an unknown key was found")
		case a.key != "unknown" && (!a.ok || a.v != 1):
			t.Errorf("%s got state %d (found %v), want 1: a read that started before the request arrived answered it", a.key, a.v, a.ok)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) != b.limit+1 {
		t.Fatalf("%d reads, want %d: %v", len(f.calls), b.limit+1, f.calls)
	}
	got := slices.Clone(f.calls[b.limit])
	slices.Sort(got)
	if !slices.Equal(got, []string{"a", "b", "c", "unknown"}) {
		t.Errorf("the last read had keys %v, want a, b, c, unknown once each", f.calls[b.limit])
	}
}

// TestBatcherReadsInParallel: up to its limit, requests that arrive while
// reads run start reads of their own at once; the next one waits. The
// default limit is one read per core.
func TestBatcherReadsInParallel(t *testing.T) {
	if batchReaders != max(2, runtime.GOMAXPROCS(0)) {
		t.Errorf("batchReaders = %d, want one per core (at least 2)", batchReaders)
	}
	b := batcher[int64]{limit: 2}
	f := newFakeReads()
	done := make(chan struct{}, 3)
	for _, k := range []string{"a", "b", "c"} {
		go func() {
			b.get(context.Background(), k, 0, f.read)
			done <- struct{}{}
		}()
	}
	<-f.started
	<-f.started // two reads run at once, neither released
	select {
	case <-f.started:
		t.Fatal("a third read started while two ran, with a limit of 2")
	case <-time.After(50 * time.Millisecond):
	}
	for range 3 {
		f.release <- struct{}{}
	}
	for range 3 {
		<-done
	}
	if len(f.calls) != 3 {
		t.Errorf("%d reads, want 3: %v", len(f.calls), f.calls)
	}
}

// TestBatcherQuietReadsAtOnce: with nothing running, each request reads
// at once, on its own.
func TestBatcherQuietReadsAtOnce(t *testing.T) {
	var b batcher[int64]
	f := newFakeReads()
	for i := range 3 {
		f.state.Store(int64(i))
		f.release <- struct{}{}
		v, ok, err := b.get(context.Background(), "k", 0, f.read)
		<-f.started
		if err != nil || !ok || v != int64(i) {
			t.Fatalf("request %d: %d, %v, %v; want %d", i, v, ok, err, i)
		}
	}
	if len(f.calls) != 3 {
		t.Errorf("%d reads for 3 requests one after another, want 3", len(f.calls))
	}
}

// TestBatcherCancelledRequest: a request that goes away stops waiting,
// and its going away does not cancel the read the others share.
func TestBatcherCancelledRequest(t *testing.T) {
	b := batcher[int64]{limit: 1}
	f := newFakeReads()
	ctx, cancel := context.WithCancel(context.Background())
	leader := make(chan error)
	go func() {
		_, _, err := b.get(ctx, "a", 0, f.read)
		leader <- err
	}()
	<-f.started
	follower := make(chan error)
	fctx, fcancel := context.WithCancel(context.Background())
	go func() {
		_, _, err := b.get(fctx, "b", 0, f.read)
		follower <- err
	}()
	time.Sleep(20 * time.Millisecond)
	fcancel()
	if err := <-follower; !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled waiting request got %v, want context.Canceled", err)
	}
	cancel()
	f.release <- struct{}{}
	if err := <-leader; err != nil {
		t.Errorf("the read was cancelled with its first request: %v", err)
	}
	<-f.started // the follower's batch still runs, and ends
	f.release <- struct{}{}
	f.release <- struct{}{}
	v, ok, err := b.get(context.Background(), "c", 0, f.read)
	if err != nil || !ok || v != 0 {
		t.Errorf("after the cancellations: %d, %v, %v", v, ok, err)
	}
}

// TestBatcherReadPanics: a read that panics ends its batch with an error,
// and the batcher goes on reading.
func TestBatcherReadPanics(t *testing.T) {
	var b batcher[int64]
	func() {
		defer func() { recover() }()
		b.get(context.Background(), "a", 0, func(context.Context, []string) (map[string]int64, error) { panic("boom") })
	}()
	done := make(chan error, 1)
	go func() {
		_, ok, err := b.get(context.Background(), "a", 0, func(context.Context, []string) (map[string]int64, error) {
			return map[string]int64{"a": 7}, nil
		})
		if err == nil && !ok {
			err = errors.New("not found")
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the batcher hangs after a read panicked")
	}
}

// TestReadsAtOnce: a store that reads on this machine's CPU (one with its
// own cache, sqlite) gets one read per core; one that reads over the
// network gets one statement in flight, which the requests arriving
// meanwhile join.
func TestReadsAtOnce(t *testing.T) {
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db.sqlite"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n := readsAtOnce(db); n != batchReaders {
		t.Errorf("sqlite: %d reads at once, want %d (one per core)", n, batchReaders)
	}
	networked := struct{ certportal.Store }{db} // no cache of its own, as postgres
	if n := readsAtOnce(networked); n != 1 {
		t.Errorf("a store without a cache: %d reads at once, want 1", n)
	}
	b := batcher[int64]{}
	f := newFakeReads()
	done := make(chan struct{}, 2)
	get := func(k string) {
		b.get(context.Background(), k, readsAtOnce(networked), f.read)
		done <- struct{}{}
	}
	go get("a")
	<-f.started // a's read runs
	go get("b")
	select {
	case <-f.started:
		t.Fatal("a second read started while one ran, with one read at a time")
	case <-time.After(50 * time.Millisecond):
	}
	f.release <- struct{}{}
	<-f.started // b's, after a's ended
	f.release <- struct{}{}
	<-done
	<-done
}
