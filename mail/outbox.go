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
	"github.com/certportal/certportal/internal/atomicfile"
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

// write stores data as name in Dir atomically (internal/atomicfile).
func (o *Outbox) write(name string, data []byte) error {
	if o.Dir == "" {
		return errorf(certportal.Internal, nil, "the outbox directory is not set")
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return o.unwritable(err)
	}
	if err := atomicfile.WriteFile(filepath.Join(o.Dir, name), data, 0o600); err != nil {
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
