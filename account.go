package certportal

import (
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// SignInMethod is how an account signs in. A new account signs in by
// password; issuing a certificate switches it to certificate, and recovery
// switches it back.
type SignInMethod string

// The two sign-in methods.
const (
	MethodPassword    SignInMethod = "password"
	MethodCertificate SignInMethod = "certificate"
)

// AccountStatus says whether an account may still sign in.
type AccountStatus string

// Account statuses. A cancelled account keeps its records but cannot sign in.
const (
	StatusActive    AccountStatus = "active"
	StatusCancelled AccountStatus = "cancelled"
)

// Account is a user of the portal.
type Account struct {
	// ID is the user ID as registered (its case is kept); IDs are unique
	// case-insensitively.
	ID    string
	Email string
	// PasswordHash is an argon2id hash in the PHC string format.
	PasswordHash string
	// PasswordExpires is set for a temporary password; zero means never.
	PasswordExpires time.Time
	Method          SignInMethod
	Status          AccountStatus
	// Role is what the account may do in the admin console; "" is read
	// as RoleUser (see RoleOf).
	Role    Role
	Created time.Time
	Updated time.Time
}

// RoleOf returns the account's role, RoleUser when none is set.
func (a *Account) RoleOf() Role {
	if a.Role == "" {
		return RoleUser
	}
	return a.Role
}

// Limits of account fields.
const (
	MaxIDLength       = 64
	MinPasswordLength = 10  // bytes
	MaxPasswordLength = 256 // bytes; longer ones would only feed a hashing DoS
	MaxEmailLength    = 254 // RFC 5321 path limit
)

// ValidateID checks a user ID: 1–64 characters of A-Z a-z 0-9 . _ @ -.
func ValidateID(id string) error {
	if id == "" {
		return Errorf(Invalid, "the user ID is empty")
	}
	if len(id) > MaxIDLength {
		return Errorf(Invalid, "the user ID is longer than %d characters", MaxIDLength)
	}
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			r == '.' || r == '_' || r == '@' || r == '-'
		if !ok {
			return Errorf(Invalid, "the user ID %q may contain only letters A-Z and a-z, digits and . _ @ -", id)
		}
	}
	return nil
}

// ValidateEmail checks a registered e-mail address: a plain ASCII
// addr-spec (it goes into certificates as an rfc822Name, which is IA5String).
func ValidateEmail(email string) error {
	if email == "" {
		return Errorf(Invalid, "the e-mail address is empty")
	}
	if len(email) > MaxEmailLength {
		return Errorf(Invalid, "the e-mail address is too long")
	}
	for i := 0; i < len(email); i++ {
		if c := email[i]; c <= ' ' || c >= 0x7f {
			return Errorf(Invalid, "the e-mail address %q must be plain ASCII without spaces", email)
		}
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || a.Name != "" {
		return Errorf(Invalid, "%q is not an e-mail address", email)
	}
	at := strings.LastIndexByte(email, '@')
	if at <= 0 || at == len(email)-1 || strings.HasPrefix(email[at+1:], "[") {
		return Errorf(Invalid, "%q is not an e-mail address", email)
	}
	return nil
}

// MinP12Password is the shortest password for a certificate file
// (PKCS#12), in characters: the file leaves the server and can be attacked
// offline.
const MinP12Password = 12

// ValidateP12Password checks a password for a certificate file: at least
// MinP12Password characters of valid UTF-8, none outside the Basic
// Multilingual Plane (PKCS#12 passwords are BMPString).
func ValidateP12Password(pw string) error {
	if !utf8.ValidString(pw) {
		return Errorf(Invalid, "the password for the certificate file is not valid UTF-8 text")
	}
	if n := utf8.RuneCountInString(pw); n < MinP12Password {
		return Errorf(Invalid, "the password for the certificate file must have at least %d characters", MinP12Password)
	}
	for _, r := range pw {
		if r > 0xFFFF {
			return Errorf(Invalid, "the password for the certificate file may not contain emoji or other characters outside the Basic Multilingual Plane")
		}
	}
	return nil
}

// NormalizePassword is the form in which a password is hashed and
// checked: Unicode NFC, so that "é" typed as one code point (Windows,
// Linux) or as "e" and a combining accent (macOS keyboards) is the same
// password.
func NormalizePassword(pw string) string { return norm.NFC.String(pw) }

// ValidatePassword checks the length of an account password (in its
// normalised form).
func ValidatePassword(pw string) error {
	pw = NormalizePassword(pw)
	if len(pw) == 0 {
		return Errorf(Invalid, "the password is empty")
	}
	if len(pw) < MinPasswordLength {
		return Errorf(Invalid, "the password must have at least %d characters", MinPasswordLength)
	}
	if len(pw) > MaxPasswordLength {
		return Errorf(Invalid, "the password must have at most %d bytes", MaxPasswordLength)
	}
	return nil
}

// IDKey returns the form of an ID used to compare IDs: IDs are unique
// case-insensitively, and only ASCII is allowed, so lower-casing suffices.
func IDKey(id string) string { return strings.ToLower(id) }
