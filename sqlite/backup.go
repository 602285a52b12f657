package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/certportal/certportal"
)

// Snapshot writes a consistent copy of the database to path, a file that
// must not exist yet, while other connections and processes keep reading
// and writing. It runs VACUUM INTO on a read connection: in WAL mode a
// reader sees one committed state and blocks no writer, so a running
// portal goes on serving (and issuing) during the copy, and the copy holds
// every transaction committed before it started and none after. The copy
// is created 0600 (it holds password hashes) and synced to disk; it is a
// plain database file (no WAL) that Open accepts.
//
// On failure nothing is left at path.
func (db *DB) Snapshot(ctx context.Context, path string) (err error) {
	if db.closed.Load() {
		return errClosed
	}
	if path == "" || strings.ContainsAny(path, "?#") {
		return errf(certportal.Invalid, "the snapshot path %q is empty or contains '?' or '#'; choose another", path)
	}
	// VACUUM INTO accepts an empty file; creating it first gives it 0600
	// (SQLite would use 0644 after the umask) and refuses an existing one.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return errf(certportal.Conflict, "%s exists already; a snapshot never overwrites a file", path)
	}
	if err != nil {
		return &certportal.Error{Code: certportal.Unavailable, Op: op, Err: err,
			Message: fmt.Sprintf("cannot create the snapshot file %s; check the directory's permissions and free space", path)}
	}
	f.Close()
	defer func() {
		if err != nil {
			os.Remove(path)
		}
	}()
	// The read pool's connections are query_only, which forbids VACUUM
	// even INTO another file; a dedicated read-write connection that never
	// writes to this database does the copy without taking the writer.
	conn, err := openSnapshotConn(db.path)
	if err != nil {
		return openError(db.path, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "VACUUM INTO ?", path); err != nil {
		return &certportal.Error{Code: certportal.Unavailable, Op: op, Err: err,
			Message: fmt.Sprintf("copying the database to %s failed; check the free space there", path)}
	}
	if err := syncFile(path); err != nil {
		return &certportal.Error{Code: certportal.Unavailable, Op: op, Err: err,
			Message: fmt.Sprintf("the snapshot %s could not be written to disk", path)}
	}
	return nil
}

// IntegrityCheck runs SQLite's PRAGMA integrity_check, which reads every
// page, index and constraint of the file, and returns Invalid with SQLite's
// first complaint when the file is damaged. restore runs it on a database
// before putting it into place.
func (db *DB) IntegrityCheck(ctx context.Context) error {
	if db.closed.Load() {
		return errClosed
	}
	damaged := func(why string) error {
		return errf(certportal.Invalid, "the database %s is damaged (%s)", db.path, why)
	}
	// SQLite stops the check with SQLITE_CORRUPT when a page is beyond
	// reading; that is damage too, not an unavailable disk.
	failed := func(err error) error {
		var se *sqlite.Error
		if errors.As(err, &se) && (se.Code()&0xff == sqlite3.SQLITE_CORRUPT || se.Code()&0xff == sqlite3.SQLITE_NOTADB) {
			return damaged("SQLite cannot read some of its pages")
		}
		return mapError(err, "", "")
	}
	rows, err := db.read.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return failed(err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return failed(err)
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		return failed(err)
	}
	if len(problems) > 0 {
		return damaged(problems[0])
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// openSnapshotConn opens one connection to path for Snapshot.
func openSnapshotConn(path string) (*sql.DB, error) {
	c, err := sql.Open("sqlite", fmt.Sprintf("%s?_pragma=busy_timeout(%d)", path, busyTimeout.Milliseconds()))
	if err != nil {
		return nil, err
	}
	c.SetMaxOpenConns(1)
	return c, nil
}
