package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"database/sql"
	"encoding/pem"
	"flag"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/portal"
	"github.com/certportal/certportal/sqlite"
)

func loadKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s holds no PEM key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		if ec, err2 := x509.ParseECPrivateKey(blk.Bytes); err2 == nil {
			return ec, nil
		}
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: not a signing key", path)
	}
	return s, nil
}

// populate brings the revoked certificates of the issuing CA in the CRL
// database up to n. The rows are written by one SQL statement (a recursive
// CTE) rather than a million InsertCertificate calls: the figure is about
// signing the CRL, and this keeps the set-up to seconds. They look like
// the portal's own rows (16-byte serials with the top bit clear, revoked,
// reason superseded) except for a one-byte DER that no CRL reads.
func populate(ctx context.Context, path, issuer string, from, n int) error {
	db, err := sql.Open("sqlite", path+"?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return err
	}
	defer db.Close()
	now := time.Now()
	_, err = db.ExecContext(ctx, `WITH RECURSIVE seq(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM seq WHERE i < ?)
		INSERT INTO certificates (serial, account, issuer, not_before, not_after, thumbprint, sha256, der, issued, revoked, reason)
		SELECT printf('7F%030X', i), ?, ?, ?, ?, printf('%040X', i), printf('%064x', i), x'00', ?, ?, 4 FROM seq`,
		from+1, n, certportal.IDKey("crl"), issuer,
		now.Add(-time.Hour).UnixMicro(), now.AddDate(1, 0, 0).UnixMicro(), now.Add(-time.Hour).UnixMicro(), now.Add(-time.Minute).UnixMicro())
	return err
}

// crlFigure is one size's measurements.
type crlFigure struct {
	n                   int
	full, raw           time.Duration
	fullPeak, rawPeak   int64
	fullBytes, rawBytes int
}

func (r *report) crls(ctx context.Context, o options, fx *fixture) error {
	path := filepath.Join(fx.work, "crl.db")
	store, err := sqlite.Open(ctx, path, true)
	if err != nil {
		return err
	}
	auth, err := ca.Load(filepath.Join(fx.data, "ca"), "")
	if err != nil {
		return err
	}
	svc := portal.New(store, auth, nopMailer{}, portal.Config{}, slog.New(slog.DiscardHandler))
	if _, _, err := svc.AddUser(ctx, portal.Admin, "crl", "crl@example.com", userPassword); err != nil {
		return err
	}
	store.Close()
	have := 0
	for i, n := range o.crlSizes {
		t0 := time.Now()
		if err := populate(ctx, path, auth.Issuing.Subject.CommonName, have, n); err != nil {
			return fmt.Errorf("writing %d revoked certificates: %v", n, err)
		}
		logf("  %d revoked certificates written in %v", n, time.Since(t0).Round(time.Millisecond))
		have = n
		f := crlFigure{n: n}
		for _, mode := range []string{"full", "raw"} {
			out, err := exec.CommandContext(ctx, os.Args[0], "crl-child", "-db", path, "-ca", filepath.Join(fx.data, "ca"),
				"-mode", mode, "-shift", strconv.Itoa(i+1)).CombinedOutput()
			if err != nil {
				return fmt.Errorf("CRL of %d (%s): %v\n%s", n, mode, err, out)
			}
			var sec float64
			var peak int64
			var size, entries int
			if _, err := fmt.Sscan(strings.TrimSpace(string(out)), &sec, &peak, &size, &entries); err != nil {
				return fmt.Errorf("CRL child said %q", out)
			}
			if entries != n {
				return fmt.Errorf("the CRL of %s has %d entries, want %d", mode, entries, n)
			}
			d := time.Duration(sec * float64(time.Second))
			if mode == "full" {
				f.full, f.fullPeak, f.fullBytes = d, peak, size
			} else {
				f.raw, f.rawPeak, f.rawBytes = d, peak, size
			}
		}
		logf("  CRL of %d: certportal %v (peak %d MiB), raw %v (peak %d MiB)", n, f.full.Round(time.Millisecond), f.fullPeak>>20, f.raw.Round(time.Millisecond), f.rawPeak>>20)
		r.crl = append(r.crl, f)
		r.add(fmt.Sprintf("CRL of %d revoked: time, certportal (read, sign, store, audit) / raw x509.CreateRevocationList", n),
			f.full.Seconds()*1000, f.raw.Seconds()*1000, " ms", "≤ 2.0", f.full <= 2*f.raw)
		if n >= 1000000 {
			r.add(fmt.Sprintf("CRL of %d revoked: peak RSS of the process / 1.5 GiB goal", n), float64(f.fullPeak)/(1<<20), 1536, " MiB", "≤ 1.0", f.fullPeak <= 1536<<20)
		}
	}
	return nil
}

// crlChild signs one CRL in a process of its own, so its peak RSS is the
// CRL's, and prints seconds, VmHWM bytes, DER size and entry count. Mode
// full is Service.CRL (list the revocations, sign, store the CRL, audit);
// mode raw is x509.CreateRevocationList alone on the same entries (read
// from the database before the clock starts).
func crlChild(args []string) int {
	fs := flag.NewFlagSet("crl-child", flag.ExitOnError)
	db := fs.String("db", "", "SQLite database")
	caDir := fs.String("ca", "", "CA directory")
	mode := fs.String("mode", "full", "full or raw")
	shift := fs.Int("shift", 1, "days (of 25 h) to move the clock, so the stored CRL is stale")
	prof := fs.String("cpuprofile", "", "write a CPU profile of the signing here")
	fs.Parse(args)
	ctx := context.Background()
	fail := func(err error) int { fmt.Fprintln(os.Stderr, err); return 1 }
	store, err := sqlite.Open(ctx, *db, false)
	if err != nil {
		return fail(err)
	}
	defer store.Close()
	auth, err := ca.Load(*caDir, "")
	if err != nil {
		return fail(err)
	}
	at := time.Now().Add(time.Duration(*shift) * 25 * time.Hour)
	clock := func() time.Time { return at }
	auth.Now = clock
	issuer := auth.Issuing.Subject.CommonName
	var der []byte
	var d time.Duration
	if *prof != "" {
		f, err := os.Create(*prof)
		if err != nil {
			return fail(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if *mode == "full" {
		svc := portal.New(store, auth, nopMailer{}, portal.Config{}, slog.New(slog.DiscardHandler))
		svc.Now = clock
		t0 := time.Now()
		if der, err = svc.CRL(ctx, issuer); err != nil {
			return fail(err)
		}
		d = time.Since(t0)
	} else {
		key, err := loadKey(filepath.Join(*caDir, "issuing.key"))
		if err != nil {
			return fail(err)
		}
		var revs []certportal.Revocation
		if err := store.View(ctx, func(tx certportal.Tx) error {
			revs, err = tx.Revocations(ctx, issuer, at)
			return err
		}); err != nil {
			return fail(err)
		}
		entries := make([]x509.RevocationListEntry, len(revs))
		for i, r := range revs {
			sn, _ := new(big.Int).SetString(r.Serial, 16)
			entries[i] = x509.RevocationListEntry{SerialNumber: sn, RevocationTime: r.Time, ReasonCode: int(r.Reason)}
		}
		revs = nil
		t0 := time.Now()
		der, err = x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
			RevokedCertificateEntries: entries, Number: big.NewInt(1),
			ThisUpdate: at, NextUpdate: at.Add(ca.CRLLifetime),
		}, auth.Issuing, key)
		if err != nil {
			return fail(err)
		}
		d = time.Since(t0)
	}
	peak, err := peakRSS(os.Getpid()) // before parsing the CRL back, which is not part of the figure
	if err != nil {
		return fail(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return fail(err)
	}
	fmt.Println(d.Seconds(), peak, len(der), len(crl.RevokedCertificateEntries))
	return 0
}
