package certportal

import (
	"context"
	"time"
)

// Store is the portal's database. All changes go through Update, which runs
// its function in one transaction: everything it wrote commits, or nothing
// does. Implementations: sqlite (one node) and postgres (several replicas);
// storetest holds the suite both must pass.
type Store interface {
	// Update runs fn in a read-write transaction and commits if fn returns
	// nil. Concurrent Updates that touch the same account are serialised
	// (Tx.LockAccount), so rules such as "one valid certificate per
	// account" hold across goroutines and processes. fn may run more than
	// once (postgres re-runs it after a serialization failure or a
	// deadlock), so it must not act outside the Tx in a way that would be
	// harmful to repeat before its last statement.
	Update(ctx context.Context, fn func(Tx) error) error
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(Tx) error) error
	// Lookup reads what the per-request certificate check needs: for each
	// SHA-256 fingerprint (hex, any case), the certificate that has it and
	// its account, all in one statement outside any transaction (one round
	// trip; the statement sees one committed state, so a revocation or
	// cancellation committed before the call is seen). The map's keys are
	// the fingerprints in upper case; one that no certificate has is
	// absent. portal lets concurrent requests share one call.
	Lookup(ctx context.Context, fingerprints []string) (map[string]Found, error)
	// Statuses reads the certificates with these serials (hex, any case)
	// in one statement outside any transaction, like Lookup: the OCSP
	// responder's per-request status check. Keys are the serials in upper
	// case; unknown ones are absent.
	Statuses(ctx context.Context, serials []string) (map[string]*Certificate, error)
	// LookupSession reads, in one statement outside any transaction, a
	// session (by its hashed ID), its account and, for a session bound to
	// a certificate, that certificate's status (Serial, AccountID,
	// NotAfter, Revoked and Reason are set; nil when the certificate is
	// gone). NotFound for an unknown session.
	LookupSession(ctx context.Context, id string) (*Session, *Account, *Certificate, error)
	// Ping reports whether the database answers.
	Ping(ctx context.Context) error
	Close() error
}

// CachedStore is a Store that keeps what Lookup and Statuses read while
// the database is unchanged, and can tell without a read whether it still
// is (sqlite: the wal-index header in shared memory). CachedLookup and
// CachedStatus answer from that cache only when no commit, by any
// connection in any process, has happened since the row was read — the
// same guarantee as Lookup's statement — and say ok false otherwise; then
// the caller reads through Lookup or Statuses. The key is upper case; the
// results are the caller's to change.
type CachedStore interface {
	Store
	CachedLookup(fingerprint string) (Found, bool)
	CachedStatus(serial string) (*Certificate, bool)
}

// Tx is what a transaction can read and write. Errors are *Error: NotFound
// for a missing record, Conflict for a duplicate, Unavailable when the
// database cannot be reached.
type Tx interface {
	// Accounts. Lookups by ID are case-insensitive.
	CreateAccount(ctx context.Context, a *Account) error
	Account(ctx context.Context, id string) (*Account, error)
	// LockAccount reads an account and holds a write lock on it until the
	// transaction ends.
	LockAccount(ctx context.Context, id string) (*Account, error)
	UpdateAccount(ctx context.Context, a *Account) error
	ListAccounts(ctx context.Context) ([]Account, error)

	// Certificates. Serials are unique; InsertCertificate returns Conflict
	// for a serial that exists.
	InsertCertificate(ctx context.Context, c *Certificate) error
	Certificate(ctx context.Context, serial string) (*Certificate, error)
	CertificateBySHA256(ctx context.Context, fingerprint string) (*Certificate, error)
	ListCertificates(ctx context.Context, f CertFilter) ([]Certificate, error)
	// RevokeCertificate marks a certificate revoked and, in the same
	// transaction, adds one to its issuer's RevocationCount; revoking a
	// revoked certificate returns Conflict and changes nothing.
	RevokeCertificate(ctx context.Context, serial string, at time.Time, reason RevocationReason) error
	// RevocationCount returns how many revocations of an issuer's
	// certificates have committed (0 before the first). It only grows, one
	// per revocation in commit order, so a CRL that covers the count read
	// lists every revocation committed before the read.
	RevocationCount(ctx context.Context, issuer string) (int64, error)
	// Revocations lists the revoked certificates of one issuer that have
	// not yet expired before notAfter, for its CRL.
	Revocations(ctx context.Context, issuer string, expiredBefore time.Time) ([]Revocation, error)

	// Sessions. IDs are stored hashed; the raw token lives only in the cookie.
	CreateSession(ctx context.Context, s *Session) error
	Session(ctx context.Context, id string) (*Session, error)
	TouchSession(ctx context.Context, id string, at time.Time) error
	DeleteSession(ctx context.Context, id string) error
	// DeleteSessions ends every session of an account except keep ("" = all).
	DeleteSessions(ctx context.Context, accountID, keep string) error
	DeleteExpiredSessions(ctx context.Context, now time.Time) error
	// TrimSessions ends the oldest sessions of an account (by Created,
	// then by ID) so that at most n remain, counting keep, which stays.
	TrimSessions(ctx context.Context, accountID, keep string, n int) error

	// Password failures and lockouts, per account and client address.
	// LockAttempts holds a lock on (account, remote) until the transaction
	// ends, so that counting an attempt and reading the lockout happen as
	// one step on every replica: a password check is admitted only by a
	// transaction that held it.
	LockAttempts(ctx context.Context, accountKey, remote string) error
	AddFailure(ctx context.Context, accountKey, remote string, at time.Time) error
	CountFailures(ctx context.Context, accountKey, remote string, since time.Time) (int, error)
	ClearFailures(ctx context.Context, accountKey, remote string) error
	SetLockout(ctx context.Context, accountKey, remote string, until time.Time) error
	// LockedUntil returns when the lockout of (account, remote) ends, or
	// the zero time if there is none.
	LockedUntil(ctx context.Context, accountKey, remote string) (time.Time, error)
	// Unlock lifts every lockout and forgets every failure of an account.
	Unlock(ctx context.Context, accountKey string) error

	// Recovery tickets: single use.
	CreateTicket(ctx context.Context, t *Ticket) error
	// ConsumeTicket deletes the ticket and returns it; NotFound if it was
	// never issued or is used already.
	ConsumeTicket(ctx context.Context, id string) (*Ticket, error)
	// Ticket reads a ticket without consuming it (NotFound if there is
	// none), so the account can be locked before the ticket is taken:
	// every change of an account locks the account first.
	Ticket(ctx context.Context, id string) (*Ticket, error)
	// DeleteTickets deletes every recovery ticket of an account.
	DeleteTickets(ctx context.Context, accountID string) error

	// Audit log. AppendAudit sets Seq, PrevHash and Hash (with AuditHash),
	// serialised against every other append.
	AppendAudit(ctx context.Context, e *AuditEvent) error
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error)
	// AuditV2From is the first sequence number hashed with
	// AuditHashVersion 2 (recorded when the stronger hashing began; the
	// records before it keep version 1).
	AuditV2From(ctx context.Context) (int64, error)
	// LastAudit returns the newest record's sequence number and hash (0
	// and "" for an empty log).
	LastAudit(ctx context.Context) (int64, string, error)
	// AddCheckpoint stores a signed checkpoint; Conflict when one for its
	// sequence number exists. Checkpoints lists them in sequence order.
	AddCheckpoint(ctx context.Context, c *AuditCheckpoint) error
	Checkpoints(ctx context.Context) ([]AuditCheckpoint, error)
	CountAudit(ctx context.Context, accountID, action string, since time.Time) (int, error)

	// CRLs: NextCRLNumber returns a number never returned before for that
	// CA (across replicas); SaveCRL stores signed bytes with the
	// RevocationCount they cover, which LatestCRL returns.
	NextCRLNumber(ctx context.Context, issuer string) (int64, error)
	SaveCRL(ctx context.Context, c *CRL) error
	LatestCRL(ctx context.Context, issuer string) (*CRL, error)

	// Expiry reminders. ExpiringCertificates lists the unrevoked
	// certificates whose notAfter is after after and not after before,
	// soonest first. ClaimReminder records the reminder sent days before a
	// certificate's expiry and returns false, changing nothing, when it is
	// recorded already (by this or another replica: a second claim of a
	// pending one waits for its transaction); NotFound for an unknown serial.
	ExpiringCertificates(ctx context.Context, after, before time.Time) ([]Certificate, error)
	ClaimReminder(ctx context.Context, serial string, days int, at time.Time) (bool, error)

	// The admin console's reads and the mail outbox (console.go).
	ConsoleTx
	OutboxTx
}

// Found is a certificate and its account, as Store.Lookup reads them.
type Found struct {
	Cert    *Certificate
	Account *Account
}

// CertFilter selects certificates in ListCertificates.
type CertFilter struct {
	AccountID string // "" = every account
	// Unrevoked keeps only certificates that have not been revoked.
	Unrevoked bool
}

// AuditFilter selects audit records in ListAudit, in sequence order.
type AuditFilter struct {
	AccountID string // "" = every account
	AfterSeq  int64
	Limit     int // 0 = no limit
}

// Session is a signed-in browser or client. A session started by
// certificate carries the serial it is bound to.
type Session struct {
	ID         string // SHA-256 of the cookie token, hex
	AccountID  string
	CertSerial string // "" for a password session
	Remote     string
	Created    time.Time
	LastSeen   time.Time
	Expires    time.Time // absolute expiry
}

// Ticket is a single-use recovery ticket: it proves that ID and password
// were checked moments before the user pressed "OK".
type Ticket struct {
	ID        string // SHA-256 of the token in the form, hex
	AccountID string
	Expires   time.Time
}

// CRL is a signed certificate revocation list as kept in the database.
type CRL struct {
	Issuer     string
	Number     int64
	ThisUpdate time.Time
	NextUpdate time.Time
	DER        []byte
	// Revocations is the issuer's RevocationCount the CRL covers: it was
	// read before the revocations were listed, so the CRL lists every
	// revocation counted in it. A CRL whose Revocations is below the
	// current count misses a revocation and must not be served.
	Revocations int64
}
