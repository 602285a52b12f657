package sqlite

import (
	"errors"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"unsafe"
)

// walIndex reads the header of the database's wal-index: the DATABASE-shm
// file that every connection to a WAL database, in any process, maps into
// memory (https://www.sqlite.org/walformat.html, "The WAL-Index File
// Format"). Its first 96 bytes are two copies of a 48-byte header that a
// committing connection rewrites, second copy first, before its commit
// returns; the header's change counter (iChange) goes up by one with every
// commit and its checksum covers the rest (the WAL's frame count and
// salts). A header equal to the one read before therefore means that no
// connection has committed since: the exact change signal of PRAGMA
// data_version, read with two loads from memory instead of a read
// transaction (two fcntl locks, an fstat and a statement, about 8 µs).
//
// The file is opened and mapped once per database file per process
// (walIndexes) and closed only when the last store using it has closed all
// its connections: closing any descriptor of a file drops every POSIX lock
// this process holds on it, and SQLite's own connections hold theirs on
// this file.
type walIndex struct {
	id   fileKey
	f    *os.File
	mem  []byte
	refs int // stores using it; guarded by walIndexes.mu
	bad  atomic.Bool
}

// walHeader is one copy of the wal-index header (WalIndexHdr), as 32-bit
// words in the machine's byte order.
type walHeader [12]uint32

const (
	walHeaderWords = 12
	walIndexMapped = 4096 // the header and the checkpoint info; the file is 32 KiB or more
	walIndexFormat = 3007000
)

// fileKey names a file whatever path reached it.
type fileKey struct{ dev, ino uint64 }

var walIndexes = struct {
	mu sync.Mutex
	m  map[fileKey]*walIndex
}{m: map[fileKey]*walIndex{}}

// openWALIndex maps the wal-index of the database at dbPath, or shares the
// mapping another store of this process made. SQLite names it after the
// database's real path, so symbolic links are resolved first. It must be
// called while a connection of the caller has the database open in WAL
// mode: the file then exists and is initialised, and cannot be removed or
// truncated while that connection stays open. A wal-index that cannot be
// read is still opened and kept (bad), so that its descriptor is closed
// only with the last store, never while SQLite's connections hold locks.
func openWALIndex(dbPath string) (*walIndex, error) {
	real, err := filepath.EvalSymlinks(dbPath)
	if err != nil {
		return nil, err
	}
	name := real + "-shm"
	fi, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	id, ok := keyOf(fi)
	if !ok {
		return nil, errors.New("the wal-index's inode is unknown on this system")
	}
	walIndexes.mu.Lock()
	defer walIndexes.mu.Unlock()
	if w, ok := walIndexes.m[id]; ok {
		w.refs++
		return w, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	w := &walIndex{id: id, f: f, refs: 1}
	walIndexes.m[id] = w // from now on f stays open until the last release
	if fi.Size() < walIndexMapped {
		w.bad.Store(true)
		return w, nil
	}
	if w.mem, err = mapReadOnly(f, walIndexMapped); err != nil {
		w.bad.Store(true)
		return w, nil
	}
	if _, ok := w.header(); !ok {
		w.bad.Store(true)
	}
	return w, nil
}

// release drops a store's use of w; the last one unmaps it and closes the
// file. Call it only after the store has closed all its connections.
func (w *walIndex) release() {
	walIndexes.mu.Lock()
	defer walIndexes.mu.Unlock()
	if w.refs--; w.refs > 0 {
		return
	}
	delete(walIndexes.m, w.id)
	w.bad.Store(true)
	if w.mem != nil {
		unmap(w.mem)
		w.mem = nil
	}
	w.f.Close()
}

// header reads the wal-index header. ok is false when it cannot be
// trusted: the two copies differ (a commit is writing it) or it does not
// look initialised, or reading faulted (the mapping is then never read
// again).
func (w *walIndex) header() (h walHeader, ok bool) {
	if w.bad.Load() {
		return h, false
	}
	defer func() {
		if recover() != nil {
			w.bad.Store(true)
			ok = false
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	// The writer stores the second copy, then the first; reading the
	// first, then the second, and finding them equal means neither was
	// being written (SQLite's own readers do the same).
	var second walHeader
	for i := range walHeaderWords {
		h[i] = atomic.LoadUint32((*uint32)(unsafe.Pointer(&w.mem[4*i])))
	}
	for i := range walHeaderWords {
		second[i] = atomic.LoadUint32((*uint32)(unsafe.Pointer(&w.mem[4*(walHeaderWords+i)])))
	}
	// iVersion is word 0; isInit is the first byte of word 3.
	isInit := w.mem[12]
	return h, h == second && h[0] == walIndexFormat && isInit == 1
}
