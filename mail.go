package certportal

import "context"

// Mail is a plain-text message to one or more recipients.
type Mail struct {
	// ID, when set, names the mail for good: a mail sent again under the
	// same ID (after a crash between sending and recording it) is the same
	// message (same Message-ID; the .eml outbox writes the same file), so
	// a retry never makes a second mail. "" = a new ID each send.
	ID      string
	To      []string
	Subject string
	Body    string
}

// Mailer delivers mail. Send returns only when the message has been handed
// over (written to the outbox, or accepted by the SMTP server), so callers
// can make a change depend on the mail having gone out.
type Mailer interface {
	Send(ctx context.Context, m Mail) error
}
