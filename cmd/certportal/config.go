package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/mail"
	"github.com/certportal/certportal/portal"
	"github.com/certportal/certportal/postgres"
	"github.com/certportal/certportal/sqlite"
)

// Config is the portal's configuration file, DATA/config.json. It is
// written by init and read by every command that touches the data.
type Config struct {
	// InstallationID is the OU of the CA names, unique per installation.
	InstallationID string `json:"installation_id"`
	// URL is the plain-HTTP base URL put into certificates (CRL, OCSP, CA
	// issuers); PortalURL is the HTTPS address users open.
	URL        string   `json:"url"`
	PortalURL  string   `json:"portal_url"`
	Hostnames  []string `json:"hostnames"`
	Listen     string   `json:"listen"`
	HTTPListen string   `json:"http_listen"`
	// DB is "sqlite:PATH" (relative to the data dir) or a postgres:// URL
	// without a password.
	DB          string `json:"db"`
	UserKeyType string `json:"user_key_type"`
	MailFrom    string `json:"mail_from"`
	// SMTP is an smtp:// or smtps:// URL without a password; the password
	// may be given here in SMTPPassword (the file is 0600).
	SMTP         string `json:"smtp,omitempty"`
	SMTPPassword string `json:"smtp_password,omitempty"`

	TempPasswordTTL  duration `json:"temp_password_ttl"`
	LockoutThreshold int      `json:"lockout_threshold"`
	LockoutWindow    duration `json:"lockout_window"`
	LockoutDuration  duration `json:"lockout_duration"`
	SessionIdle      duration `json:"session_idle"`
	SessionMax       duration `json:"session_max"`
	RecoveriesPerDay int      `json:"recoveries_per_day"`
	// RenewWindow is how long before expiry a user may renew a certificate
	// (30 days); ReminderDays the days before expiry on which reminders are
	// mailed ([30, 7, 1]; [] for none).
	RenewWindow  duration `json:"renew_window"`
	ReminderDays []int    `json:"reminder_days"`
	// RootCRLDays is the time from thisUpdate to nextUpdate of the root
	// CRL that init, ca rollover and ca root-crl sign (365).
	RootCRLDays int `json:"root_crl_days"`
}

// duration is a time.Duration written as "24h0m0s" in JSON.
type duration time.Duration

func (d duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = duration(v)
	return nil
}

const (
	configFile = "config.json"
	caDir      = "ca"
	dbFile     = "certportal.db"
	outboxDir  = "outbox"
)

// defaultConfig returns the configuration init writes, before flags.
func defaultConfig() Config {
	p := certportal.Policy{}.Resolved()
	return Config{
		URL:              "http://localhost:8080",
		PortalURL:        "https://localhost:8443",
		Hostnames:        []string{"localhost", "127.0.0.1"},
		Listen:           "127.0.0.1:8443",
		HTTPListen:       "127.0.0.1:8080",
		DB:               "sqlite:" + dbFile,
		UserKeyType:      string(ca.P256),
		MailFrom:         "certportal <certportal@localhost>",
		TempPasswordTTL:  duration(p.TempPasswordTTL),
		LockoutThreshold: p.LockoutThreshold,
		LockoutWindow:    duration(p.LockoutWindow),
		LockoutDuration:  duration(p.LockoutDuration),
		SessionIdle:      duration(p.SessionIdle),
		SessionMax:       duration(p.SessionMax),
		RecoveriesPerDay: p.RecoveriesPerDay,
		RenewWindow:      duration(p.RenewWindow),
		ReminderDays:     p.ReminderDays,
		RootCRLDays:      int(ca.DefaultRootCRLLifetime / (24 * time.Hour)),
	}
}

// maxRootCRLDays: the root lives ten years, and a root CRL valid longer
// than its root serves nobody.
const maxRootCRLDays = 3653

// rootCRLLifetime is root_crl_days as a duration, checked.
func (c *Config) rootCRLLifetime() (time.Duration, error) {
	if c.RootCRLDays < 1 || c.RootCRLDays > maxRootCRLDays {
		return 0, certportal.Errorf(certportal.Invalid, "root_crl_days in %s is %d; give a number of days from 1 to %d (365 is usual)", configFile, c.RootCRLDays, maxRootCRLDays)
	}
	return time.Duration(c.RootCRLDays) * 24 * time.Hour, nil
}

// loadConfig reads DATA/config.json.
func loadConfig(dir string) (*Config, error) {
	b, err := os.ReadFile(filepath.Join(dir, configFile))
	if os.IsNotExist(err) {
		return nil, certportal.Errorf(certportal.NotFound, "%s is not a certportal data directory (no %s); create one with 'certportal init --data %s'", dir, configFile, dir)
	}
	if err != nil {
		return nil, certportal.WrapError(certportal.Internal, err, "cannot read the configuration file in "+dir)
	}
	c := defaultConfig()
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, certportal.WrapError(certportal.Invalid, err, fmt.Sprintf("the configuration file %s is not valid JSON: %v", filepath.Join(dir, configFile), err))
	}
	return &c, nil
}

// keywordPassword finds a password in a keyword connection string
// ("host=db password=..."), which is refused like one in a URL.
var keywordPassword = regexp.MustCompile(`(?i)(^|\s)password\s*=`)

// checkSecretFreeURL refuses a --db or --smtp URL that carries a password:
// command lines are visible to every user of the machine.
func checkSecretFreeURL(flag, raw, alternatives string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return certportal.Errorf(certportal.Invalid, "the %s URL is malformed", flag)
	}
	if _, has := u.User.Password(); has || strings.Contains(strings.ToLower(u.RawQuery), "password=") || keywordPassword.MatchString(raw) {
		return certportal.Errorf(certportal.Invalid, "the %s URL must not contain a password (command lines are visible to other users); use %s instead", flag, alternatives)
	}
	return nil
}

// env is everything a data command needs, opened from the data dir.
type env struct {
	dir    string
	cfg    *Config
	store  certportal.Store
	ca     *ca.Authority
	svc    *portal.Service
	mailer certportal.Mailer
}

func (e *env) Close() error { return e.store.Close() }

// openEnv opens the data dir: config, database (--db or the config's),
// CA and the portal service.
func (a *app) openEnv(ctx context.Context, log *slog.Logger) (*env, error) {
	return a.openEnvWith(ctx, log, nil)
}

// openEnvWith is openEnv with a hook that may adjust the configuration
// (serve's flags) before anything is opened.
func (a *app) openEnvWith(ctx context.Context, log *slog.Logger, adjust func(*Config) error) (*env, error) {
	cfg, err := loadConfig(a.dataDir)
	if err != nil {
		return nil, err
	}
	if adjust != nil {
		if err := adjust(cfg); err != nil {
			return nil, err
		}
	}
	dsn := cfg.DB
	if a.dbURL != "" {
		dsn = a.dbURL
	}
	if err := checkSecretFreeURL("--db", dsn, "PGPASSWORD or ~/.pgpass"); err != nil {
		return nil, err
	}
	if hosts, mode, bad := postgres.Unverified(dsn); bad {
		if log == nil {
			log = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		}
		log.Warn("the connection to PostgreSQL is not verified: anyone on the network path can read it or pose as the server; add sslmode=verify-full&sslrootcert=FILE to --db",
			"hosts", strings.Join(hosts, ","), "sslmode", mode)
	}
	store, err := openStore(ctx, a.dataDir, dsn, false)
	if err != nil {
		return nil, err
	}
	auth, err := ca.Load(filepath.Join(a.dataDir, caDir), cfg.URL)
	if err != nil {
		store.Close()
		return nil, err
	}
	mailer, err := newMailer(cfg, a.dataDir)
	if err != nil {
		store.Close()
		return nil, err
	}
	svc := portal.New(store, auth, mailer, portal.Config{
		PortalURL:   cfg.PortalURL,
		UserKeyType: ca.KeyType(cfg.UserKeyType),
		Policy: certportal.Policy{
			TempPasswordTTL:  time.Duration(cfg.TempPasswordTTL),
			LockoutThreshold: cfg.LockoutThreshold,
			LockoutWindow:    time.Duration(cfg.LockoutWindow),
			LockoutDuration:  time.Duration(cfg.LockoutDuration),
			SessionIdle:      time.Duration(cfg.SessionIdle),
			SessionMax:       time.Duration(cfg.SessionMax),
			RecoveriesPerDay: cfg.RecoveriesPerDay,
			RenewWindow:      time.Duration(cfg.RenewWindow),
			ReminderDays:     cfg.ReminderDays,
		},
	}, log)
	if svc.AuditKey, _, err = loadAuditKey(a.dataDir, false); err != nil {
		store.Close()
		return nil, err
	}
	svc.CheckpointLog = filepath.Join(a.dataDir, checkpointLogFile)
	return &env{dir: a.dataDir, cfg: cfg, store: store, ca: auth, svc: svc, mailer: mailer}, nil
}

// openStore opens the database named by dsn.
func openStore(ctx context.Context, dir, dsn string, create bool) (certportal.Store, error) {
	if err := checkSecretFreeURL("--db", dsn, "PGPASSWORD or ~/.pgpass"); err != nil {
		return nil, err
	}
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		p := strings.TrimPrefix(dsn, "sqlite:")
		if p == "" {
			p = dbFile
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		return sqlite.Open(ctx, p, create)
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return openPostgres(ctx, dsn, create)
	}
	// Not echoed: a connection string of another form may hold a secret.
	return nil, certportal.Errorf(certportal.Invalid, "the --db value is not supported: use sqlite:PATH or a postgres:// URL (keyword strings such as host=... are not accepted)")
}

// newMailer returns the SMTP mailer when configured, else the outbox.
func newMailer(cfg *Config, dir string) (certportal.Mailer, error) {
	if cfg.SMTP == "" {
		return &mail.Outbox{Dir: filepath.Join(dir, outboxDir), From: cfg.MailFrom, Now: time.Now}, nil
	}
	if err := checkSecretFreeURL("--smtp", cfg.SMTP, "--smtp-password-file or the config file"); err != nil {
		return nil, err
	}
	return mail.NewSMTP(mail.SMTPConfig{URL: cfg.SMTP, Password: cfg.SMTPPassword, From: cfg.MailFrom, Timeout: 20 * time.Second})
}
