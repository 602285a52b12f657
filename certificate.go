package certportal

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/big"
	"strings"
	"time"
)

// Certificate is a user certificate as the portal records it. The DER is
// kept so CRLs, audits and lookups never depend on a client's copy; the
// private key is never kept.
type Certificate struct {
	// Serial is the serial number as even-length upper-case hex.
	Serial    string
	AccountID string
	// Issuer is the common name of the issuing CA that signed it.
	Issuer    string
	NotBefore time.Time
	NotAfter  time.Time
	// Thumbprint is the SHA-1 of the DER, upper-case hex (as desktop
	// certificate managers show it); SHA256 is the SHA-256 of the DER,
	// upper-case hex, by which a presented certificate finds its account.
	Thumbprint string
	SHA256     string
	DER        []byte
	Issued     time.Time
	// Revoked is zero while the certificate has not been revoked.
	Revoked time.Time
	Reason  RevocationReason
}

// IsRevoked reports whether the certificate has been revoked.
func (c *Certificate) IsRevoked() bool { return !c.Revoked.IsZero() }

// State returns "revoked", "expired" or "valid" at time now.
func (c *Certificate) State(now time.Time) string {
	switch {
	case c.IsRevoked():
		return "revoked"
	case now.After(c.NotAfter):
		return "expired"
	case now.Before(c.NotBefore):
		return "not yet valid"
	}
	return "valid"
}

// Revocation is one entry of a CRL.
type Revocation struct {
	Serial string
	Time   time.Time
	Reason RevocationReason
}

// RevocationReason is an RFC 5280 CRLReason.
type RevocationReason int

// The reasons certportal offers. certificateHold is not offered (a held
// certificate cannot be recovered cleanly), and unspecified is written as
// "no reason" because RFC 5280 says to omit the reason code then.
const (
	ReasonNone                 RevocationReason = -1
	ReasonUnspecified          RevocationReason = 0
	ReasonKeyCompromise        RevocationReason = 1
	ReasonAffiliationChanged   RevocationReason = 3
	ReasonSuperseded           RevocationReason = 4
	ReasonCessationOfOperation RevocationReason = 5
	ReasonPrivilegeWithdrawn   RevocationReason = 9
)

var reasonNames = map[RevocationReason]string{
	ReasonNone:                 "none",
	ReasonUnspecified:          "unspecified",
	ReasonKeyCompromise:        "keyCompromise",
	ReasonAffiliationChanged:   "affiliationChanged",
	ReasonSuperseded:           "superseded",
	ReasonCessationOfOperation: "cessationOfOperation",
	ReasonPrivilegeWithdrawn:   "privilegeWithdrawn",
}

// String returns the RFC 5280 name of the reason.
func (r RevocationReason) String() string {
	if n, ok := reasonNames[r]; ok {
		return n
	}
	return "reason(" + big.NewInt(int64(r)).String() + ")"
}

// ParseReason parses an RFC 5280 reason name as the command line takes it
// (case-insensitive); "" and "none" mean no reason given.
func ParseReason(name string) (RevocationReason, error) {
	if name == "" {
		return ReasonNone, nil
	}
	for r, n := range reasonNames {
		if r != ReasonUnspecified && strings.EqualFold(n, name) {
			return r, nil
		}
	}
	return ReasonNone, Errorf(Invalid, "unknown revocation reason %q; use one of keyCompromise, superseded, cessationOfOperation, affiliationChanged, privilegeWithdrawn", name)
}

// Thumbprint returns the SHA-1 of der as upper-case hex without separators.
func Thumbprint(der []byte) string {
	s := sha1.Sum(der)
	return strings.ToUpper(hex.EncodeToString(s[:]))
}

// Fingerprint256 returns the SHA-256 of der as upper-case hex.
func Fingerprint256(der []byte) string {
	return FingerprintHex(sha256.Sum256(der))
}

// FingerprintHex is how a SHA-256 fingerprint is written (upper-case hex),
// for a caller that has the sum already.
func FingerprintHex(sum [sha256.Size]byte) string {
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// FormatSerial returns a serial number as even-length upper-case hex, the
// way certportal shows every serial ("01" for the root).
func FormatSerial(n *big.Int) string {
	s := strings.ToUpper(n.Text(16))
	if len(s)%2 == 1 {
		s = "0" + s
	}
	return s
}

// NormalizeHex turns a serial or thumbprint as a user may type or paste it
// into the canonical upper-case hex form: any case, with or without colons
// or spaces, and without the invisible U+200E that Windows adds when a
// thumbprint is copied. Leading zero bytes of a serial are kept as typed,
// except that an odd length gets one leading zero.
func NormalizeHex(s string) (string, error) {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == ':' || r == ' ' || r == '\t' || r == '\u200e' || r == '\u200f' || r == '\ufeff':
			continue
		case r >= '0' && r <= '9' || r >= 'A' && r <= 'F':
			b.WriteRune(r)
		case r >= 'a' && r <= 'f':
			b.WriteRune(r - 'a' + 'A')
		default:
			return "", Errorf(Invalid, "%q is not a hexadecimal serial number or thumbprint", s)
		}
	}
	out := b.String()
	if out == "" {
		return "", Errorf(Invalid, "the serial number or thumbprint is empty")
	}
	if len(out)%2 == 1 {
		out = "0" + out
	}
	return out, nil
}

// NormalizeSerial parses a typed serial number and returns it in the form
// FormatSerial gives, so "0x01", "1" and "01" all name the root.
func NormalizeSerial(s string) (string, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "0x"), "0X")
	h, err := NormalizeHex(s)
	if err != nil {
		return "", err
	}
	n, ok := new(big.Int).SetString(h, 16)
	if !ok {
		return "", Errorf(Invalid, "%q is not a serial number", s)
	}
	if len(h) > 40 {
		return "", Errorf(Invalid, "%q is longer than a serial number can be (20 bytes)", s)
	}
	return FormatSerial(n), nil
}

// Why InsertCertificate refused a certificate (Conflict), for errors.Is:
// each breaks a different rule and calls for a different answer (a new
// serial, or a refusal).
var (
	ErrSerialTaken            = errors.New("a certificate with this serial number exists")
	ErrFingerprintTaken       = errors.New("a certificate with this SHA-256 fingerprint exists")
	ErrValidCertificateExists = errors.New("the account already has a valid certificate")
)
