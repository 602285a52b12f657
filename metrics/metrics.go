// Package metrics turns what the portal does into Prometheus metrics:
// issuances and their latency, sign-in outcomes by kind, revocation checks,
// OCSP requests, CRL signing time, and mail sent or failed. It implements
// portal.Events and wraps a certportal.Mailer; cmd/certportal wires it in
// when serve is given --metrics-listen, and serves Handler on that address
// only, never on the public HTTPS listener.
package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/portal"
)

// Metrics holds the portal's collectors in a registry of its own (not the
// global one, so two in one process, as in tests, do not collide).
type Metrics struct {
	Registry *prometheus.Registry

	issued       *prometheus.CounterVec
	issueSeconds prometheus.Histogram
	signIns      *prometheus.CounterVec
	revocation   *prometheus.CounterVec
	ocsp         *prometheus.CounterVec
	crlSeconds   *prometheus.HistogramVec
	mail         *prometheus.CounterVec
}

var _ portal.Events = (*Metrics)(nil)

// New returns Metrics with every collector registered, plus the Go runtime
// and process collectors (memory, goroutines, CPU).
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certportal_certificates_issued_total",
			Help: "Certificate issuances (key, certificate, PKCS#12, transaction, audit), by result.",
		}, []string{"result"}),
		// Buckets from 1 ms to about 16 s: a P-256 issuance takes a few
		// milliseconds, an RSA-4096 one can take seconds.
		issueSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "certportal_certificate_issue_seconds",
			Help:    "Time of a whole issuance.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
		signIns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certportal_signins_total",
			Help: "Sign-in attempts by method and outcome (ok, failed, revoked, expired, unknown, cancelled, use_certificate, password_expired, error). Method certificate counts every request authenticated by client certificate (GET / without a session, /api/*), not only those that start a session.",
		}, []string{"method", "outcome"}),
		revocation: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certportal_revocation_checks_total",
			Help: "Per-request database checks of a client certificate's status, by source (signin, session) and result (good, refused).",
		}, []string{"source", "result"}),
		ocsp: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certportal_ocsp_requests_total",
			Help: "OCSP requests by kind: cache (no nonce, answered from the cache of signed responses unless the status changed) or nonce (signed afresh).",
		}, []string{"kind"}),
		crlSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "certportal_crl_generation_seconds",
			Help:    "Time to list the revoked certificates and sign a CRL, by issuer.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"issuer"}),
		mail: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certportal_mail_total",
			Help: "Mails handed to the mailer, by result (sent, failed).",
		}, []string{"result"}),
	}
	m.Registry.MustRegister(m.issued, m.issueSeconds, m.signIns, m.revocation, m.ocsp, m.crlSeconds, m.mail,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Counters with known labels start at zero, so a dashboard sees them
	// before the first event.
	for _, r := range []string{"ok", "error"} {
		m.issued.WithLabelValues(r)
	}
	for _, r := range []string{"sent", "failed"} {
		m.mail.WithLabelValues(r)
	}
	for _, k := range []string{"cache", "nonce"} {
		m.ocsp.WithLabelValues(k)
	}
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// Issued counts an issuance and observes its latency.
func (m *Metrics) Issued(d time.Duration, err error) {
	m.issued.WithLabelValues(result(err)).Inc()
	if err == nil {
		m.issueSeconds.Observe(d.Seconds())
	}
}

// SignIn counts a sign-in attempt.
func (m *Metrics) SignIn(method, outcome string) { m.signIns.WithLabelValues(method, outcome).Inc() }

// RevocationCheck counts a certificate status check.
func (m *Metrics) RevocationCheck(source string, good bool) {
	r := "good"
	if !good {
		r = "refused"
	}
	m.revocation.WithLabelValues(source, r).Inc()
}

// OCSPRequest counts an OCSP request.
func (m *Metrics) OCSPRequest(cacheable bool) {
	k := "nonce"
	if cacheable {
		k = "cache"
	}
	m.ocsp.WithLabelValues(k).Inc()
}

// CRLSigned observes the time of a CRL signing that succeeded.
func (m *Metrics) CRLSigned(issuer string, d time.Duration, err error) {
	if err == nil {
		m.crlSeconds.WithLabelValues(issuer).Observe(d.Seconds())
	}
}

// Mailer returns a Mailer that sends through next and counts each mail as
// sent or failed.
func (m *Metrics) Mailer(next certportal.Mailer) certportal.Mailer {
	return countingMailer{next: next, mail: m.mail}
}

type countingMailer struct {
	next certportal.Mailer
	mail *prometheus.CounterVec
}

func (c countingMailer) Send(ctx context.Context, msg certportal.Mail) error {
	err := c.next.Send(ctx, msg)
	if err != nil {
		c.mail.WithLabelValues("failed").Inc()
	} else {
		c.mail.WithLabelValues("sent").Inc()
	}
	return err
}

// WatchRootCRL shows the time left until the root CRL's nextUpdate as the
// gauge certportal_root_crl_expiry_seconds. The root CRL is signed by an
// administrator with the offline root key, not by the portal, so a
// dashboard or alert must say when that is due. nextUpdate is asked at
// each scrape (the file may have been re-signed meanwhile); when it cannot
// be read the gauge is 0, which an alert on "less than 30 days" catches too.
func (m *Metrics) WatchRootCRL(nextUpdate func() (time.Time, error)) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "certportal_root_crl_expiry_seconds",
		Help: "Seconds until the nextUpdate of the root CRL (DATA/ca/root.crl), negative once it has passed, 0 when it cannot be read. Re-sign it with certportal ca root-crl.",
	}, func() float64 {
		t, err := nextUpdate()
		if err != nil {
			return 0
		}
		return time.Until(t).Seconds()
	}))
}
