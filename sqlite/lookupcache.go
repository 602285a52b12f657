package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"sync"

	"github.com/certportal/certportal"
)

// lookupCache keeps what Lookup and Statuses read, valid only while the
// database has not changed since. Every call first asks whether any
// connection — this process's writer, or `certportal cert revoke` in
// another process — has committed since the last call, and the cache
// answers only for the version that this call found. A revocation committed
// before the call is therefore always seen: either the version moved and
// the certificate is read anew, or nothing committed and the cached row is
// what a read would return.
//
// The question is put to the wal-index header in shared memory
// (walindex.go: two 48-byte loads, well under a microsecond), or, where
// that cannot be read, to PRAGMA data_version on a connection of its own
// that never writes (query_only: a connection's own commits do not change
// its data_version), which costs a read transaction (about 8 µs).
//
// The version is read before the rows it validates, so a row read after a
// commit that the version read missed is filed under the older version,
// which the next call finds changed.
type lookupCache struct {
	vdb  *sql.DB   // one read-only connection, for data_version only
	path string    // the database file, whose wal-index is read
	wal  *walIndex // nil until mapped (after conn first read the database)

	mu       sync.Mutex
	conn     *sql.Conn // the connection whose data_version is compared
	stmt     *sql.Stmt // PRAGMA data_version on conn
	seen     int64     // the last data_version read
	hdr      walHeader // the last wal-index header read
	version  int64     // the maps' version: goes up with every change seen
	valid    bool      // the maps hold what was read since the last change
	bySHA    map[string]certportal.Found
	bySerial map[string]*certportal.Certificate
}

// lookupCacheMax bounds each map: a few hundred bytes an entry, some MiB
// in all; when full it starts over.
const lookupCacheMax = 1 << 14

// current returns the version of the database as of now: the same as the
// last call's when nothing has committed since, else a new one, and the
// maps are emptied. A failed read empties them too and drops the
// connection, since a new connection's data_version cannot be compared
// with the old one's.
func (c *lookupCache) current(ctx context.Context) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wal != nil {
		h, ok := c.wal.header()
		for i := 0; !ok && i < 100 && !c.wal.bad.Load(); i++ {
			h, ok = c.wal.header() // a commit is writing it: nanoseconds
		}
		if ok {
			if !c.valid || h != c.hdr {
				c.changedLocked()
				c.hdr = h
			}
			return c.version, nil
		}
		if !c.wal.bad.Load() {
			// Still being written: count it as a change and keep nothing
			// read under it (valid false), so the next call starts over.
			c.changedLocked()
			c.valid = false
			return c.version, nil
		}
		// Unreadable: PRAGMA data_version from now on.
	}
	var err error
	if c.conn == nil {
		if c.conn, err = c.vdb.Conn(ctx); err == nil {
			if c.stmt, err = c.conn.PrepareContext(ctx, "PRAGMA data_version"); err != nil {
				c.conn.Close()
				c.conn = nil
			}
		}
	}
	var v int64
	if err == nil {
		err = c.stmt.QueryRowContext(ctx).Scan(&v)
	}
	if err != nil {
		c.resetLocked()
		return 0, mapError(err, "", "")
	}
	if c.wal == nil && c.path != "" {
		// conn has the database open in WAL mode now: map its wal-index
		// for the next calls. When that fails, data_version it stays.
		if w, werr := openWALIndex(c.path); werr == nil {
			c.wal = w
		} else {
			c.path = ""
		}
	}
	if !c.valid || v != c.seen {
		c.changedLocked()
		c.seen = v
	}
	if c.wal != nil {
		// The next calls compare the header with this one, read after
		// data_version and before the rows filed under this version.
		var ok bool
		if c.hdr, ok = c.wal.header(); !ok {
			c.valid = false
		}
	}
	return c.version, nil
}

// changedLocked starts a new version with empty maps.
func (c *lookupCache) changedLocked() {
	c.bySHA, c.bySerial = map[string]certportal.Found{}, map[string]*certportal.Certificate{}
	c.version++
	c.valid = true
}

// resetLocked forgets everything, connection included.
func (c *lookupCache) resetLocked() {
	if c.conn != nil {
		c.stmt.Close()
		c.conn.Close()
	}
	c.conn, c.stmt, c.valid = nil, nil, false
	c.bySHA, c.bySerial = nil, nil
}

// close closes the cache's connection. The wal-index stays mapped until
// releaseWAL, which the store calls after closing all its connections.
func (c *lookupCache) close() {
	c.mu.Lock()
	c.resetLocked()
	c.mu.Unlock()
	c.vdb.Close()
}

func (c *lookupCache) releaseWAL() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wal != nil {
		c.wal.release()
		c.wal = nil
	}
}

// CachedLookup is certportal.CachedStore's: the cached row of fp, when
// nothing has committed since it was read.
func (db *DB) CachedLookup(fp string) (certportal.Found, bool) {
	return cachedHit(db, fp, func(c *lookupCache) map[string]certportal.Found { return c.bySHA }, cloneFound)
}

// CachedStatus is CachedLookup for the OCSP responder's rows.
func (db *DB) CachedStatus(serial string) (*certportal.Certificate, bool) {
	return cachedHit(db, serial, func(c *lookupCache) map[string]*certportal.Certificate { return c.bySerial }, cloneCert)
}

// cachedHit answers key from the map pick selects when the wal-index
// header is the one the map's rows were read under; anything else (a
// change, a header being written, no wal-index) is a miss, which the
// caller reads through Lookup or Statuses and so through current().
func cachedHit[V any](db *DB, key string, pick func(*lookupCache) map[string]V, clone func(V) V) (V, bool) {
	var zero V
	if db.closed.Load() {
		return zero, false
	}
	c := &db.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.valid || c.wal == nil {
		return zero, false
	}
	if h, ok := c.wal.header(); !ok || h != c.hdr {
		return zero, false
	}
	v, ok := pick(c)[strings.ToUpper(key)]
	if !ok {
		return zero, false
	}
	return clone(v), true
}

func cloneFound(f certportal.Found) certportal.Found {
	cert, acc := *f.Cert, *f.Account
	return certportal.Found{Cert: &cert, Account: &acc}
}

func cloneCert(c *certportal.Certificate) *certportal.Certificate { cp := *c; return &cp }

// Lookup is the hot path's read: for each fingerprint, the cached row
// while the database is unchanged (lookupCache), else one prepared
// statement on a read connection, without BEGIN and COMMIT (SQLite runs a
// lone statement in a transaction of its own, which sees one committed
// state). The fingerprints travel as one JSON array, so any number of them
// is one statement.
func (db *DB) Lookup(ctx context.Context, fingerprints []string) (map[string]certportal.Found, error) {
	return cachedRead(ctx, db, fingerprints, func(c *lookupCache) map[string]certportal.Found { return c.bySHA }, cloneFound,
		func(miss []string) (map[string]certportal.Found, error) {
			read := map[string]certportal.Found{}
			err := db.queryKeys(ctx, lookupQuery, miss, func(rows *sql.Rows) error {
				var cr certRow
				var ar accountRow
				if err := rows.Scan(append(cr.dest(), ar.dest()...)...); err != nil {
					return err
				}
				cert := cr.cert()
				read[cert.SHA256] = certportal.Found{Cert: cert, Account: ar.account()}
				return nil
			})
			return read, err
		})
}

// Statuses is the OCSP responder's read: cached and validated like
// Lookup's, else one prepared statement.
func (db *DB) Statuses(ctx context.Context, serials []string) (map[string]*certportal.Certificate, error) {
	return cachedRead(ctx, db, serials, func(c *lookupCache) map[string]*certportal.Certificate { return c.bySerial }, cloneCert,
		func(miss []string) (map[string]*certportal.Certificate, error) {
			read := map[string]*certportal.Certificate{}
			err := db.queryKeys(ctx, statusesQuery, miss, func(rows *sql.Rows) error {
				cert, err := scanCert(rows)
				if err == nil {
					read[cert.Serial] = cert
				}
				return err
			})
			return read, err
		})
}

// cachedRead is Lookup's and Statuses' one way through the cache: after
// reading data_version, each key (upper-cased) is answered from the map
// that pick selects while the version is the one just read; the others are
// read in one statement by read and filed under that version, the map
// starting over when it holds lookupCacheMax. Callers get copies (clone):
// they may change what they get.
func cachedRead[V any](ctx context.Context, db *DB, keys []string, pick func(*lookupCache) map[string]V,
	clone func(V) V, read func(miss []string) (map[string]V, error)) (map[string]V, error) {
	if db.closed.Load() {
		return nil, errClosed
	}
	c := &db.cache
	v, err := c.current(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]V, len(keys))
	var miss []string
	c.mu.Lock()
	for _, k := range upper(keys) {
		if got, ok := pick(c)[k]; ok && c.version == v {
			out[k] = clone(got)
		} else {
			miss = append(miss, k)
		}
	}
	c.mu.Unlock()
	if len(miss) == 0 {
		return out, nil
	}
	got, err := read(miss)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, val := range got {
		out[k] = clone(val)
		if c.valid && c.version == v {
			m := pick(c)
			if len(m) >= lookupCacheMax {
				clear(m)
			}
			m[k] = val
		}
	}
	return out, nil
}

// queryKeys runs query, a cached statement on a read connection, with keys
// as its one JSON array argument, and calls row for each row.
func (db *DB) queryKeys(ctx context.Context, query string, keys []string, row func(*sql.Rows) error) error {
	stmt, ok := db.readStmts.lookup(query)
	if !ok {
		var err error
		if stmt, err = db.readStmts.prepare(ctx, query); err != nil {
			return mapError(err, "", "")
		}
	}
	arg, err := json.Marshal(keys)
	if err != nil {
		return mapError(err, "", "")
	}
	rows, err := stmt.QueryContext(ctx, string(arg))
	if err != nil {
		return mapError(err, "", "")
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows); err != nil {
			return mapError(err, "", "")
		}
	}
	return mapError(rows.Err(), "", "")
}

func upper(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = strings.ToUpper(k)
	}
	return out
}
