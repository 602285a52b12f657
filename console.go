package certportal

import (
	"context"
	"strings"
	"time"
)

// ConsoleTx is what the admin console reads beyond the rest of Tx: account
// search, lockouts, the audit log newest first with filters, certificate
// counts and the inventory. Every method reads through an index in the
// order it answers, so a page costs what it shows, not the size of the
// database (SPEC.md: searches and pages answer within 50 ms with 100,000
// accounts).
type ConsoleTx interface {
	// SearchAccounts lists the accounts whose ID starts with prefix
	// (case-insensitively), in ID order, then those whose e-mail address
	// starts with it and whose ID does not, in e-mail order; it skips
	// offset of them and returns at most limit. An empty prefix lists
	// every account. A prefix with a character no ID or e-mail address
	// can hold (non-ASCII, a control character) matches nothing.
	SearchAccounts(ctx context.Context, prefix string, offset, limit int) ([]Account, error)
	// CountAccounts returns the number of accounts.
	CountAccounts(ctx context.Context) (int, error)
	// StaffAccounts lists the accounts whose role is not RoleUser, by ID.
	StaffAccounts(ctx context.Context) ([]Account, error)
	// Lockouts lists the lockouts of an account that end after now.
	Lockouts(ctx context.Context, accountID string, now time.Time) ([]Lockout, error)
	// SearchAudit lists audit records newest first: those q selects.
	SearchAudit(ctx context.Context, q AuditQuery) ([]AuditEvent, error)
	// CertificateCounts counts the certificates of each issuer by state
	// at now, by issuer name.
	CertificateCounts(ctx context.Context, now time.Time) ([]CertificateCount, error)
	// Inventory returns up to limit certificates whose serial sorts
	// after afterSerial, in serial order, without their DER: the
	// inventory export reads it page by page, each page in a short
	// transaction of its own, and never holds every certificate in memory.
	Inventory(ctx context.Context, afterSerial string, limit int) ([]Certificate, error)
}

// PrefixRange returns the range [lo, hi) of lower-cased strings that start
// with prefix (case-insensitively), for a search on an index of IDs or
// e-mail addresses, which hold printable ASCII only; ok is false when the
// prefix holds another character, so nothing can match.
func PrefixRange(prefix string) (lo, hi string, ok bool) {
	b := []byte(strings.ToLower(prefix))
	for _, c := range b {
		if c < 0x20 || c >= 0x7f {
			return "", "", false
		}
	}
	if len(b) == 0 {
		return "", "\x7f", true
	}
	hiB := append([]byte(nil), b...)
	hiB[len(hiB)-1]++ // at most 0x7f: every stored character sorts below it
	return string(b), string(hiB), true
}

// Lockout is a lock on password sign-in for an ID from one client
// address (an IPv6 address's /64).
type Lockout struct {
	Remote string
	Until  time.Time
}

// AuditQuery selects audit records for SearchAudit. Zero fields select
// everything.
type AuditQuery struct {
	AccountID string
	Action    string
	// From and To bound the records' time: From <= time < To.
	From, To time.Time
	// BeforeSeq pages back: only records with a smaller Seq (0 = from the
	// newest).
	BeforeSeq int64
	Limit     int // 0 = no limit
}

// CertificateCount is how many certificates of one issuer are valid,
// expired (and not revoked) and revoked.
type CertificateCount struct {
	Issuer                  string
	Valid, Expired, Revoked int
}

// OutboxTx is the mail outbox: mails written in the transaction of the
// change they report, and sent after it commits (mail sending must not
// hold a transaction, least of all SQLite's one write lock). A sender
// claims due mails, sends them and marks them sent; a claim that is never
// followed by either (a crash) lapses at the lease's end and the mail is
// sent again. So a mail committed is never lost, and is sent twice only
// when the process dies between the send and the mark; a mail carries a
// stable ID for that case (see Mail.ID).
type OutboxTx interface {
	// QueueMail adds a mail and sets its ID (increasing).
	QueueMail(ctx context.Context, m *QueuedMail) error
	// ClaimMail returns up to limit mails not yet sent whose NextTry is
	// not after now, oldest first, and sets their NextTry to leaseUntil,
	// so no other sender (this process or another replica) takes them
	// before then.
	ClaimMail(ctx context.Context, now, leaseUntil time.Time, limit int) ([]QueuedMail, error)
	// PrepareMail writes the recipient, subject and body of a queued mail
	// that was queued without them (a temporary password is made only
	// when the mail is about to go out).
	PrepareMail(ctx context.Context, id int64, to, subject, body string) error
	// MailSent marks a mail sent and erases its body, which may hold a
	// temporary password.
	MailSent(ctx context.Context, id int64, at time.Time) error
	// MailFailed records a failed attempt and when to try again.
	MailFailed(ctx context.Context, id int64, next time.Time, why string) error
	// PendingMail counts the mails not yet sent.
	PendingMail(ctx context.Context) (int, error)
	// QueuedMails lists the mails of an account, oldest first, for tests
	// and the console.
	QueuedMails(ctx context.Context, accountID string) ([]QueuedMail, error)
}

// Kinds of queued mail.
const (
	// MailTemporaryPassword is queued without a body: the sender makes
	// the account's temporary password, sets it and writes the mail in
	// one transaction (PrepareMail), then sends it.
	MailTemporaryPassword = "temporary_password"
	// MailNotice is a notice written whole when it is queued, in the
	// transaction of the change it reports (a certificate issued).
	MailNotice = "notice"
)

// QueuedMail is one mail of the outbox.
type QueuedMail struct {
	ID        int64
	AccountID string
	Kind      string
	To        string // "" until prepared
	Subject   string
	Body      string
	Created   time.Time
	NextTry   time.Time
	Attempts  int
	LastError string
	Sent      time.Time // zero while not sent
}
