package certportal

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"strconv"
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
	// HashVersion says how Hash was computed: 1 (records written before
	// every column was hashed: JSON of the fields above) or 2
	// (AuditHashVersion). 0 for a record not read from storage.
	HashVersion int `json:"-"`
	// AccountKey is the stored lookup key of AccountID (lower case); a
	// record read from storage must carry IDKey(AccountID), or it would
	// hide from the account's listing.
	AccountKey string `json:"-"`
}

// AuditHashVersion is the hash version of new records: every stored
// column, length-prefixed.
const AuditHashVersion = 2

// AuditHash computes the hash of e over every field but Hash, chained to
// e.PrevHash, in e's HashVersion (2 when 0). Storage calls it when
// appending, with Seq and PrevHash set.
//
// Version 2 hashes each stored column — seq, time (Unix microseconds,
// the precision both stores keep), actor, account, action, detail,
// address, previous hash — as a 4-byte big-endian length and its bytes,
// after a fixed label, so no two records can encode alike.
func AuditHash(e *AuditEvent) string {
	if e.HashVersion != 1 {
		h := sha256.New()
		for _, f := range []string{"certportal audit record v2", strconv.FormatInt(e.Seq, 10),
			strconv.FormatInt(e.Time.UnixMicro(), 10), e.Actor, e.AccountID, e.Action, e.Detail, e.Remote, e.PrevHash} {
			var n [4]byte
			binary.BigEndian.PutUint32(n[:], uint32(len(f)))
			h.Write(n[:])
			h.Write([]byte(f))
		}
		return hex.EncodeToString(h.Sum(nil))
	}
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
		if e.HashVersion > 0 && e.AccountKey != IDKey(e.AccountID) {
			return e.Seq, Errorf(Conflict, "audit record %d has been altered: its account column was changed", e.Seq)
		}
		if i > 0 && e.HashVersion < events[i-1].HashVersion {
			return e.Seq, Errorf(Conflict, "audit record %d has been altered: it claims an older hash version than the record before it", e.Seq)
		}
		prev = e.Hash
		want++
	}
	return 0, nil
}
