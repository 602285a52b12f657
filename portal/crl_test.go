package portal_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/internal/pgtest"
	certmail "github.com/certportal/certportal/mail"
	"github.com/certportal/certportal/portal"
	"github.com/certportal/certportal/postgres"
)

// addRevoked records n revoked certificates of the issuing CA that have not
// expired, as a portal that has run for a while has them; their DER is
// random bytes (only the CRL reads them, by serial).
func (e *env) addRevoked(tb testing.TB, n int) {
	tb.Helper()
	ctx := context.Background()
	e.addUser(tb, "revoked")
	issuer := e.svc.CA.Issuing.Subject.CommonName
	now := time.Now().UTC().Truncate(time.Microsecond)
	err := e.svc.Store.Update(ctx, func(tx certportal.Tx) error {
		for i := 0; i < n; i++ {
			der := make([]byte, 64)
			rand.Read(der)
			der[0] = der[0]&0x7f | 0x10 // a serial without a leading zero byte
			c := &certportal.Certificate{
				Serial: fmt.Sprintf("%X", der[:16]), AccountID: "revoked", Issuer: issuer,
				NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
				Thumbprint: certportal.Thumbprint(der), SHA256: certportal.Fingerprint256(der),
				DER: der, Issued: now.Add(-time.Hour),
			}
			if err := tx.InsertCertificate(ctx, c); err != nil {
				return err
			}
			if err := tx.RevokeCertificate(ctx, c.Serial, now, certportal.ReasonSuperseded); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkIssueRevoked20k is BenchmarkIssue on a portal whose issuing CA
// has 20,000 unexpired revoked certificates: every issuance to an account
// that has a certificate revokes it (superseded), which must not cost a
// signature over the whole CRL.
func BenchmarkIssueRevoked20k(b *testing.B) {
	e := newEnv(b)
	e.addRevoked(b, 20_000)
	for i := 0; i < 50; i++ {
		e.addUser(b, fmt.Sprintf("bench%02d", i))
	}
	ctx := context.Background()
	i := 0
	for b.Loop() {
		if _, err := e.svc.Issue(ctx, portal.Admin, portal.IssueRequest{ID: fmt.Sprintf("bench%02d", i%50), P12Password: p12pw}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// latestCRL returns the stored CRL of the issuing CA.
func latestCRL(t *testing.T, svc *portal.Service) *certportal.CRL {
	t.Helper()
	var c *certportal.CRL
	err := svc.Store.View(context.Background(), func(tx certportal.Tx) error {
		var err error
		c, err = tx.LatestCRL(context.Background(), svc.CA.Issuing.Subject.CommonName)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fetchCRL is what GET /crl/issuing.crl does: Service.CRL, parsed and
// checked against the issuing CA.
func fetchCRL(t *testing.T, svc *portal.Service) *x509.RevocationList {
	t.Helper()
	der, err := svc.CRL(context.Background(), svc.CA.Issuing.Subject.CommonName)
	if err != nil {
		t.Fatalf("CRL: %v", err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(svc.CA.Issuing); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	return crl
}

// lists reports whether crl lists serial.
func lists(crl *x509.RevocationList, serial string) bool {
	for _, e := range crl.RevokedCertificateEntries {
		if certportal.FormatSerial(e.SerialNumber) == serial {
			return true
		}
	}
	return false
}

// TestIssueSignsNoCRL: an issuance that supersedes a certificate signs no
// CRL in its transaction, and the next download gets a new CRL, with a
// higher number, that lists the superseded serial; downloads after it get
// the same CRL until something changes.
func TestIssueSignsNoCRL(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.addUser(t, "ann")
	first, err := e.svc.Issue(ctx, portal.Admin, portal.IssueRequest{ID: "ann", P12Password: p12pw})
	if err != nil {
		t.Fatal(err)
	}
	before := fetchCRL(t, e.svc)
	stored := latestCRL(t, e.svc)
	if lists(before, first.Cert.Serial) || before.Number.Int64() != stored.Number {
		t.Fatalf("CRL %v before the revocation: lists %s = %v; stored number %d", before.Number, first.Cert.Serial, lists(before, first.Cert.Serial), stored.Number)
	}
	if _, err := e.svc.Issue(ctx, portal.Admin, portal.IssueRequest{ID: "ann", P12Password: p12pw}); err != nil {
		t.Fatal(err)
	}
	if n := latestCRL(t, e.svc).Number; n != stored.Number {
		t.Errorf("the issuance stored CRL number %d (was %d): it signed a CRL", n, stored.Number)
	}
	after := fetchCRL(t, e.svc)
	if after.Number.Cmp(before.Number) <= 0 || !lists(after, first.Cert.Serial) {
		t.Errorf("CRL %v after the issuance (before: %v): lists the superseded %s = %v", after.Number, before.Number, first.Cert.Serial, lists(after, first.Cert.Serial))
	}
	if again := fetchCRL(t, e.svc); again.Number.Cmp(after.Number) != 0 {
		t.Errorf("a second download without a revocation signed CRL %v (was %v)", again.Number, after.Number)
	}
}

// TestRevokeBetweenCRLs: each kind of revocation (by serial, account
// cancelled, password reset) between two downloads yields a new CRL that
// lists it; the signings are not audited, the revocations are.
func TestRevokeBetweenCRLs(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tests := []struct {
		name   string
		revoke func(id, serial string) error
	}{
		{"revoke", func(_, serial string) error {
			_, err := e.svc.Revoke(ctx, portal.Admin, serial, certportal.ReasonKeyCompromise)
			return err
		}},
		{"cancel", func(id, _ string) error { return e.svc.CancelUser(ctx, portal.Admin, id) }},
		{"reset", func(id, _ string) error {
			_, err := e.svc.ResetPassword(ctx, portal.Admin, id)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.addUser(t, tt.name)
			res, err := e.svc.Issue(ctx, portal.Admin, portal.IssueRequest{ID: tt.name, P12Password: p12pw})
			if err != nil {
				t.Fatal(err)
			}
			before := fetchCRL(t, e.svc)
			signed := countAudit(t, e.svc, certportal.ActionCRLSigned)
			if err := tt.revoke(tt.name, res.Cert.Serial); err != nil {
				t.Fatal(err)
			}
			after := fetchCRL(t, e.svc)
			if after.Number.Cmp(before.Number) <= 0 || lists(before, res.Cert.Serial) || !lists(after, res.Cert.Serial) {
				t.Errorf("CRL %v before, %v after: lists %s before %v, after %v", before.Number, after.Number,
					res.Cert.Serial, lists(before, res.Cert.Serial), lists(after, res.Cert.Serial))
			}
			if n := countAudit(t, e.svc, certportal.ActionCRLSigned); n != signed {
				t.Errorf("%d crl.signed records after a CRL signed for a revocation, want %d", n, signed)
			}
		})
	}
}

// countAudit counts the audit records of an action.
func countAudit(t *testing.T, svc *portal.Service, action string) int {
	t.Helper()
	list, err := svc.Audit(context.Background(), certportal.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range list {
		if e.Action == action {
			n++
		}
	}
	return n
}

// TestCRLDailyAndUnknown: a CRL a day old is re-signed (and audited) even
// without a revocation; an unknown CA has no CRL.
func TestCRLDailyAndUnknown(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	e.svc.Now = func() time.Time { return now }
	first := fetchCRL(t, e.svc)
	signed := countAudit(t, e.svc, certportal.ActionCRLSigned)
	now = now.Add(25 * time.Hour)
	e.svc.CA.Now = func() time.Time { return now }
	if next := fetchCRL(t, e.svc); next.Number.Cmp(first.Number) <= 0 {
		t.Errorf("CRL %v a day after %v: not re-signed", next.Number, first.Number)
	}
	if n := countAudit(t, e.svc, certportal.ActionCRLSigned); n != signed+1 {
		t.Errorf("%d crl.signed records after the daily signing, want %d", n, signed+1)
	}
	_, err := e.svc.CRL(context.Background(), "SOP-ICA9")
	if certportal.ErrorCodeOf(err) != certportal.NotFound {
		t.Errorf("CRL of an unknown CA: %v, want NotFound", err)
	}
}

// TestRunCRLSigner: with the background signer running, the stored CRL
// lists a superseded certificate soon after the issuance, without a
// download.
func TestRunCRLSigner(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.svc.RunCRLSigner(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	e.addUser(t, "ann")
	first, err := e.svc.Issue(ctx, portal.Admin, portal.IssueRequest{ID: "ann", P12Password: p12pw})
	if err != nil {
		t.Fatal(err)
	}
	fetchCRL(t, e.svc)
	if _, err := e.svc.Issue(ctx, portal.Admin, portal.IssueRequest{ID: "ann", P12Password: p12pw}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		c := latestCRL(t, e.svc)
		crl, err := x509.ParseRevocationList(c.DER)
		if err != nil {
			t.Fatal(err)
		}
		if lists(crl, first.Cert.Serial) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("15 s after the issuance the stored CRL (number %d) does not list the superseded %s", c.Number, first.Cert.Serial)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCRLConcurrentRevocations: 20 goroutines revoke while 5 download the
// CRL; every CRL downloaded after a revocation was confirmed lists it. On
// PostgreSQL the revocations go through one replica and half the downloads
// through another, as behind a load balancer.
func TestCRLConcurrentRevocations(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		e := newEnv(t)
		concurrentRevocations(t, e, e.svc, e.svc)
	})
	t.Run("postgres", func(t *testing.T) {
		ctx := context.Background()
		dsn := pgtest.FreshDatabase(t)
		e := newEnv(t)
		var replicas []*portal.Service
		for range 2 {
			db, err := postgres.Open(ctx, dsn, len(replicas) == 0)
			if err != nil {
				t.Fatalf("opening PostgreSQL: %v", err)
			}
			t.Cleanup(func() { db.Close() })
			auth, err := ca.Load(filepath.Join(e.dir, "ca"), "http://localhost:8080")
			if err != nil {
				t.Fatal(err)
			}
			replicas = append(replicas, portal.New(db, auth, &certmail.Outbox{Dir: e.outbox}, portal.Config{}, nil))
		}
		e.svc = replicas[0]
		concurrentRevocations(t, e, replicas[0], replicas[1])
	})
}

func concurrentRevocations(t *testing.T, e *env, revoker, other *portal.Service) {
	ctx := context.Background()
	const revokers, fetchers = 20, 5
	// Revoked certificates make each signing take a while (~15 ms), so
	// downloads meet signings under way that read the count before the
	// revocation they must show.
	e.addRevoked(t, 3000)
	serials := make([]string, revokers)
	for i := range serials {
		id := fmt.Sprintf("user%02d", i)
		e.addUser(t, id)
		res, err := revoker.Issue(ctx, portal.Admin, portal.IssueRequest{ID: id, P12Password: p12pw})
		if err != nil {
			t.Fatal(err)
		}
		serials[i] = res.Cert.Serial
	}
	fetchCRL(t, revoker)
	var mu sync.Mutex
	var confirmed []string
	var fetches int
	stop := make(chan struct{})
	var fetch, revoke sync.WaitGroup
	for f := range fetchers {
		svc := revoker
		if f%2 == 1 {
			svc = other
		}
		fetch.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				want := append([]string(nil), confirmed...)
				mu.Unlock()
				crl := fetchCRL(t, svc)
				for _, s := range want {
					if !lists(crl, s) {
						t.Errorf("CRL %v misses %s, whose revocation was confirmed before the download", crl.Number, s)
					}
				}
				mu.Lock()
				fetches++
				mu.Unlock()
			}
		})
	}
	for _, serial := range serials {
		revoke.Go(func() {
			if _, err := revoker.Revoke(ctx, portal.Admin, serial, certportal.ReasonKeyCompromise); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			confirmed = append(confirmed, serial)
			mu.Unlock()
		})
	}
	revoke.Wait()
	close(stop)
	fetch.Wait()
	final := fetchCRL(t, other)
	for _, s := range serials {
		if !lists(final, s) {
			t.Errorf("the final CRL %v misses %s", final.Number, s)
		}
	}
	t.Logf("%d downloads during %d revocations; final CRL number %v", fetches, revokers, final.Number)
}
