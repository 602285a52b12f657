package sqlite

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/storetest"
)

// TestLookupCacheBound: the cache holds at most lookupCacheMax
// certificates; the one that would go past it starts the map over. A
// cached answer and a fresh one are the same.
func TestLookupCacheBound(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	now := time.Now().UTC()
	var fps []string
	err := db.Update(ctx, func(tx certportal.Tx) error {
		for _, id := range []string{"ann", "bob"} {
			acc := &certportal.Account{ID: id, Email: id + "@example.com", Method: certportal.MethodCertificate,
				Status: certportal.StatusActive, Created: now, Updated: now}
			if err := tx.CreateAccount(ctx, acc); err != nil {
				return err
			}
			c := storetest.NewCert(id, "SOP-ICA1", now)
			if err := tx.InsertCertificate(ctx, c); err != nil {
				return err
			}
			fps = append(fps, c.SHA256)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c := &db.cache
	lookup := func(fp string) {
		t.Helper()
		got, err := db.Lookup(ctx, []string{fp})
		if err != nil || got[fp].Cert == nil || got[fp].Cert.SHA256 != fp || got[fp].Account.ID != got[fp].Cert.AccountID {
			t.Fatalf("Lookup(%s) = %+v, %v", fp, got, err)
		}
	}
	lookup(fps[0])
	// Fill the map to one short of the bound with entries for other
	// fingerprints; the next read fills it exactly.
	c.mu.Lock()
	for i := len(c.bySHA); i < lookupCacheMax-1; i++ {
		c.bySHA[fmt.Sprintf("FILL%060d", i)] = c.bySHA[fps[0]]
	}
	c.mu.Unlock()
	lookup(fps[1])
	if n := len(c.bySHA); n != lookupCacheMax {
		t.Fatalf("after reading up to the bound the cache holds %d, want %d", n, lookupCacheMax)
	}
	// fps[0] out, another in: still full, and fps[0] is not cached.
	c.mu.Lock()
	c.bySHA["FILL-LAST"] = c.bySHA[fps[0]]
	delete(c.bySHA, fps[0])
	c.mu.Unlock()
	lookup(fps[0]) // read anew: the map is full, so it starts over
	if n := len(c.bySHA); n != 1 {
		t.Fatalf("past the bound the cache holds %d, want 1 (started over)", n)
	}
	lookup(fps[0]) // now from the cache
	if n := len(c.bySHA); n != 1 {
		t.Fatalf("a cached answer changed the cache to %d entries", n)
	}
}
