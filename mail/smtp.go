package mail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	netmail "net/mail"
	"net/netip"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/certportal/certportal"
	gomail "github.com/wneessen/go-mail"
)

// URL schemes of an SMTP server.
const (
	// SchemeSMTP is submission with STARTTLS, which is required: the
	// message carries a temporary password. Port 587 unless given.
	SchemeSMTP = "smtp"
	// SchemeSMTPS is submission over implicit TLS (RFC 8314). Port 465
	// unless given.
	SchemeSMTPS = "smtps"
	// SchemeSMTPInsecure is plain SMTP without TLS and without sign-in, for
	// a mail catcher on the same machine (MailHog, Mailpit, a test server).
	// It is refused for any host other than localhost or a loopback address,
	// and the port must be given.
	SchemeSMTPInsecure = "smtp+insecure"
)

// DefaultSMTPTimeout bounds connecting and each exchange with the mail
// server when SMTPConfig.Timeout is zero: long enough for a slow server, short
// enough that a user waiting on a page gets an answer.
const DefaultSMTPTimeout = 30 * time.Second

// SMTPConfig configures an SMTP mailer. It is filled in by cmd/ from flags
// and the config file.
type SMTPConfig struct {
	// URL is smtp://[user@]host[:port] (STARTTLS required, port 587),
	// smtps://[user@]host[:port] (implicit TLS, port 465) or
	// smtp+insecure://host:port (no TLS, no sign-in, loopback hosts only).
	// It never carries a password: see ParseSMTPURL.
	URL string
	// Password signs in as the URL's user (from --smtp-password-file or the
	// config file). It is never logged or put into an error.
	Password string
	// From is the sender address; empty means "certportal <certportal@localhost>".
	From string
	// RootCAs verifies the server's certificate; nil means the system roots.
	RootCAs *x509.CertPool
	// Timeout bounds connecting and each exchange with the server; zero
	// means DefaultSMTPTimeout.
	Timeout time.Duration
	// Now dates messages; nil means time.Now.
	Now func() time.Time
}

// SMTPURL is a parsed and checked SMTP server URL.
type SMTPURL struct {
	Scheme   string // SchemeSMTP, SchemeSMTPS or SchemeSMTPInsecure
	Host     string // host name or IP address, without brackets
	Port     int
	Username string // empty: no sign-in
}

// ParseSMTPURL parses and checks an SMTP server URL (see SMTPConfig.URL).
// A URL that carries a password is refused, because URLs end up in shell
// history, process lists and logs; the error names the alternatives. All
// errors are certportal.Invalid, and none repeats the URL, which might hold
// a secret.
func ParseSMTPURL(raw string) (SMTPURL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's error repeats the whole URL, password included, so it
		// is not kept as the cause.
		return SMTPURL{}, errorf(certportal.Invalid, nil,
			"the SMTP URL is malformed; write smtp://user@host:587 or smtps://user@host:465")
	}
	if _, has := u.User.Password(); has {
		return SMTPURL{}, errorf(certportal.Invalid, nil,
			"the SMTP URL must not contain a password; give it with --smtp-password-file or in the config file, and write the URL as smtp://user@host")
	}
	var p SMTPURL
	switch strings.ToLower(u.Scheme) {
	case SchemeSMTP:
		p.Scheme, p.Port = SchemeSMTP, 587
	case SchemeSMTPS:
		p.Scheme, p.Port = SchemeSMTPS, 465
	case SchemeSMTPInsecure:
		p.Scheme = SchemeSMTPInsecure
	default:
		return SMTPURL{}, errorf(certportal.Invalid, nil,
			"the SMTP URL scheme "+quote(u.Scheme)+" is not known; use smtp:// (STARTTLS), smtps:// (TLS) or smtp+insecure:// (local tests only)")
	}
	if u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return SMTPURL{}, errorf(certportal.Invalid, nil,
			"the SMTP URL must be only scheme, user, host and port, such as smtp://user@host:587")
	}
	p.Host = u.Hostname()
	if p.Host == "" {
		return SMTPURL{}, errorf(certportal.Invalid, nil, "the SMTP URL has no host name, such as smtp://mail.example.com")
	}
	if port := u.Port(); port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return SMTPURL{}, errorf(certportal.Invalid, nil, "the SMTP URL's port "+quote(port)+" is not a number from 1 to 65535")
		}
		p.Port = n
	}
	p.Username = u.User.Username()
	if p.Scheme == SchemeSMTPInsecure {
		if !isLoopback(p.Host) {
			return SMTPURL{}, errorf(certportal.Invalid, nil,
				"smtp+insecure:// sends mail unencrypted and is allowed only to localhost or a loopback address; use smtp:// or smtps:// for "+quote(p.Host))
		}
		if p.Port == 0 {
			return SMTPURL{}, errorf(certportal.Invalid, nil, "an smtp+insecure:// URL needs a port, such as smtp+insecure://localhost:1025")
		}
		if p.Username != "" {
			return SMTPURL{}, errorf(certportal.Invalid, nil,
				"smtp+insecure:// cannot sign in, since the password would travel unencrypted; drop the user or use smtp:// or smtps://")
		}
	}
	return p, nil
}

// isLoopback reports whether host is localhost or a loopback IP address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// Address returns host:port, for dialing and for messages.
func (p SMTPURL) Address() string {
	return net.JoinHostPort(p.Host, strconv.Itoa(p.Port))
}

// SMTP delivers mail through an SMTP server, one connection per message.
// Send returns once the server has accepted the message. An SMTP is safe
// for concurrent use.
type SMTP struct {
	url      SMTPURL
	password string
	from     string
	tls      *tls.Config
	timeout  time.Duration
	now      func() time.Time
}

var _ certportal.Mailer = (*SMTP)(nil)

// NewSMTP checks cfg and returns a mailer for it. It does not connect: a
// mail server that is down at start-up should not stop the portal, whose
// sends will report it.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	p, err := ParseSMTPURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Password != "" && p.Username == "" {
		return nil, errorf(certportal.Invalid, nil,
			"an SMTP password was given but the SMTP URL names no user; write it as smtp://user@host")
	}
	if cfg.Password == "" && p.Username != "" {
		return nil, errorf(certportal.Invalid, nil,
			"the SMTP URL names user "+quote(p.Username)+" but no password was given; use --smtp-password-file or the config file")
	}
	from := cfg.From
	if from == "" {
		from = defaultFrom
	}
	if _, err := mailAddress(from); err != nil {
		return nil, err
	}
	if cfg.Timeout < 0 {
		return nil, errorf(certportal.Invalid, nil, "the SMTP timeout must not be negative")
	}
	s := &SMTP{
		url:      p,
		password: cfg.Password,
		from:     from,
		timeout:  cfg.Timeout,
		now:      cfg.Now,
		tls: &tls.Config{
			ServerName: p.Host,
			RootCAs:    cfg.RootCAs,
			MinVersion: tls.VersionTLS12, // RFC 8996 retired 1.0 and 1.1
		},
	}
	if s.timeout == 0 {
		s.timeout = DefaultSMTPTimeout
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Send delivers m. Its errors are certportal.Unavailable (the server cannot
// be reached, is not trusted, refuses the portal's sign-in or the message)
// or certportal.Invalid (a malformed address, or a recipient the server
// refuses for good); they name the server but never the password.
//
// ctx can stop the connection attempt; once connected, each exchange is
// bounded by the Timeout instead, so a send is never cut off between the
// server accepting the message and Send reporting it.
func (s *SMTP) Send(ctx context.Context, m certportal.Mail) error {
	if err := ctx.Err(); err != nil {
		return errorf(certportal.Unavailable, err, "sending the mail was cancelled")
	}
	client, err := s.client()
	if err != nil {
		return err
	}
	conn, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return s.failure(err)
	}
	defer func() { _ = client.CloseWithSMTPClient(conn) }()

	has8bit, _ := conn.Extension("8BITMIME")
	c, err := compose(m, s.from, s.now(), nil, has8bit)
	if err != nil {
		return err
	}
	if err := client.SendWithSMTPClient(conn, c.msg); err != nil {
		return s.failure(err)
	}
	return nil
}

// client returns a go-mail client for one delivery.
func (s *SMTP) client() (*gomail.Client, error) {
	opts := []gomail.Option{
		gomail.WithPort(s.url.Port),
		gomail.WithTimeout(s.timeout),
		gomail.WithTLSConfig(s.tls),
	}
	switch s.url.Scheme {
	case SchemeSMTPS:
		opts = append(opts, gomail.WithSSL())
	case SchemeSMTP:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if s.url.Username != "" {
		// Auto-discovery takes the strongest mechanism the server offers
		// (SCRAM before PLAIN and LOGIN) and, on an unencrypted connection,
		// none that would expose the password.
		opts = append(opts,
			gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(s.url.Username),
			gomail.WithPassword(s.password))
	}
	c, err := gomail.NewClient(s.url.Host, opts...)
	if err != nil {
		return nil, errorf(certportal.Internal, s.redact(err), "the mail client could not be set up")
	}
	return c, nil
}

// failure turns an error of go-mail into a *certportal.Error whose message
// says what an administrator can check. The cause is kept for the log, with
// the password scrubbed from its text should a server ever echo it.
func (s *SMTP) failure(err error) error {
	addr := s.url.Address()
	cause := s.redact(err)
	var (
		sendErr *gomail.SendError
		tpErr   *textproto.Error
		netErr  net.Error
		verify  *tls.CertificateVerificationError
		record  tls.RecordHeaderError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
	)
	switch {
	case errors.Is(err, context.Canceled):
		return errorf(certportal.Unavailable, cause, "sending the mail was cancelled")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return errorf(certportal.Unavailable, cause,
			"the mail server at "+addr+" did not answer in time; try again later")
	case errors.As(err, &verify), errors.As(err, &unknown), errors.As(err, &host), errors.As(err, &invalid):
		return errorf(certportal.Unavailable, cause,
			"the mail server at "+addr+" presented a certificate that is not trusted for that name; check the host name in --smtp and the server's certificate")
	case errors.As(err, &record):
		return errorf(certportal.Unavailable, cause,
			"the mail server at "+addr+" did not answer with TLS; smtps:// expects TLS from the start (port 465), smtp:// uses STARTTLS (port 587)")
	case errors.As(err, &sendErr):
		return s.sendFailure(sendErr, cause)
	case errors.Is(err, gomail.ErrNoSupportedAuthDiscovered):
		return errorf(certportal.Unavailable, cause,
			"the mail server at "+addr+" offers no sign-in method the portal can use safely")
	case errors.As(err, &tpErr) && (tpErr.Code == 535 || tpErr.Code == 534 || tpErr.Code == 454 || tpErr.Code == 530):
		// Unavailable rather than Unauthorized: the person waiting on the
		// page did nothing wrong; the portal's own mail account is refused.
		return errorf(certportal.Unavailable, cause,
			"the mail server at "+addr+" refused the portal's sign-in as "+quote(s.url.Username)+"; check the user in --smtp and the password in --smtp-password-file")
	case errors.As(err, &tpErr):
		return errorf(certportal.Unavailable, cause,
			"the mail server at "+addr+" refused the connection (SMTP code "+strconv.Itoa(tpErr.Code)+"); try again later")
	case errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(certportal.Unavailable, cause,
			"the mail server at "+addr+" could not be reached; check --smtp and that the server is running")
	default:
		// For instance a server without STARTTLS on an smtp:// URL: go-mail
		// gives such failures no type to tell them apart.
		return errorf(certportal.Unavailable, cause,
			"the mail server at "+addr+" could not be used (connection, STARTTLS or sign-in failed); the server log has details")
	}
}

// sendFailure reports a failure after the session was set up.
func (s *SMTP) sendFailure(e *gomail.SendError, cause error) error {
	addr := s.url.Address()
	switch {
	case e.Reason == gomail.ErrSMTPRcptTo && !e.IsTemp():
		return errorf(certportal.Invalid, cause,
			"the mail server at "+addr+" refused the recipient address")
	case e.IsTemp():
		return errorf(certportal.Unavailable, cause,
			"the mail server at "+addr+" is not accepting mail at the moment; try again later")
	default:
		return errorf(certportal.Unavailable, cause,
			"the mail server at "+addr+" did not accept the message")
	}
}

// redact returns err, or a plain copy of its text with the password blotted
// out if the text contains it. The copy loses err's chain, which is a small
// price for keeping a secret out of the log.
func (s *SMTP) redact(err error) error {
	if err == nil || s.password == "" || !strings.Contains(err.Error(), s.password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), s.password, "[password]"))
}

// mailAddress parses one address, with a message for a person.
func mailAddress(s string) (string, error) {
	a, err := netmail.ParseAddress(s)
	if err != nil {
		return "", errorf(certportal.Invalid, err, "the sender address "+quote(s)+" is not a valid e-mail address")
	}
	return a.Address, nil
}
