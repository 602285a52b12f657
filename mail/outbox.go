package mail

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/certportal/certportal"
)

// Outbox delivers mail by writing each message as an RFC 5322 file (.eml)
// into Dir. It is the mailer of an installation without --smtp: an
// administrator reads or forwards the files, and tests read them back.
//
// Files are named after the time of sending and a random part, such as
// 20261125T091500.123456789Z-1f2e3d4c5b6a7988.eml, so they sort in the order
// they were sent and never collide. Each is written to a temporary file,
// synced and renamed into place, so a reader never sees half a message; files
// are 0600 and Dir is created 0700, because mails carry temporary passwords.
// An Outbox is safe for concurrent use.
type Outbox struct {
	// Dir is the directory the .eml files go into; it is created if missing.
	Dir string
	// From is the sender address; empty means "certportal <certportal@localhost>".
	From string
	// Now dates the message and names the file; nil means time.Now.
	Now func() time.Time
	// Rand feeds the random part of file names and Message-IDs; nil means
	// crypto/rand. Tests fix it to get byte-identical files.
	Rand io.Reader
}

var _ certportal.Mailer = (*Outbox)(nil)

// tempPrefix starts the names of files being written. Readers that list
// "*.eml" never pick them up, and a dot hides them from a plain ls.
const tempPrefix = ".tmp-"

// Send writes m into the outbox and returns once the file is durable on
// disk (the file and its directory are synced).
func (o *Outbox) Send(ctx context.Context, m certportal.Mail) error {
	if err := ctx.Err(); err != nil {
		return errorf(certportal.Unavailable, err, "sending the mail was cancelled")
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	c, err := compose(m, o.From, now(), o.Rand, true)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if _, err := c.msg.WriteTo(&buf); err != nil {
		return errorf(certportal.Internal, err, "the mail could not be put together")
	}
	return o.write(c.id+".eml", buf.Bytes())
}

// write stores data as name in Dir atomically: temporary file, fsync,
// rename, fsync of the directory (as age and mkcert write their keys).
func (o *Outbox) write(name string, data []byte) (err error) {
	if o.Dir == "" {
		return errorf(certportal.Internal, nil, "the outbox directory is not set")
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return o.unwritable(err)
	}
	// CreateTemp makes the file 0600 and refuses to reuse an existing name.
	f, err := os.CreateTemp(o.Dir, tempPrefix+"*")
	if err != nil {
		return o.unwritable(err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return o.unwritable(err)
	}
	if err = f.Sync(); err != nil {
		return o.unwritable(err)
	}
	if err = f.Close(); err != nil {
		return o.unwritable(err)
	}
	if err = os.Rename(tmp, filepath.Join(o.Dir, name)); err != nil {
		return o.unwritable(err)
	}
	// The rename is durable only once the directory entry is on disk.
	if err = syncDir(o.Dir); err != nil {
		return o.unwritable(err)
	}
	return nil
}

// unwritable reports a failure to write the outbox. It is Unavailable, like
// an unreachable mail server: the caller's change must not go ahead, and
// trying again later (after the disk is fixed) is the remedy.
func (o *Outbox) unwritable(err error) error {
	msg := "the mail could not be written to the outbox"
	if errors.Is(err, os.ErrPermission) {
		msg += " (permission denied)"
	}
	return errorf(certportal.Unavailable, err, msg+"; check the outbox directory and try again")
}

// syncDir fsyncs a directory so a rename into it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		_ = d.Close()
		return err
	}
	return d.Close()
}
