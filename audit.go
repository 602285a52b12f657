package certportal

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Audit actions. Each security event has one; the audit log is the record
// an administrator reads after an incident, so names are stable.
const (
	ActionAccountCreated  = "account.created"
	ActionAccountCanceled = "account.cancelled"
	ActionSignInOK        = "signin.ok"
	ActionSignInFailed    = "signin.failed"
	ActionSignInRefused   = "signin.refused" // right password, wrong method / cancelled / expired
	ActionLockout         = "signin.lockout"
	ActionUnlock          = "signin.unlock"
	ActionSignOut         = "signout"
	ActionMethodChanged   = "method.changed"
	ActionCertIssued      = "cert.issued"
	ActionCertRevoked     = "cert.revoked"
	ActionPasswordChanged = "password.changed"
	ActionRecovery        = "recovery"
	ActionRecoveryStarted = "recovery.started" // ID and password checked, confirmation shown
	ActionMailSent        = "mail.sent"
	ActionMailFailed      = "mail.failed"
	ActionCRLSigned       = "crl.signed"
	ActionEmailChanged    = "email.changed"
	ActionBackup          = "backup.created" // a backup holds the CA keys
	ActionRootKeyExported = "ca.root_key_exported"
)

// AuditEvent is one record of the audit log. Records are appended, never
// updated or deleted; each carries the hash of the one before it, so a
// change anywhere breaks the chain that VerifyAuditChain checks.
type AuditEvent struct {
	Seq       int64     `json:"seq"`
	Time      time.Time `json:"time"`
	Actor     string    `json:"actor"`   // "admin", "user:<id>", "system"
	AccountID string    `json:"account"` // the account concerned, or ""
	Action    string    `json:"action"`
	Detail    string    `json:"detail"` // never a secret
	Remote    string    `json:"remote"` // client address, or "cli"
	PrevHash  string    `json:"prev_hash"`
	Hash      string    `json:"hash"`
}

// AuditHash computes the hash of e over every field but Hash, chained to
// e.PrevHash. Storage calls it when appending, with Seq and PrevHash set.
func AuditHash(e *AuditEvent) string {
	c := *e
	c.Hash = ""
	c.Time = c.Time.UTC()
	b, _ := json.Marshal(c) // a struct of strings and ints cannot fail
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// VerifyAuditChain checks that events (in sequence order, from the first)
// form an unbroken hash chain. It returns the sequence number of the first
// bad record, or 0 and nil when the chain holds.
func VerifyAuditChain(events []AuditEvent) (int64, error) {
	prev := ""
	var want int64 = 1
	for i := range events {
		e := &events[i]
		if e.Seq != want {
			return e.Seq, Errorf(Conflict, "audit record %d is missing or out of order (found %d)", want, e.Seq)
		}
		if e.PrevHash != prev {
			return e.Seq, Errorf(Conflict, "audit record %d does not chain to record %d", e.Seq, e.Seq-1)
		}
		if AuditHash(e) != e.Hash {
			return e.Seq, Errorf(Conflict, "audit record %d has been altered", e.Seq)
		}
		prev = e.Hash
		want++
	}
	return 0, nil
}
