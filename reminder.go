package certportal

// Audit actions of renewal and expiry reminders. They live in their own file
// because they came with renewal (issue 9); the names are as stable as the
// others in audit.go.
const (
	// ActionCertRenewed records that a user renewed a certificate during its
	// last days: the detail names the old and the new serial. The issuance
	// itself is recorded as ActionCertIssued and the old certificate's
	// revocation (superseded) as ActionCertRevoked, in the same transaction.
	ActionCertRenewed = "cert.renewed"
	// ActionReminderSent records an expiry reminder mail, in the same
	// transaction that claims the (serial, days) reminder, so each reminder
	// is recorded exactly once however many replicas run.
	ActionReminderSent = "reminder.sent"
)
