//go:build linux

package sqlite

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/storetest"
)

// lookupOnce makes the store's cache read the database once, which maps
// the wal-index.
func lookupOnce(t *testing.T, db *DB) {
	t.Helper()
	if _, err := db.Lookup(context.Background(), []string{"00"}); err != nil {
		t.Fatal(err)
	}
}

// TestWALIndexHeaderMovesWithEveryCommit: the wal-index header the cache
// compares is the same while nothing commits and different after every
// commit, through a checkpoint that restarts the WAL too.
func TestWALIndexHeaderMovesWithEveryCommit(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	lookupOnce(t, db)
	w := db.cache.wal
	if w == nil || w.bad.Load() {
		t.Fatalf("the wal-index is not mapped (%+v): the cache would pay a read transaction per call", w)
	}
	read := func() walHeader {
		t.Helper()
		h, ok := w.header()
		if !ok {
			t.Fatal("the wal-index header cannot be read while nothing writes")
		}
		return h
	}
	seen := map[walHeader]int{}
	h := read()
	seen[h] = 0
	if again := read(); again != h {
		t.Fatal("the header changed with no commit")
	}
	now := time.Now().UTC()
	for i := 1; i <= 60; i++ {
		err := db.Update(ctx, func(tx certportal.Tx) error {
			id := fmt.Sprintf("user%d", i)
			return tx.CreateAccount(ctx, &certportal.Account{ID: id, Email: id + "@example.com",
				Method: certportal.MethodPassword, Status: certportal.StatusActive, Created: now, Updated: now})
		})
		if err != nil {
			t.Fatal(err)
		}
		if i == 30 {
			// A checkpoint lets the next commit start the WAL over from
			// its first frame: the header must still differ.
			if _, err := db.write.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
				t.Fatal(err)
			}
		}
		h := read()
		if j, ok := seen[h]; ok {
			t.Fatalf("after commit %d the header is the one seen after commit %d", i, j)
		}
		seen[h] = i
	}
}

// TestLookupWithoutWALIndex: where the wal-index cannot be read, the cache
// falls back to data_version and still sees another store's commit.
func TestLookupWithoutWALIndex(t *testing.T) {
	dbs := openPair(t)
	lookupOnce(t, dbs[0])
	lookupOnce(t, dbs[1])
	if dbs[0].cache.wal != dbs[1].cache.wal {
		t.Fatal("two stores on one file mapped its wal-index twice")
	}
	dbs[0].cache.wal.bad.Store(true)
	storetest.LookupSeesOtherStore(t, dbs[0], dbs[1])
}

// TestWALIndexKeepsSQLitesLocks: the wal-index is opened once per file
// and closed only with the last store. Closing a descriptor of a file
// drops every POSIX lock the process holds on it, SQLite's included: if
// closing one store closed the file while another store of the process
// had it open, that store's locks on it (seen in /proc/locks) would go.
func TestWALIndexKeepsSQLitesLocks(t *testing.T) {
	dbs := openPair(t)
	a, b, path := dbs[0], dbs[1], dbs[0].path
	lookupOnce(t, a)
	lookupOnce(t, b)
	w := a.cache.wal
	if w == nil || w != b.cache.wal || w.refs != 2 {
		t.Fatalf("the wal-index is not shared by the two stores: %p %p", a.cache.wal, b.cache.wal)
	}
	locks := func() int {
		t.Helper()
		fi, err := os.Stat(path + "-shm")
		if err != nil {
			t.Fatal(err)
		}
		ino := strconv.FormatUint(fi.Sys().(*syscall.Stat_t).Ino, 10)
		raw, err := os.ReadFile("/proc/locks")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, line := range strings.Split(string(raw), "\n") {
			// 1: POSIX  ADVISORY  READ 1234 08:01:5678 128 128
			f := strings.Fields(line)
			if len(f) >= 8 && f[1] == "POSIX" && f[4] == strconv.Itoa(os.Getpid()) && strings.HasSuffix(f[5], ":"+ino) {
				n++
			}
		}
		return n
	}
	if locks() == 0 {
		t.Fatal("no POSIX lock of this process on the wal-index: the test cannot see what it checks")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if n := locks(); n == 0 {
		t.Fatal("closing one store dropped the other store's SQLite locks on the wal-index")
	}
	if w.refs != 1 || w.bad.Load() {
		t.Fatalf("after one store closed, the wal-index has %d users, unreadable %v", w.refs, w.bad.Load())
	}
	if _, ok := w.header(); !ok {
		t.Fatal("the remaining store cannot read the wal-index")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	walIndexes.mu.Lock()
	_, still := walIndexes.m[w.id]
	walIndexes.mu.Unlock()
	if still || !w.bad.Load() {
		t.Fatal("the last store closed but the wal-index is still open")
	}
}

// TestCachedLookupHitsAndMisses: once read, a certificate is answered from
// the cache without a read (CachedLookup, CachedStatus) until anything
// commits; then the cache misses until the next read.
func TestCachedLookupHitsAndMisses(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	now := time.Now().UTC()
	c := storetest.NewCert("ann", "SOP-ICA1", now)
	create := func(id string, cert *certportal.Certificate) {
		t.Helper()
		err := db.Update(ctx, func(tx certportal.Tx) error {
			if err := tx.CreateAccount(ctx, &certportal.Account{ID: id, Email: id + "@example.com", Method: certportal.MethodCertificate,
				Status: certportal.StatusActive, Created: now, Updated: now}); err != nil {
				return err
			}
			if cert == nil {
				return nil
			}
			return tx.InsertCertificate(ctx, cert)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	create("ann", c)
	fp, serial := strings.ToUpper(c.SHA256), strings.ToUpper(c.Serial)
	if _, hit := db.CachedLookup(fp); hit {
		t.Fatal("CachedLookup answered before anything was read")
	}
	if _, err := db.Lookup(ctx, []string{fp}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Statuses(ctx, []string{serial}); err != nil {
		t.Fatal(err)
	}
	f, hit := db.CachedLookup(fp)
	st, hit2 := db.CachedStatus(serial)
	if !hit || !hit2 || f.Cert.SHA256 != c.SHA256 || f.Account.ID != "ann" || st.Serial != c.Serial {
		t.Fatalf("after a read the cache does not answer: %v %+v, %v %+v", hit, f, hit2, st)
	}
	f.Account.Status = certportal.StatusCancelled // the caller's copy
	if again, _ := db.CachedLookup(fp); again.Account.Status != certportal.StatusActive {
		t.Fatal("changing an answer changed the cache")
	}
	create("bob", nil) // any commit, even one that does not touch ann
	if _, hit := db.CachedLookup(fp); hit {
		t.Fatal("CachedLookup answered after a commit")
	}
	if _, hit := db.CachedStatus(serial); hit {
		t.Fatal("CachedStatus answered after a commit")
	}
}
