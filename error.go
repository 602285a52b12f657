// Package certportal holds the domain of the certificate portal: accounts,
// certificates, revocations, sessions and audit events, the interfaces of the
// services that store and deliver them, and the one error type every package
// returns. It imports no database, HTTP or mail code; the packages that do
// (sqlite, postgres, web, mail) implement or use what is declared here.
package certportal

import (
	"errors"
	"fmt"
)

// ErrorCode classifies an Error so callers can react without matching strings.
// The web package maps codes to HTTP statuses in one place; the command line
// maps them to exit statuses.
type ErrorCode string

// Error codes. They say what kind of failure happened, not where.
const (
	Invalid      ErrorCode = "invalid"      // malformed or unacceptable input
	NotFound     ErrorCode = "not_found"    // no such account, certificate, ...
	Conflict     ErrorCode = "conflict"     // the thing exists already, or changed meanwhile
	Unauthorized ErrorCode = "unauthorized" // wrong or missing credentials
	Forbidden    ErrorCode = "forbidden"    // right credentials, but not allowed
	Locked       ErrorCode = "locked"       // too many wrong passwords
	RateLimited  ErrorCode = "rate_limited" // too many requests of one kind
	Unavailable  ErrorCode = "unavailable"  // a dependency (database, mail) is down
	Internal     ErrorCode = "internal"     // a bug or an unexpected failure
)

// Error is the error type of certportal. Message is written for the person
// who will read it (what went wrong, what to do); Op names the operation for
// logs; Err is the underlying cause, if any, and is never shown to end users.
type Error struct {
	Code    ErrorCode
	Op      string
	Message string
	Err     error
}

// Error returns the message, prefixed with the operation when one is set.
func (e *Error) Error() string {
	msg := e.Message
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	if msg == "" {
		msg = string(e.Code)
	}
	if e.Op != "" {
		return e.Op + ": " + msg
	}
	return msg
}

// Unwrap returns the cause, so errors.Is and errors.As see through an Error.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// WrapError returns an *Error with code and message whose cause is err.
func WrapError(code ErrorCode, err error, message string) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

// ErrorCodeOf returns the code of the first *Error in err's chain, Internal
// for any other non-nil error, and "" for nil.
func ErrorCodeOf(err error) ErrorCode {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// ErrorMessage returns the user-facing message of the first *Error in err's
// chain, or a generic sentence for any other error, so internal details
// (paths, SQL, stack traces) never reach a page or a terminal by accident.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Message != "" {
		return e.Message
	}
	return "an internal error occurred; the details are in the server log"
}
