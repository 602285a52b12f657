package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/valyala/fasthttp"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/metrics"
	"github.com/certportal/certportal/web"
)

type serveOptions struct {
	listen, httpListen string
	smtp, smtpPwFile   string
	tlsCert, tlsKey    string
	metricsListen      string
	pprof              bool
}

func (a *app) serveFlags(c *cobra.Command, o *serveOptions) {
	c.Flags().StringVar(&o.listen, "listen", "", "HTTPS address (default from the config, 127.0.0.1:8443)")
	c.Flags().StringVar(&o.httpListen, "http-listen", "", "plain-HTTP address for /ca, /crl and /ocsp only (default 127.0.0.1:8080)")
	c.Flags().StringVar(&o.smtp, "smtp", "", "send mail through smtp://user@host:port (STARTTLS) or smtps://...; default: .eml files in DATA/outbox")
	c.Flags().StringVar(&o.smtpPwFile, "smtp-password-file", "", "file holding the SMTP password")
	c.Flags().StringVar(&o.tlsCert, "tls-cert", "", "serve this TLS certificate chain (PEM) instead of the one init made")
	c.Flags().StringVar(&o.tlsKey, "tls-key", "", "private key (PEM) for --tls-cert")
	c.Flags().StringVar(&o.metricsListen, "metrics-listen", "", "serve Prometheus metrics at http://ADDR/metrics (off by default; keep ADDR private)")
	c.Flags().BoolVar(&o.pprof, "pprof", false, "also serve Go's profiler at /debug/pprof/ on --metrics-listen")
}

func (a *app) serveCommand() *cobra.Command {
	var o serveOptions
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the portal (HTTPS) and the plain-HTTP CA/CRL/OCSP listener",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.serve(cmd.Context(), o, func(e *env, https, plain string) {
				fmt.Fprintf(a.stdout, "certportal is serving %s (CA certificates, CRLs and OCSP also on http://%s). Stop with Ctrl+C.\n", https, plain)
			})
		},
	}
	a.dataFlags(c)
	a.serveFlags(c, &o)
	return c
}

// serve runs the portal until ctx ends, then shuts down gracefully. ready
// is called once both listeners accept connections.
func (a *app) serve(ctx context.Context, o serveOptions, ready func(e *env, httpsURL, httpAddr string)) error {
	log := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return usageError{errors.New("--tls-cert and --tls-key go together")}
	}
	if o.pprof && o.metricsListen == "" {
		return usageError{errors.New("--pprof is served on --metrics-listen; give both")}
	}
	e, err := a.serveEnv(ctx, o, log)
	if err != nil {
		return err
	}
	defer e.Close() // last: after every goroutine below has ended
	// Without the root key (the root CRL is signed offline; see custody.go).
	if err := a.checkRootCustody(ctx, e, log); err != nil {
		return err
	}
	// The audit key signs checkpoints; an installation from before audit
	// keys gets one now.
	key, created, err := loadAuditKey(a.dataDir, true)
	if err != nil {
		return err
	}
	if created {
		log.Info("made an audit key for signed audit checkpoints", "file", filepath.Join(a.dataDir, caDir, auditKeyFile))
	}
	e.svc.AuditKey = key
	certs, err := a.certSource(e, o, log)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait() // before e.Close: nothing uses the store after it
	if o.metricsListen != "" {
		stop, err := serveMetrics(e, o, log, &wg)
		if err != nil {
			return err
		}
		defer stop()
	}
	srv := web.New(e.svc, log)
	servers, err := listen(e, o, srv, certs, log)
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	wg.Go(func() { errc <- servers.https.ServeTLS(web.RedirectPlainHTTP(servers.lnTLS), "", "") })
	wg.Go(func() { errc <- servers.plain.Serve(servers.lnHTTP) })
	bg, stopBG := context.WithCancel(ctx)
	a.background(bg, e, certs, log, &wg)
	_, port, _ := net.SplitHostPort(servers.lnTLS.Addr().String())
	url := "https://" + hostPort(e.cfg.Hostnames[0], port) + "/"
	log.Info("serving", "https", servers.lnTLS.Addr().String(), "http", servers.lnHTTP.Addr().String(), "data", e.dir)
	ready(e, url, servers.lnHTTP.Addr().String())
	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("listener failed", "err", err)
		}
	}
	log.Info("shutting down")
	stopBG()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = errors.Join(servers.https.Shutdown(sctx), servers.plain.ShutdownWithContext(sctx))
	// The last records are signed as serve stops.
	if _, cerr := e.svc.Checkpoint(sctx); cerr != nil {
		log.Warn("the final audit checkpoint failed", "err", cerr)
	}
	return err
}

// checkpointEvery is how often serve signs the audit log when it has new
// records (SPEC.md: at least every minute that has new records).
const checkpointEvery = time.Minute

// runCheckpoints signs a checkpoint every checkpointEvery that has new
// records, until ctx ends.
func runCheckpoints(ctx context.Context, e *env, log *slog.Logger) {
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := e.svc.Checkpoint(ctx); err != nil && ctx.Err() == nil {
				log.Warn("audit checkpoint failed", "err", err)
			}
		}
	}
}

// serveEnv opens the data directory with serve's mail settings.
func (a *app) serveEnv(ctx context.Context, o serveOptions, log *slog.Logger) (*env, error) {
	if err := checkSecretFreeURL("--smtp", o.smtp, "--smtp-password-file or the config file"); err != nil {
		return nil, err
	}
	return a.openEnvWith(ctx, log, func(cfg *Config) error {
		if o.smtp != "" {
			cfg.SMTP = o.smtp
		}
		if o.smtpPwFile != "" {
			pw, err := a.readSecret(o.smtpPwFile, "", false)
			if err != nil {
				return err
			}
			cfg.SMTPPassword = pw
		}
		return nil
	})
}

// serveMetrics starts the metrics listener (and pprof) in wg and returns
// the function that stops it.
func serveMetrics(e *env, o serveOptions, log *slog.Logger, wg *sync.WaitGroup) (func(), error) {
	m := metrics.New()
	m.WatchRootCRL(e.rootCRLNextUpdate)
	e.svc.Events = m
	e.svc.Mailer = m.Mailer(e.svc.Mailer)
	ln, err := net.Listen("tcp", o.metricsListen)
	if err != nil {
		return nil, certportal.Errorf(certportal.Unavailable, "cannot listen on %s: %v", o.metricsListen, err)
	}
	srv := &http.Server{Handler: web.MetricsHandler(m.Handler(), o.pprof), ReadHeaderTimeout: 10 * time.Second}
	wg.Go(func() { _ = srv.Serve(ln) })
	log.Info("serving metrics", "addr", ln.Addr().String(), "pprof", o.pprof)
	return func() { srv.Close() }, nil
}

// servers are the two listeners of the portal and their HTTP servers.
type servers struct {
	lnTLS, lnHTTP net.Listener
	https         *http.Server
	plain         *fasthttp.Server // web.PlainServer
}

// listen opens the HTTPS and plain-HTTP listeners.
func listen(e *env, o serveOptions, srv *web.Server, certs *web.CertReloader, log *slog.Logger) (*servers, error) {
	addr, httpAddr := e.cfg.Listen, e.cfg.HTTPListen
	if o.listen != "" {
		addr = o.listen
	}
	if o.httpListen != "" {
		httpAddr = o.httpListen
	}
	lnTLS, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, certportal.Errorf(certportal.Unavailable, "cannot listen on %s: %v", addr, err)
	}
	lnHTTP, err := net.Listen("tcp", httpAddr)
	if err != nil {
		lnTLS.Close()
		return nil, certportal.Errorf(certportal.Unavailable, "cannot listen on %s: %v", httpAddr, err)
	}
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	return &servers{
		lnTLS: lnTLS, lnHTTP: lnHTTP,
		https: &http.Server{
			Handler: srv.Handler(), TLSConfig: srv.TLSConfigFrom(certs), ErrorLog: errLog,
			ConnContext:       srv.ConnContext, // the client chain is verified once per connection
			ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second,
			IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		},
		plain: srv.PlainServer(errLog.Printf),
	}, nil
}

// background starts serve's periodic work in wg; it ends when ctx does.
func (a *app) background(ctx context.Context, e *env, certs *web.CertReloader, log *slog.Logger, wg *sync.WaitGroup) {
	wg.Go(func() { a.housekeeping(ctx, e, log) })
	// Revocations no longer sign a CRL in their transaction; this re-signs
	// soon after them, so the stored CRLs stay current between downloads.
	wg.Go(func() { e.svc.RunCRLSigner(ctx) })
	wg.Go(func() { runCheckpoints(ctx, e, log) })
	// Mail queued in the database (bulk imports, the console's new
	// accounts) goes out from here, also what another process queued.
	wg.Go(func() { e.svc.RunMailSender(ctx, time.Minute) })
	// The root CRL is re-signed by an administrator: warn when it is due.
	wg.Go(func() { watchRootCRL(ctx, e, log) })
	// SIGHUP reloads the TLS certificate files; the poll picks up changed
	// files (a renewal by another replica, a new --tls-cert) by itself.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	wg.Go(func() {
		defer signal.Stop(hup)
		certs.Run(ctx, tlsPollInterval, hup)
	})
}

// tlsPollInterval is how often serve looks at the TLS certificate files and
// whether the certificate is due for renewal: two stat calls, cheap enough
// that a certificate renewed by another replica is served within seconds.
const tlsPollInterval = 2 * time.Second

// certSource returns the TLS certificate source of serve: the --tls-cert
// files, reloaded when they change or on SIGHUP; or the certificate init
// made in DATA/ca, renewed from the TLS intermediate when a third of its
// life is left, and reloaded when another replica sharing DATA/ca renewed it.
func (a *app) certSource(e *env, o serveOptions, log *slog.Logger) (*web.CertReloader, error) {
	if o.tlsCert != "" {
		return web.NewCertReloader(func() (*tls.Certificate, error) {
			c, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
			if err != nil {
				return nil, certportal.Errorf(certportal.Invalid, "cannot load --tls-cert/--tls-key: %v", err)
			}
			return &c, nil
		}, log, o.tlsCert, o.tlsKey)
	}
	certFile, keyFile := e.ca.ServerCertificatePaths()
	r, err := web.NewCertReloader(e.ca.ServerCertificate, log, certFile, keyFile)
	if err != nil {
		return nil, err
	}
	if !e.ca.CanRenewServerCertificate() {
		log.Warn("no TLS intermediate key in DATA/ca: the portal's TLS certificate will not renew itself here")
		return r, nil
	}
	r.Due = func(c *tls.Certificate) bool {
		leaf := c.Leaf
		if leaf == nil {
			if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
				return false
			}
		}
		return ca.RenewalDue(leaf, time.Now())
	}
	r.Renew = e.ca.RenewServerCertificate
	return r, nil
}

// housekeeping re-signs CRLs daily, removes expired sessions and mails the
// expiry reminders that are due. It runs at start and then hourly: a
// reminder is due on a day, so an hour late is on time, and every replica
// may run it (the database lets each reminder go out once).
func (a *app) housekeeping(ctx context.Context, e *env, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		for _, issuer := range e.svc.CRLIssuers() {
			if _, err := e.svc.CRL(ctx, issuer); err != nil && ctx.Err() == nil {
				log.Warn("CRL refresh failed", "issuer", issuer, "err", err)
			}
		}
		if err := e.svc.Sweep(ctx); err != nil && ctx.Err() == nil {
			log.Warn("session clean-up failed", "err", err)
		}
		if n, err := e.svc.SendReminders(ctx); err != nil && ctx.Err() == nil {
			log.Warn("expiry reminders: not all could be sent; the next run tries again", "sent", n, "err", err)
		} else if n > 0 {
			log.Info("expiry reminders sent", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
