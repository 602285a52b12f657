package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/ocsp"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/internal/p12"
	"github.com/certportal/certportal/portal"
	"github.com/certportal/certportal/postgres"
	"github.com/certportal/certportal/sqlite"
)

// nopMailer drops notices: mail delivery is not part of issuance's cost
// here (the outbox would add one small file write).
type nopMailer struct{}

func (nopMailer) Send(context.Context, certportal.Mail) error { return nil }

// rate runs fn in workers goroutines for d and returns calls per second.
func rate(d time.Duration, workers int, fn func() error) (float64, error) {
	var n atomic.Int64
	var first atomic.Pointer[error]
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if err := fn(); err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if p := first.Load(); p != nil {
		return 0, *p
	}
	return float64(n.Load()) / time.Since(start).Seconds(), nil
}

// rawIssue is the reference: a P-256 key, a bare x509.CreateCertificate
// by the issuing CA's key and a PKCS#12 with the iteration count the portal
// uses, without any of certportal's code (as ca.BenchmarkRawIssue).
func rawIssue(issuing *x509.Certificate, signer crypto.Signer) func() error {
	enc := pkcs12.Modern2023.WithIterations(p12.ModernIterations)
	return func() error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		now := time.Now()
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
			SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "bench"},
			NotBefore: now, NotAfter: now.AddDate(1, 0, 0),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}, issuing, key.Public(), signer)
		if err != nil {
			return err
		}
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			return err
		}
		_, err = enc.Encode(key, leaf, []*x509.Certificate{issuing}, p12Password)
		return err
	}
}

// fullIssue is portal.Service.Issue for a rotating set of accounts: key,
// certificate, PKCS#12, the transaction (revoke the previous certificate,
// insert, method change, CRL re-signing) and the audit records.
func fullIssue(ctx context.Context, store certportal.Store, auth *ca.Authority) (func() error, error) {
	svc := portal.New(store, auth, nopMailer{}, portal.Config{}, slog.New(slog.DiscardHandler))
	const users = 20
	for i := range users {
		if _, _, err := svc.AddUser(ctx, portal.Admin, fmt.Sprintf("issue%02d", i), fmt.Sprintf("issue%02d@example.com", i), userPassword); err != nil {
			return nil, err
		}
	}
	var i atomic.Int64
	return func() error {
		id := fmt.Sprintf("issue%02d", i.Add(1)%users)
		_, err := svc.Issue(ctx, portal.Admin, portal.IssueRequest{ID: id, P12Password: p12Password})
		return err
	}, nil
}

func (r *report) issuance(ctx context.Context, o options, fx *fixture) error {
	auth, err := ca.Load(filepath.Join(fx.data, "ca"), "")
	if err != nil {
		return err
	}
	signer, err := loadKey(filepath.Join(fx.data, "ca", "issuing.key"))
	if err != nil {
		return err
	}
	// One goroutine each, as go test -bench runs them: the ratio is of
	// the work per issuance.
	raw, err := rate(o.step, 1, rawIssue(auth.Issuing, signer))
	if err != nil {
		return err
	}
	lite, err := sqlite.Open(ctx, filepath.Join(fx.work, "issue.db"), true)
	if err != nil {
		return err
	}
	defer lite.Close()
	full, err := fullIssue(ctx, lite, auth)
	if err != nil {
		return err
	}
	sq, err := rate(o.step, 1, full)
	if err != nil {
		return err
	}
	r.add("Issuance, SQLite (full path / raw keygen+sign+PKCS#12)", sq, raw, "/s", "≥ 0.50", sq/raw >= 0.5)
	dsn, drop, err := scratchPostgres(ctx, o.pgDSN)
	if err != nil {
		r.addMissing("Issuance, PostgreSQL", "PostgreSQL not reachable: "+err.Error())
		return nil
	}
	defer drop()
	pg, err := postgres.Open(ctx, dsn, true)
	if err != nil {
		return err
	}
	defer pg.Close()
	full, err = fullIssue(ctx, pg, auth)
	if err != nil {
		return err
	}
	raw2, err := rate(o.step, 1, rawIssue(auth.Issuing, signer))
	if err != nil {
		return err
	}
	p, err := rate(o.step, 1, full)
	if err != nil {
		return err
	}
	r.add("Issuance, PostgreSQL (full path / raw)", p, raw2, "/s", "≥ 0.50", p/raw2 >= 0.5)
	return nil
}

// scratchPostgres creates an empty database on the server and returns its
// URL and a function that drops it.
func scratchPostgres(ctx context.Context, server string) (string, func(), error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, server)
	if err != nil {
		return "", nil, err
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	io.ReadFull(rand.Reader, b)
	name := "certbench_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, err
	}
	u, err := url.Parse(server)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() {
		if c, err := pgx.Connect(ctx, server); err == nil {
			c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(ctx)
		}
	}
	return u.String(), drop, nil
}

// ocspFigure measures OCSP responses per second for requests without a
// nonce (cached signed responses, after the per-request status lookup in
// the database) against raw P-256 signatures per second, both in this
// process on all cores: the signing rate is what a responder that signed
// every answer could reach at best. The same over HTTPS (POST /ocsp to the
// running serve, kept-alive, the load generator on the same cores) is
// reported beside it, and over plain HTTP (the AIA URL) against nginx
// answering the same POST with the same bytes from a static file.
func (r *report) ocspFigure(ctx context.Context, o options, fx *fixture, serve, ngx *process, reqDER []byte) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	digest := sha256.Sum256([]byte("tbsResponseData"))
	sign, err := rate(o.step, runtime.NumCPU(), func() error {
		_, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
		return err
	})
	if err != nil {
		return err
	}
	store, err := sqlite.Open(ctx, filepath.Join(fx.data, "certportal.db"), false)
	if err != nil {
		return err
	}
	defer store.Close()
	auth, err := ca.Load(filepath.Join(fx.data, "ca"), "")
	if err != nil {
		return err
	}
	svc := portal.New(store, auth, nopMailer{}, portal.Config{}, slog.New(slog.DiscardHandler))
	svcRate, err := rate(o.step, runtime.NumCPU(), func() error {
		_, err := svc.OCSP(ctx, reqDER)
		return err
	})
	if err != nil {
		return err
	}
	r.add("OCSP responses, cached (parse, status lookup in SQLite, cached signed answer), in process on all cores / raw ECDSA P-256 signatures on all cores", svcRate, sign, "/s", "≥ 1.0", svcRate >= sign)
	res, err := load(ctx, fx, serve.addr, "/ocsp", 32, true, o.step, reqDER, "application/ocsp-request", 200)
	if err != nil {
		return err
	}
	r.add("OCSP over HTTPS (POST /ocsp, kept-alive c=32, load generator on the same cores) / raw ECDSA signatures", res.Rate(), sign, "/s", "(for reading)", true)
	return r.ocspPlain(ctx, o, fx, serve, ngx, reqDER)
}

// ocspAnswerFile asks serve over plain HTTP for the answer to reqDER,
// checks that it says "good", and writes it where nginx serves it.
func ocspAnswerFile(fx *fixture, serve *process, reqDER []byte) error {
	resp, err := http.Post("http://"+serve.plain+"/ocsp", "application/ocsp-request", bytes.NewReader(reqDER))
	if err != nil {
		return err
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if a, err := ocsp.ParseResponse(answer, nil); err != nil || a.Status != ocsp.Good {
		return fmt.Errorf("the OCSP answer over plain HTTP is not \"good\" (%v)", err)
	}
	return os.WriteFile(filepath.Join(fx.work, "nginx", "ocsp"), answer, 0o644)
}

// ocspPlain measures POST /ocsp over plain HTTP (the URL in the
// certificates' AIA, served on --http-listen), kept-alive, against nginx
// answering the same POST with the answer certportal gave, as a file.
func (r *report) ocspPlain(ctx context.Context, o options, fx *fixture, serve, ngx *process, reqDER []byte) error {
	if err := ocspAnswerFile(fx, serve, reqDER); err != nil {
		return err
	}
	c := keptAliveConc
	pr, err := loadURL(ctx, fx, "http://"+serve.plain+"/ocsp", c, true, o.step, reqDER, "application/ocsp-request", 200)
	if err != nil {
		return err
	}
	nr, err := loadURL(ctx, fx, "http://"+ngx.plain+"/ocsp", c, true, o.step, reqDER, "application/ocsp-request", 200)
	if err != nil {
		return err
	}
	r.add(fmt.Sprintf("OCSP over plain HTTP (POST /ocsp to the AIA URL, kept-alive c=%d, status looked up per request) / nginx answering the same POST with a static file", c), pr.Rate(), nr.Rate(), "/s", "≥ 0.80", pr.Rate() >= 0.8*nr.Rate())
	return nil
}
