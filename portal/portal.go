// Package portal holds the rules of the certificate portal: who may sign
// in and how, the one-valid-certificate rule, lockout, recovery by mail and
// the audit trail. It uses the root package's interfaces (Store, Mailer) and
// the ca package, and knows nothing of HTTP or flags: web/ and
// cmd/certportal call it.
package portal

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
)

// Config holds what cmd/certportal configures: where the portal is, the key
// type of user certificates, and the limits (certportal.Policy; zero
// values take the defaults of SPEC.md).
type Config struct {
	// PortalURL is the HTTPS address users open, used in mails.
	PortalURL string
	// UserKeyType is the key type of user certificates.
	UserKeyType ca.KeyType
	certportal.Policy
}

func (c *Config) setDefaults() {
	c.Policy = c.Policy.Resolved()
	if c.UserKeyType == "" {
		c.UserKeyType = ca.P256
	}
	if c.PortalURL == "" {
		c.PortalURL = "https://localhost:8443"
	}
}

// Service carries out the portal's operations. Its fields are set once by
// cmd/certportal; it is safe for concurrent use.
type Service struct {
	Store  certportal.Store
	CA     *ca.Authority
	Mailer certportal.Mailer
	Hasher *Hasher
	Log    *slog.Logger
	Now    func() time.Time
	Rand   io.Reader
	Config Config
	// Events, when set, hears what the service did (for metrics); nil
	// reports nothing.
	Events Events
	// AuditKey signs the audit log's checkpoints (DATA/ca/audit.key), and
	// CheckpointLog is the file they are also appended to
	// (DATA/audit-checkpoints.log). Without a key no checkpoint is
	// written, and any stored one fails verification.
	AuditKey      ed25519.PrivateKey
	CheckpointLog string

	crl    crlSigning // see crl.go
	outbox mailWake   // see outbox.go
	// lookups and statuses share the per-request reads of concurrent
	// requests (batch.go): certificates by fingerprint for sign-in, by
	// serial for OCSP.
	lookups  batcher[certportal.Found]
	statuses batcher[*certportal.Certificate]
}

// New returns a Service with defaults filled in.
func New(store certportal.Store, authority *ca.Authority, mailer certportal.Mailer, cfg Config, log *slog.Logger) *Service {
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{
		Store:  store,
		CA:     authority,
		Mailer: mailer,
		Hasher: NewHasher(4),
		Log:    log,
		Now:    time.Now,
		Rand:   randReader,
		Config: cfg,
	}
}

// Actor says who asks for an operation and from where, for the audit log.
type Actor struct {
	Name   string // "admin", "user:<id>", "<role>:<id>" (console), "system"
	Remote string // client address, or "cli"
	// Account is the ID of the account acting in the admin console (""
	// for the command line and the system): the rules that concern the
	// actor's own account (no change of one's own role) read it.
	Account string
}

// Admin is the actor of the command line.
var Admin = Actor{Name: "admin", Remote: "cli"}

// User returns the actor for a signed-in user at a client address.
func User(id, remote string) Actor { return Actor{Name: "user:" + id, Remote: remote} }

func (s *Service) now() time.Time { return s.Now().UTC() }

// audit appends one record in tx.
func (s *Service) audit(ctx context.Context, tx certportal.Tx, a Actor, account, action, detail string) error {
	return tx.AppendAudit(ctx, &certportal.AuditEvent{
		Time: s.now(), Actor: a.Name, AccountID: account, Action: action, Detail: detail, Remote: a.Remote,
	})
}

// auditAlone appends one record in its own transaction; failures are logged.
func (s *Service) auditAlone(ctx context.Context, a Actor, account, action, detail string) {
	err := s.Store.Update(ctx, func(tx certportal.Tx) error {
		return s.audit(ctx, tx, a, account, action, detail)
	})
	if err != nil {
		s.Log.Error("audit record lost", "action", action, "account", account, "err", err)
	}
}

// queueNotice writes a notice mail (one addressee) into the outbox in tx,
// the transaction that makes the change it reports: the mail goes out
// after the commit, at least once, retried when the mail server fails, and
// never for a change that was rolled back (outbox.go). The caller wakes the
// sender once tx has committed.
func (s *Service) queueNotice(ctx context.Context, tx certportal.Tx, account string, m certportal.Mail) error {
	now := s.now()
	return tx.QueueMail(ctx, &certportal.QueuedMail{AccountID: account, Kind: certportal.MailNotice,
		To: strings.Join(m.To, ", "), Subject: m.Subject, Body: m.Body, Created: now, NextTry: now})
}

func tokenID(token string) string {
	s := sha256.Sum256([]byte(token))
	return hex.EncodeToString(s[:])
}
