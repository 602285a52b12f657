// Package mail delivers certportal's mail: Outbox writes each message as an
// .eml file (the default, so a fresh installation needs no mail server), and
// SMTP hands it to a mail server. Both implement certportal.Mailer and build
// the message the same way, with github.com/wneessen/go-mail.
// It only delivers: the wording of every mail lives in portal (notices.go),
// which decides what to say.
package mail

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	netmail "net/mail"
	"strings"
	"time"

	"github.com/certportal/certportal"
	gomail "github.com/wneessen/go-mail"
)

// op is the Op of every error this package returns, so Error() reads
// "mail: ..." while certportal.ErrorMessage shows only the sentence.
const op = "mail"

// defaultFrom is the sender when none is configured: a mail still needs a
// From header, and a local address is honest about where it came from.
const defaultFrom = "certportal <certportal@localhost>"

// maxLineOctets is the RFC 5322 §2.1.1 limit on a line, without CRLF. A body
// with a longer line cannot go out as 7bit or 8bit and is quoted-printable.
const maxLineOctets = 998

// errorf returns a *certportal.Error of this package.
func errorf(code certportal.ErrorCode, cause error, message string) *certportal.Error {
	return &certportal.Error{Code: code, Op: op, Message: message, Err: cause}
}

// composed is a message ready to be written: the go-mail message and the
// unique ID it carries, which the outbox also uses as file name.
type composed struct {
	msg *gomail.Msg
	id  string // time stamp and random part, without the domain
}

// compose builds the RFC 5322 message for m. now dates it; rnd feeds the
// random part of the Message-ID. allow8bit says whether the body may travel
// unencoded (the outbox, and a server that announces 8BITMIME, RFC 6152); an
// unencoded body is what lets an administrator reading the file see
// "Temporary password: ..." exactly as the user must type it.
func compose(m certportal.Mail, from string, now time.Time, rnd io.Reader, allow8bit bool) (*composed, error) {
	if len(m.To) == 0 {
		return nil, errorf(certportal.Invalid, nil, "the mail has no recipient")
	}
	if from == "" {
		from = defaultFrom
	}
	sender, err := netmail.ParseAddress(from)
	if err != nil {
		return nil, errorf(certportal.Invalid, err, "the sender address "+quote(from)+" is not a valid e-mail address")
	}
	id := m.ID
	if id == "" {
		if id, err = messageID(now, rnd); err != nil {
			return nil, err
		}
	} else if !stableID(id) {
		return nil, errorf(certportal.Invalid, nil, "the mail's ID "+quote(id)+" may hold only letters, digits, '.' and '-'")
	}
	body := normalizeBody(m.Body)
	enc := chooseEncoding(body, allow8bit)

	msg := gomail.NewMsg(
		gomail.WithCharset(gomail.CharsetUTF8),
		gomail.WithEncoding(enc),
		// The default User-Agent names the library version, which would
		// change the files with every upgrade and tells outsiders nothing useful.
		gomail.WithNoDefaultUserAgent(),
	)
	msg.FromMailAddress(sender)
	for _, to := range m.To {
		addr, err := netmail.ParseAddress(to)
		if err != nil {
			return nil, errorf(certportal.Invalid, err, "the recipient address "+quote(to)+" is not a valid e-mail address")
		}
		msg.AddToMailAddress(addr)
	}
	msg.Subject(cleanSubject(m.Subject))
	msg.SetDateWithValue(now)
	msg.SetMessageIDWithValue(id + "@" + domainOf(sender.Address))
	msg.SetBodyString(gomail.TypeTextPlain, body)
	return &composed{msg: msg, id: id}, nil
}

// messageID returns a unique, time-sortable identifier such as
// 20261125T091500.123456789Z-1f2e3d4c5b6a7988. It is valid as the left part
// of a Message-ID and as a file name.
func messageID(now time.Time, rnd io.Reader) (string, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	// 8 random bytes: two mails in the same nanosecond still differ, with a
	// collision chance far below any disk's error rate.
	var b [8]byte
	if _, err := io.ReadFull(rnd, b[:]); err != nil {
		return "", errorf(certportal.Internal, err, "no random numbers for the message ID")
	}
	// A fixed-width stamp (9 fraction digits, always UTC) sorts as text
	// in time order.
	return now.UTC().Format("20060102T150405.000000000Z") + "-" + hex.EncodeToString(b[:]), nil
}

// stableID reports whether a caller's mail ID (certportal.Mail.ID) is
// safe as the left part of a Message-ID and as a file name.
func stableID(id string) bool {
	if id == "" || len(id) > 100 || id[0] == '.' || id[0] == '-' {
		return false
	}
	for _, c := range []byte(id) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// domainOf returns the domain of an address, for the right side of a
// Message-ID.
func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 && i+1 < len(addr) {
		return addr[i+1:]
	}
	return "localhost"
}

// cleanSubject folds line breaks and other control characters into single
// spaces: a subject is one line, and a newline in it would start a header
// of the caller's choosing.
func cleanSubject(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return r < ' ' || r == 0x7f || r == ' '
	}), " ")
}

// normalizeBody makes the body valid UTF-8 with CRLF line ends (RFC 5322
// §2.3; go-mail writes an unencoded body as given) and a final line break.
func normalizeBody(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return strings.ReplaceAll(s, "\n", "\r\n")
}

// chooseEncoding picks the Content-Transfer-Encoding of a CRLF body. The
// body goes out unencoded (labelled 8bit) whenever it may: go-mail v0.8.1
// quoted-printable-encodes a body it labels 7bit ("=" turns into "=3D" under
// a 7bit label, which corrupts passwords), and 8bit is a correct label for
// ASCII text too (RFC 2045 §2.8). Quoted-printable is left for a line longer
// than RFC 5322 allows, a NUL, or a server without 8BITMIME (allow8bit false).
func chooseEncoding(body string, allow8bit bool) gomail.Encoding {
	if !allow8bit {
		return gomail.EncodingQP
	}
	for line := range strings.SplitSeq(body, "\r\n") {
		if len(line) > maxLineOctets || strings.IndexByte(line, 0) >= 0 {
			return gomail.EncodingQP
		}
	}
	return gomail.NoEncoding
}

// quote returns s in double quotes, shortened so that an absurd input does
// not turn into an absurd message.
func quote(s string) string {
	const max = 80
	if len(s) > max {
		s = s[:max] + "..."
	}
	return `"` + strings.ToValidUTF8(s, "?") + `"`
}
