package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/portal"
)

// What serve does about the root key and the root CRL (SPEC.md "Key
// custody"): it never signs with the root, it publishes DATA/ca/root.crl,
// and it says when either needs an administrator.

// rootCRLWarnBefore: from thirty days before the root CRL's nextUpdate,
// serve warns daily (SPEC.md), time enough to fetch the root key from
// wherever it is kept.
const rootCRLWarnBefore = 30 * 24 * time.Hour

// rootCRLWarnEvery is how often the warning is repeated: daily.
const rootCRLWarnEvery = 24 * time.Hour

// checkRootCustody runs when serve starts. It says, in one log line, that
// root.key is still in DATA/ca, and makes sure there is a root CRL to
// publish. A data directory from before key custody has root.key but no
// root.crl: the root CRL is signed once, here, and the key dropped again.
// Without either, serve refuses to start.
func (a *app) checkRootCustody(ctx context.Context, e *env, log *slog.Logger) error {
	keyInDir := e.ca.RootKeyInDir()
	if keyInDir {
		log.Warn("the root CA's private key is on this server, where a break-in could use it to sign certificates every user trusts; move it off with: certportal ca root-key export --data "+e.dir+" --out FILE",
			"file", filepath.Join(e.dir, caDir, ca.RootKeyFile))
	}
	_, err := e.ca.RootCRL()
	if certportal.ErrorCodeOf(err) != certportal.NotFound {
		return err
	}
	crlPath := filepath.Join(e.dir, caDir, ca.RootCRLFile)
	if !keyInDir {
		return certportal.Errorf(certportal.NotFound, "%s is missing and the root key is not in %s; sign the root CRL with 'certportal ca root-crl --data %s --root-key FILE', then start serve again",
			crlPath, filepath.Join(e.dir, caDir), e.dir)
	}
	lifetime, err := e.cfg.rootCRLLifetime()
	if err != nil {
		return err
	}
	if err := e.ca.LoadRootKey(); err != nil {
		return err
	}
	crl, err := e.svc.SignRootCRL(ctx, portal.Actor{Name: "system", Remote: "-"}, lifetime)
	e.ca.DropRootKey()
	if err != nil {
		// Replicas sharing DATA/ca that start together each sign one;
		// the one whose number is lower is refused, and serves the other.
		if _, rerr := e.ca.RootCRL(); rerr == nil {
			return nil
		}
		return err
	}
	log.Info("signed the root CRL once, as this data directory has none yet; from now on it is re-signed by certportal ca root-crl",
		"file", crlPath, "number", crl.Number.String(), "next_update", crl.NextUpdate.UTC().Format(time.RFC3339))
	return nil
}

// rootCRLNextUpdate is the nextUpdate of the published root CRL.
func (e *env) rootCRLNextUpdate() (time.Time, error) {
	crl, err := e.ca.RootCRL()
	if err != nil {
		return time.Time{}, err
	}
	return crl.NextUpdate, nil
}

// watchRootCRL warns daily from rootCRLWarnBefore before the root CRL's
// nextUpdate (an error once it has passed, or when the file cannot be read)
// until ctx ends. It looks hourly, so a root CRL re-signed meanwhile stops
// the warnings within the hour, and one that nears its end again warns at
// once.
func watchRootCRL(ctx context.Context, e *env, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	var warned time.Time
	for {
		now := time.Now()
		next, err := e.rootCRLNextUpdate()
		due := warned.IsZero() || now.Sub(warned) >= rootCRLWarnEvery
		resign := "certportal ca root-crl --data " + e.dir + " --root-key FILE"
		switch {
		case err != nil:
			if due {
				log.Error("the root CRL cannot be read, so /crl/root.crl fails; re-sign it with: "+resign, "err", err)
				warned = now
			}
		case !now.Before(next):
			if due {
				log.Error("the root CRL has expired: clients that check it refuse every certificate of this portal; re-sign it with: "+resign,
					"next_update", next.UTC().Format(time.RFC3339))
				warned = now
			}
		case next.Sub(now) < rootCRLWarnBefore:
			if due {
				log.Warn("the root CRL expires soon; re-sign it with: "+resign,
					"next_update", next.UTC().Format(time.RFC3339), "days_left", int(next.Sub(now).Hours()/24))
				warned = now
			}
		default:
			warned = time.Time{}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
